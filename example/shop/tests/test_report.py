from __future__ import annotations

import datetime as dt
import json
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from conveyor import Event, Status
from shop.report import build_report, load_received, percentile

T0 = 1_800_000_000.0  # a fixed commit time (Unix seconds)


def _orders(n: int) -> dict[str, Any]:
    return {
        "committed": [
            {
                "order_id": i,
                "event_id": str(uuid.UUID(int=i + 1)),
                "event_type": "order.placed",
                "key": "customer-ada",
                "committed_at": T0 + i,
            }
            for i in range(n)
        ],
        "rolled_back": [
            {"order_id": 99, "event_id": str(uuid.UUID(int=999)), "event_type": "order.placed"}
        ],
    }


def _message(event_id: str, acked: float, type_: str = "order.placed") -> dict[str, Any]:
    stamp = dt.datetime.fromtimestamp(acked, dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "id": event_id,
        "type": type_,
        "subject": "events.order.placed",
        "time": "2027-01-15T08:00:00Z",
        "acked_at": stamp,
    }


def _received(orders: dict[str, Any], delay: float = 0.005) -> list[dict[str, Any]]:
    return [_message(o["event_id"], o["committed_at"] + delay) for o in orders["committed"]]


def test_all_good() -> None:
    orders = _orders(4)
    report = build_report(orders, _received(orders), published=4)
    assert report.ok, report.problems
    assert (report.committed, report.published, report.received) == (4, 4, 4)
    assert report.rolled_back_absent
    assert report.latency is not None
    assert report.latency.p50 == pytest.approx(0.005, abs=1e-5)
    text = report.render()
    assert "rolled-back event absent        yes" in text
    assert "p50 5.0 ms" in text
    assert text.endswith("never left the database.")


def test_missing_event() -> None:
    orders = _orders(3)
    report = build_report(orders, _received(orders)[:2], published=3)
    assert not report.ok
    assert "1 committed event(s) never reached the stream" in report.problems[0]
    assert "FAILED" in report.render()


def test_rolled_back_event_on_the_stream() -> None:
    orders = _orders(2)
    leaked = [*_received(orders), _message(orders["rolled_back"][0]["event_id"], T0)]
    report = build_report(orders, leaked, published=2)
    assert not report.rolled_back_absent
    assert any("rolled-back event(s) reached the stream" in p for p in report.problems)
    assert "rolled-back event absent        NO" in report.render()


def test_extra_and_duplicate_events() -> None:
    orders = _orders(2)
    received = _received(orders)
    extra = [*received, received[0], _message(str(uuid.UUID(int=12345)), T0)]
    problems = build_report(orders, extra, published=2).problems
    assert any("unexpected event(s)" in p for p in problems)
    assert any("received more than once" in p for p in problems)


def test_unpublished_in_database() -> None:
    orders = _orders(2)
    problems = build_report(orders, _received(orders), published=1).problems
    assert problems == ["1 of 2 committed events are marked published in the database"]


def test_wrong_type() -> None:
    orders = _orders(1)
    received = [_message(orders["committed"][0]["event_id"], T0, type_="order.paid")]
    assert "type 'order.paid'" in build_report(orders, received, published=1).problems[0]


def test_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7.0
    orders = _orders(100)
    received = [
        _message(o["event_id"], o["committed_at"] + (i + 1) / 1000)
        for i, o in enumerate(orders["committed"])
    ]
    latency = build_report(orders, received, published=100).latency
    assert latency is not None
    assert latency.p50 == pytest.approx(0.050, abs=1e-5)
    assert latency.p99 == pytest.approx(0.099, abs=1e-5)
    assert latency.max == pytest.approx(0.100, abs=1e-5)


def test_load_received_accepts_nanoseconds_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "received.jsonl"
    line = {"id": "x", "acked_at": "2027-01-15T08:00:00.123456789Z"}
    path.write_text(json.dumps(line) + "\n\n")
    assert load_received(path) == [line]
    path.write_text("not json\n")
    with pytest.raises(ValueError, match=r"received\.jsonl:1: not JSON"):
        load_received(path)


def _write(tmp_path: Path, orders: dict[str, Any], received: list[dict[str, Any]]) -> list[str]:
    (tmp_path / "orders.json").write_text(json.dumps(orders))
    (tmp_path / "received.jsonl").write_text("".join(json.dumps(m) + "\n" for m in received))
    return [
        "--orders",
        str(tmp_path / "orders.json"),
        "--received",
        str(tmp_path / "received.jsonl"),
    ]


@pytest.mark.django_db
def test_demo_report_command(tmp_path: Path) -> None:
    orders = _orders(3)
    for o in orders["committed"]:
        Event.objects.create(
            id=uuid.UUID(o["event_id"]),
            event_type="order.placed",
            source="shop",
            data={},
            status=Status.PUBLISHED,
        )
    out = StringIO()
    call_command("demo_report", *_write(tmp_path, orders, _received(orders)), stdout=out)
    assert "published (status in database)  3" in out.getvalue()
    assert "OK:" in out.getvalue()


@pytest.mark.django_db
def test_demo_report_command_fails_loudly(tmp_path: Path) -> None:
    orders = _orders(3)
    out = StringIO()
    with pytest.raises(CommandError, match="demo failed: 2 problem"):
        call_command("demo_report", *_write(tmp_path, orders, _received(orders)[1:]), stdout=out)
    assert "never reached the stream" in out.getvalue()
    assert "0 of 3 committed events are marked published" in out.getvalue()


def test_demo_report_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No such file"):
        call_command(
            "demo_report", "--orders", str(tmp_path / "nope.json"), "--received", str(tmp_path)
        )
