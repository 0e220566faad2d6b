"""Measure what the PostgreSQL NOTIFY trigger adds to a Django transaction with publish().

Runs N transactions of (one business-like row + publish()) with the statement-level
trigger enabled, then with it disabled, interleaved in rounds to cancel drift, and prints
a Markdown table. Usage (from the repo root, services up):

    .venv/bin/python bench/notify_cost.py --transactions 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python" / "src"))


def setup_django() -> None:
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
                "NAME": "conveyor_bench_notify",
                "USER": unquote(u.username or ""),
                "PASSWORD": unquote(u.password or ""),
                "HOST": u.hostname,
                "PORT": str(u.port),
            }
        },
    )
    import psycopg

    admin = psycopg.connect(dsn, autocommit=True)
    admin.execute("DROP DATABASE IF EXISTS conveyor_bench_notify WITH (FORCE)")
    admin.execute("CREATE DATABASE conveyor_bench_notify TEMPLATE conveyor_template")
    admin.close()
    django.setup()


def run(n: int, rounds: int) -> dict[str, list[float]]:
    from django.db import connection, transaction

    from conveyor import publish

    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_order (id bigserial primary key, total numeric)")
    samples: dict[str, list[float]] = {"with NOTIFY trigger": [], "trigger disabled": []}
    per_round = n // rounds
    for _ in range(rounds):
        for label, enable in (("with NOTIFY trigger", True), ("trigger disabled", False)):
            with connection.cursor() as cur:
                state = "ENABLE" if enable else "DISABLE"
                cur.execute(f"ALTER TABLE conveyor_event {state} TRIGGER conveyor_event_notify")
            for i in range(per_round):
                t0 = time.perf_counter()
                with transaction.atomic():
                    with connection.cursor() as cur:
                        cur.execute("INSERT INTO bench_order (total) VALUES (%s)", [i])
                    publish("order.placed", {"order": i, "total": "12.50"}, key=f"c-{i % 100}")
                samples[label].append(time.perf_counter() - t0)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transactions", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    setup_django()
    samples = run(args.transactions, args.rounds)
    rows = {}
    for label, xs in samples.items():
        xs.sort()
        rows[label] = {
            "n": len(xs),
            "mean_us": statistics.fmean(xs) * 1e6,
            "p50_us": xs[len(xs) // 2] * 1e6,
            "p99_us": xs[int(len(xs) * 0.99)] * 1e6,
        }
    base = rows["trigger disabled"]["mean_us"]
    print("| transaction (1 row + publish()) | n | mean µs | p50 µs | p99 µs | vs disabled |")
    print("|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(
            f"| {label} | {r['n']} | {r['mean_us']:.0f} | {r['p50_us']:.0f} | {r['p99_us']:.0f} "
            f"| {r['mean_us'] / base:.3f}× |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
