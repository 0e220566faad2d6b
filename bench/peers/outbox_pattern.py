"""The django-outbox-pattern peer of make bench (PyPI django-outbox-pattern, STOMP).

Runs in its own virtualenv (.cache/bench/peer-venv, bench/peers/requirements.txt), never
in the project's. Two steps, so the timed one does nothing else:

    prepare: migrate django_outbox_pattern into DATABASE and copy the first N benchmark
             events from conveyor_event into its `published` table, with the headers
             Published.save() would add;
    run:     its publisher (the loop of `manage.py publish`) sends them to RabbitMQ over
             STOMP, timed until every row is marked succeeded. Prints one JSON line.

The STOMP destination is /amq/queue/QUEUE: the durable queue the Go side declared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit


def setup(database: str, stomp_port: int) -> None:
    import django
    from django.conf import settings

    pg = urlsplit(os.environ["CONVEYOR_TEST_PG_DSN"])
    amqp = urlsplit(os.environ["CONVEYOR_TEST_AMQP_URL"])
    settings.configure(
        INSTALLED_APPS=["django_outbox_pattern"],
        USE_TZ=True,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": database,
                "USER": unquote(pg.username or ""),
                "PASSWORD": unquote(pg.password or ""),
                "HOST": pg.hostname,
                "PORT": str(pg.port),
            }
        },
        DJANGO_OUTBOX_PATTERN={
            "DEFAULT_STOMP_HOST_AND_PORTS": [("127.0.0.1", stomp_port)],
            "DEFAULT_STOMP_VHOST": unquote(amqp.path.lstrip("/")) or "/",
            "DEFAULT_STOMP_USERNAME": unquote(amqp.username or ""),
            "DEFAULT_STOMP_PASSCODE": unquote(amqp.password or ""),
        },
    )
    django.setup()


def prepare(args: argparse.Namespace) -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", "django_outbox_pattern", verbosity=0)
    destination = f"/amq/queue/{args.queue}"
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO published (id, version, destination, body, added, expires_at, retry,
                                   status, headers)
            SELECT id, NULL, %(dest)s, data, now(), now() + interval '1 day', 0, 1,
                   jsonb_build_object('dop-msg-id', id::text, 'dop-msg-destination', %(dest)s,
                                      'dop-msg-type', 'Published',
                                      'dop-msg-sent-time', now()::text,
                                      'dop-correlation-id', gen_random_uuid()::text)
              FROM (SELECT id, data FROM conveyor_event ORDER BY id LIMIT %(n)s) e
            """,
            {"dest": destination, "n": args.events},
        )
        if cur.rowcount != args.events:
            sys.exit(f"seeded {cur.rowcount} rows, want {args.events}")
        cur.execute("VACUUM ANALYZE published")


def run(args: argparse.Namespace) -> None:
    from django_outbox_pattern.choices import StatusChoice
    from django_outbox_pattern.factories import factory_producer
    from django_outbox_pattern.models import Published

    producer = factory_producer()
    # The publish command sleeps DEFAULT_PRODUCER_WAITING_TIME (1 s) after each pass;
    # only the passes are timed.
    producer._waiting = lambda: None
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    while Published.objects.filter(status=StatusChoice.SCHEDULE).exists():
        producer.publish_message_from_database()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    done = Published.objects.filter(status=StatusChoice.SUCCEEDED).count()
    if done != args.events:
        sys.exit(f"{done} of {args.events} rows succeeded")
    # VmHWM, not ru_maxrss: a child started by vfork inherits its parent's high-water mark.
    rss = next(
        int(line.split()[1]) / 1024
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    print(
        json.dumps(
            {
                "events": args.events,
                "seconds": elapsed,
                "events_per_s": args.events / elapsed,
                "cpu_s": cpu,
                "max_rss_mb": rss,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("step", choices=["prepare", "run"])
    ap.add_argument("--database", required=True)
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--stomp-port", type=int, required=True)
    args = ap.parse_args()
    setup(args.database, args.stomp_port)
    if args.step == "prepare":
        prepare(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
