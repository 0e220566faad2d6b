"""The demo's verdict: compare what Django committed with what reached the stream.

Pure functions over the two files (and the published count read from the database), so the
logic is tested without a broker.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Latency:
    p50: float
    p99: float
    max: float


@dataclass
class DemoReport:
    committed: int
    published: int
    received: int
    rolled_back: int
    rolled_back_absent: bool
    latency: Latency | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def render(self) -> str:
        lat = self.latency
        latency = "n/a"
        if lat:
            latency = (
                f"p50 {lat.p50 * 1000:.1f} ms   p99 {lat.p99 * 1000:.1f} ms   "
                f"max {lat.max * 1000:.1f} ms"
            )
        lines = [
            "Conveyor demo report",
            f"  events committed                {self.committed}",
            f"  published (status in database)  {self.published}",
            f"  received from the stream        {self.received}",
            f"  rolled-back event absent        {'yes' if self.rolled_back_absent else 'NO'}"
            f" ({self.rolled_back} rolled back)",
            f"  commit -> broker ack latency    {latency}",
        ]
        if self.ok:
            lines.append(
                "OK: every committed event reached the stream exactly once, "
                "and the rolled-back event never left the database."
            )
        else:
            lines.append("FAILED:")
            lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


def load_orders(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "committed" not in data or "rolled_back" not in data:
        raise ValueError(f"{path}: expected an object with 'committed' and 'rolled_back' lists")
    return data


def load_received(path: Path) -> list[dict[str, Any]]:
    """JSON lines from `conveyor tail --json`; blank lines are ignored."""
    received = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(item, dict) or "id" not in item:
            raise ValueError(f"{path}:{number}: expected an object with an 'id'")
        received.append(item)
    return received


def ack_time(message: dict[str, Any]) -> dt.datetime:
    """The broker's acknowledgement time (JetStream's message timestamp), RFC 3339."""
    stamp = message.get("acked_at") or message.get("received_at")
    if not isinstance(stamp, str):
        raise ValueError(f"message {message.get('id')}: no acked_at/received_at timestamp")
    return dt.datetime.fromisoformat(stamp)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def build_report(
    orders: dict[str, Any], received: Iterable[dict[str, Any]], published: int
) -> DemoReport:
    committed = {str(o["event_id"]): o for o in orders["committed"]}
    rolled_back = {str(o["event_id"]) for o in orders["rolled_back"]}
    messages = list(received)
    counts = Counter(str(m["id"]) for m in messages)
    first_seen: dict[str, dict[str, Any]] = {}
    for message in messages:
        first_seen.setdefault(str(message["id"]), message)

    problems: list[str] = []
    missing = sorted(set(committed) - set(counts))
    if missing:
        problems.append(f"{len(missing)} committed event(s) never reached the stream: {missing}")
    leaked = sorted(rolled_back & set(counts))
    if leaked:
        problems.append(f"rolled-back event(s) reached the stream: {leaked}")
    extra = sorted(set(counts) - set(committed) - rolled_back)
    if extra:
        problems.append(f"{len(extra)} unexpected event(s) on the stream: {extra}")
    duplicated = sorted(i for i, n in counts.items() if n > 1)
    if duplicated:
        problems.append(f"event(s) received more than once: {duplicated}")
    if published != len(committed):
        problems.append(
            f"{published} of {len(committed)} committed events are marked published in the database"
        )
    for event_id, message in first_seen.items():
        order = committed.get(event_id)
        if order and message.get("type") not in (None, order.get("event_type")):
            problems.append(
                f"event {event_id}: type {message.get('type')!r}, expected {order['event_type']!r}"
            )

    delays = [
        ack_time(first_seen[i]).timestamp() - float(committed[i]["committed_at"])
        for i in committed
        if i in first_seen
    ]
    latency = (
        Latency(p50=percentile(delays, 50), p99=percentile(delays, 99), max=max(delays))
        if delays
        else None
    )
    return DemoReport(
        committed=len(committed),
        published=published,
        received=len(messages),
        rolled_back=len(rolled_back),
        rolled_back_absent=not leaked,
        latency=latency,
        problems=problems,
    )
