"""The smoke check of make test: bench-quick ran every section and produced numbers.

It asserts that the report exists and that every measurement it should hold is there and
non-zero, never how fast anything was. Usage: python bench/check_report.py REPORT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    path = Path(sys.argv[1])
    report: dict[str, Any] = json.loads(path.read_text())
    problems: list[str] = []

    def need(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    limits = {x["name"].split(" ")[0]: x for x in report.get("limits") or []}
    for name in ("database", "nats", "kafka", "rabbitmq"):
        need(limits.get(name, {}).get("events_per_s", 0) > 0, f"limit {name}: no events/s")
    relay = {x["broker"]: x for x in report.get("relay") or []}
    for broker in ("nats", "kafka", "rabbitmq"):
        r = relay.get(broker, {})
        need(r.get("events_per_s", 0) > 0, f"relay -> {broker}: no events/s")
        need(r.get("relay_peak_rss_mb", 0) > 0, f"relay -> {broker}: no peak RSS")
    load = report.get("load") or []
    need(len(load) >= 4, f"sustained load: {len(load)} runs, want at least 4")
    for run in load:
        label = f"load {run.get('name')} {run.get('writer')} {run.get('wakeup')}"
        need(not run.get("error"), f"{label}: {run.get('error')}")
        need(run.get("latency_samples", 0) > 0 and run.get("p99_ms", 0) > 0, f"{label}: no latency")
        need(run.get("delivered", 0) >= run.get("written", 1) > 0, f"{label}: events missing")
        need(bool(run.get("relay_steps")), f"{label}: no relay step metrics")
    shapes = report.get("shapes") or []
    need(len(shapes) == 5, f"shapes: {len(shapes)} runs, want 5")
    for s in shapes:
        need(s.get("events_per_s", 0) > 0, f"shape {s.get('name')}: no events/s")
        need(s.get("order_violations", 0) == 0, f"shape {s.get('name')}: order violations")
    sections = (report.get("write_cost") or {}).get("sections") or {}
    need(bool(sections.get("one_row")), "write cost: no one-row transactions")
    peers = report.get("peers") or []
    need(len(peers) == 2, f"peers: {len(peers)}, want 2")
    for p in peers:
        need(p.get("events_per_s", 0) > 0, f"peer {p.get('name')}: no events/s ({p.get('note')})")
    profiles = report.get("profiles") or []
    need(len(profiles) >= 3, f"profiles: {len(profiles)}, want the database limit, NATS and RabbitMQ")
    for pr in profiles:
        need(not pr.get("top", "").startswith("go tool pprof failed"), f"profile {pr.get('name')}")

    if problems:
        sys.exit(f"{path}: the benchmark did not produce every number:\n  " + "\n  ".join(problems))
    print(f"{path}: every section produced numbers")


if __name__ == "__main__":
    main()
