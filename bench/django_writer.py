"""Write events through Django's conveyor.publish() at a fixed rate, for make bench.

Each process commits one publish() per transaction, open loop (transaction i is due at
start + i / rate whatever happened before), and writes one "id commit_ns" line per
event, the time taken right after COMMIT returned. Usage (services env loaded):

    .venv/bin/python bench/django_writer.py --database DB --rate 1000 --seconds 20 \
        --processes 2 --out DIR
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python" / "src"))

FILLER = (
    "Leave the parcel with the concierge if nobody answers; the side entrance on "
    "Rue des Lilas is open from 8:00 to 19:00. Gift wrap the second item, no invoice in the box. "
)


def payload(i: int, key: str) -> dict[str, object]:
    """The same ~1 KB order the Go side of the benchmark sends (bench/events.go)."""
    return {
        "order_id": i,
        "customer": key,
        "currency": "EUR",
        "total": f"{1000 + i % 9000}.50",
        "lines": [
            {
                "sku": f"SKU-{(i + line * 7919) % 100000}",
                "name": "Stoneware mug, 350 ml, glazed",
                "qty": 1 + (i + line) % 4,
                "unit_price": "12.50",
            }
            for line in range(5)
        ],
        "shipping": {"method": "standard", "address": "12 Rue des Lilas, 75019 Paris, FR"},
        "note": FILLER + FILLER,
    }


def setup(database: str) -> None:
    import django
    from django.conf import settings

    dsn = os.environ.get("CONVEYOR_TEST_PG_DSN")
    if not dsn:
        sys.exit('CONVEYOR_TEST_PG_DSN is not set: eval "$(scripts/services.sh env)"')
    u = urlsplit(dsn)
    settings.configure(
        INSTALLED_APPS=["conveyor"],
        USE_TZ=True,
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": database,
                "USER": unquote(u.username or ""),
                "PASSWORD": unquote(u.password or ""),
                "HOST": u.hostname,
                "PORT": str(u.port),
            }
        },
    )
    django.setup()


def writer(n: int, of: int, args: argparse.Namespace, start_at: float) -> None:
    setup(args.database)
    from django.db import connection, transaction

    from conveyor import publish

    connection.ensure_connection()
    rate = args.rate / of
    total = int(rate * args.seconds)
    lines = []
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.perf_counter()
    for j in range(total):
        due = t0 + j / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        i = j * of + n
        key = f"k-{i % 10000:05d}"
        with transaction.atomic():
            ev = publish("order.placed", payload(i, key), key=key, source="bench")
        lines.append(f"{ev.pk} {time.time_ns()}\n")
    Path(args.out, f"commits-{n}.txt").write_text("".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database", required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    start_at = time.time() + 1.5  # every process has set Django up by then
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=writer, args=(n, args.processes, args, start_at))
        for n in range(args.processes)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        sys.exit("a writer process failed")


if __name__ == "__main__":
    main()
