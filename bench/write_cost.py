"""Write-side cost of django-conveyor, for make bench.

Three comparisons, each interleaved in rounds to cancel drift, on a database cloned from
the migrated template (the one bench/notify_cost.py uses):

  1. a transaction that inserts one business row, with and without publish();
  2. publish_many() of 100 events against 100 publish() calls, one transaction each;
  3. the NOTIFY trigger's cost (bench/notify_cost.py's measurement, reused).

Usage (services env loaded):

    .venv/bin/python bench/write_cost.py --transactions 2000 --json out.json
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

import notify_cost  # sibling script: its Django setup and NOTIFY measurement


def summarize(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "n": len(xs),
        "mean_us": statistics.fmean(xs) * 1e6,
        "p50_us": xs[len(xs) // 2] * 1e6,
        "p99_us": xs[int(len(xs) * 0.99)] * 1e6,
    }


def bench_order_model() -> Any:
    """The business row as a Django model (what a view would write), on bench_order."""
    from django.db import models

    class BenchOrder(models.Model):
        total = models.DecimalField(max_digits=12, decimal_places=2)

        class Meta:
            app_label = "conveyor"  # an installed app; the model exists only in this process
            db_table = "bench_order"
            managed = False

    return BenchOrder


RAW_INSERT = (
    "INSERT INTO conveyor_event (id, event_type, source, key, subject, data, headers, "
    "idempotency_key) VALUES (%s, %s, %s, %s, NULL, %s, '{}', NULL)"
)


def one_row(n: int, rounds: int) -> dict[str, list[float]]:
    """A one-row transaction with and without publish(), the row written with SQL and with
    the ORM; plus the same event inserted with plain SQL instead of publish(), the floor
    of what recording an event costs from Python."""
    import json
    from decimal import Decimal

    from django.db import connection, transaction

    from conveyor import publish
    from conveyor.ids import uuid7

    order = bench_order_model()
    labels = [
        "1 row (SQL)",
        "1 row (SQL) + publish()",
        "1 row (ORM)",
        "1 row (ORM) + publish()",
        "1 row (SQL) + the event by plain SQL",
    ]
    samples: dict[str, list[float]] = {label: [] for label in labels}
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for label in labels:
            orm = "(ORM)" in label
            for i in range(per_round):
                data = {"order": i, "total": "12.50"}
                t0 = time.perf_counter()
                with transaction.atomic():
                    if orm:
                        order.objects.create(total=Decimal(i))
                    else:
                        with connection.cursor() as cur:
                            cur.execute("INSERT INTO bench_order (total) VALUES (%s)", [i])
                    if label.endswith("publish()"):
                        publish("order.placed", data, key=f"c-{i % 100}")
                    elif label.endswith("plain SQL"):
                        with connection.cursor() as cur:
                            cur.execute(
                                RAW_INSERT,
                                [
                                    uuid7(),
                                    "order.placed",
                                    "bench",
                                    f"c-{i % 100}",
                                    json.dumps(data),
                                ],
                            )
                samples[label].append(time.perf_counter() - t0)
    return samples


def batch(n: int, rounds: int, size: int = 100) -> dict[str, list[float]]:
    from django.db import transaction

    from conveyor import publish, publish_many

    samples: dict[str, list[float]] = {
        f"publish_many({size})": [],
        f"{size} × publish()": [],
    }
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for label in samples:
            for i in range(per_round):
                events: list[dict[str, Any]] = [
                    {
                        "event_type": "order.placed",
                        "data": {"order": i, "line": j},
                        "key": f"c-{(i * size + j) % 100}",
                    }
                    for j in range(size)
                ]
                t0 = time.perf_counter()
                with transaction.atomic():
                    if label.startswith("publish_many"):
                        publish_many(events)
                    else:
                        for e in events:
                            publish(e["event_type"], e["data"], key=e["key"])
                samples[label].append(time.perf_counter() - t0)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transactions", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    notify_cost.setup_django()
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS bench_order (id bigserial primary key, total numeric)"
        )
    out: dict[str, dict[str, dict[str, float]]] = {}
    out["one_row"] = {k: summarize(v) for k, v in one_row(args.transactions, args.rounds).items()}
    out["batch"] = {
        k: summarize(v) for k, v in batch(max(20, args.transactions // 20), args.rounds).items()
    }
    out["notify"] = {
        k: summarize(v)
        for k, v in notify_cost.run(max(200, args.transactions // 2), args.rounds).items()
    }
    for section, rows in out.items():
        first = next(iter(rows.values()))["mean_us"]
        print(f"| {section} | n | mean µs | p50 µs | p99 µs | vs first |")
        print("|---|---|---|---|---|---|")
        for label, r in rows.items():
            print(
                f"| {label} | {r['n']} | {r['mean_us']:.0f} | {r['p50_us']:.0f} | "
                f"{r['p99_us']:.0f} | {r['mean_us'] / first:.2f}× |"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
