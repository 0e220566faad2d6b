"""Where publish()'s cost goes: an interleaved A/B of one-row Django transactions.

Each variant adds one thing to the same transaction (BEGIN, INSERT one business row,
COMMIT), in rounds so that drift hits every variant alike; medians are compared. Used for
finding 7 of docs/benchmarks.md. Usage (services env loaded):

    .venv/bin/python bench/write_ab.py [--per-round 250] [--rounds 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import notify_cost  # sibling script: its Django setup (a clone of the migrated template)

DATA = {"order": 1, "total": "12.50"}
RAW = (
    "INSERT INTO conveyor_event (id, event_type, source, key, subject, data, headers) "
    "VALUES (%s, %s, %s, %s, NULL, %s, '{}')"
)
# What conveyor/fast_insert.py sends for one event.
AS_PUBLISH = (
    "INSERT INTO conveyor_event (id, event_type, source, key, subject, data, headers, "
    "available_at) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, "
    "coalesce(%s::timestamptz, statement_timestamp())) RETURNING created_at, available_at"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-round", type=int, default=250)
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args()
    notify_cost.setup_django()
    from django.db import connection, transaction

    from conveyor import publish
    from conveyor.ids import uuid7

    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_order (id bigserial primary key, total numeric)")

    def second_row(i: int) -> None:
        with connection.cursor() as cur:
            cur.execute("INSERT INTO bench_order (total) VALUES (%s)", [i])

    def raw_event(i: int) -> None:
        with connection.cursor() as cur:
            cur.execute(RAW, [uuid7(), "order.placed", "bench", f"c-{i % 100}", json.dumps(DATA)])

    def as_publish(i: int) -> None:
        with connection.cursor() as cur:
            params = [uuid7(), "order.placed", "bench", f"c-{i % 100}", None, json.dumps(DATA), "{}", None]
            cur.execute(AS_PUBLISH, params)
            cur.fetchall()

    def call_publish(i: int) -> None:
        publish("order.placed", DATA, key=f"c-{i % 100}")

    variants: dict[str, Any] = {
        "1 row": None,
        "+ a second business row": second_row,
        "+ the event row by plain SQL": raw_event,
        "+ the event row as publish() sends it": as_publish,
        "+ publish()": call_publish,
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, extra in variants.items():
            for i in range(args.per_round):
                t0 = time.perf_counter()
                with transaction.atomic():
                    with connection.cursor() as cur:
                        cur.execute("INSERT INTO bench_order (total) VALUES (%s)", [i])
                    if extra is not None:
                        extra(i)
                samples[name].append(time.perf_counter() - t0)
    base = statistics.median(samples["1 row"])
    print("| transaction | n | median µs | × |")
    print("|---|---|---|---|")
    for name, xs in samples.items():
        m = statistics.median(xs)
        print(f"| {name} | {len(xs)} | {m * 1e6:.0f} | {m / base:.2f} |")


if __name__ == "__main__":
    main()
