from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from conveyor import EventSpec, publish_many
from conveyor.models import Event
from conveyor.selection import EventFilter, glob_to_regex, parse_duration, parse_when

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", dt.timedelta(seconds=30)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("500ms", dt.timedelta(milliseconds=500)),
        ("7d", dt.timedelta(days=7)),
        ("1.5d", dt.timedelta(hours=36)),
        (" 2h ", dt.timedelta(hours=2)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7", "d", "7 days", "-1d", "1x", "h1", "1h-1m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_when() -> None:
    assert parse_when("2h", now=NOW) == NOW - dt.timedelta(hours=2)
    assert parse_when("2026-11-20", now=NOW) == dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    assert parse_when("2026-11-20T12:00:00+01:00", now=NOW) == dt.datetime(
        2026, 11, 20, 11, tzinfo=dt.UTC
    )
    assert parse_when("2026-11-20T12:00:00Z", now=NOW).tzinfo is not None
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_when("yesterday", now=NOW)


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        ("order.*", ["order.placed", "order.", "order.a/b"], ["orders.placed", "xorder.a"]),
        ("order.?aid", ["order.paid"], ["order.prepaid", "order.aid"]),
        ("[ab].x", ["[ab].x"], ["a.x"]),
        ("a+b(c)|d$\\", ["a+b(c)|d$\\"], ["aab(c)"]),
        ("*", ["anything.at.all", ""], []),
        ("Order", ["Order"], ["order"]),
    ],
)
def test_glob_to_regex(glob: str, matches: list[str], misses: list[str]) -> None:
    rx = re.compile(glob_to_regex(glob))
    for text in matches:
        assert rx.match(text), text
    for text in misses:
        assert not rx.match(text), text


def test_filter_validation() -> None:
    with pytest.raises(ValueError, match="limit"):
        EventFilter(limit=0)
    with pytest.raises(ValueError, match="aware"):
        EventFilter(since=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="must not be empty"):
        EventFilter(event_type="")


def test_describe() -> None:
    """The relay's CLI flag syntax (store.Filter.String in Go)."""
    assert EventFilter().describe() == "(all)"
    assert EventFilter(limit=3, after_id=uuid.UUID(int=1)).describe() == "(all)"
    one = uuid.UUID(int=1)
    assert EventFilter(ids=[one]).describe() == f"--id {one}"
    ids = [uuid.UUID(int=i) for i in range(7)]
    text = EventFilter(
        ids=ids, event_type="order.*", key="k 1", since=NOW, until=NOW, error="boom"
    ).describe()
    assert text == (
        '--id (7 ids) --type "order.*" --key "k 1" --since 2026-11-27T12:00:00Z '
        "--until 2026-11-27T12:00:00Z --error boom"
    )


@pytest.mark.django_db
def test_glob_in_the_database() -> None:
    """The same glob selects the same rows on every backend (regex dialects differ)."""
    types = [
        "order.placed",
        "order.paid",
        "orders.placed",
        "Order.placed",
        "order/x",
        "a.b+c",
        "[x]",
    ]
    publish_many([EventSpec(t, {}) for t in types])

    def selected(glob: str) -> list[str]:
        q = EventFilter(event_type=glob).q()
        return sorted(Event.objects.filter(q).values_list("event_type", flat=True))

    assert selected("order.*") == ["order.paid", "order.placed"]
    assert selected("order.p?id") == ["order.paid"]
    assert selected("?rder.placed") == ["Order.placed", "order.placed"]
    assert selected("a.b+c") == ["a.b+c"]
    assert selected("[x]") == ["[x]"]
    assert selected("*") == sorted(types)
    assert selected("order.placed") == ["order.placed"]  # exact, case-sensitive
    assert selected("order*") == ["order.paid", "order.placed", "order/x", "orders.placed"]

    def exact(name: str) -> list[str]:
        q = EventFilter(event_type=name, exact_type=True).q()
        return list(Event.objects.filter(q).values_list("event_type", flat=True))

    assert exact("order.placed") == ["order.placed"]
    assert exact("order.*") == []
