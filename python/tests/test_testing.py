from __future__ import annotations

import pytest

from conveyor import EventSpec, publish, publish_many
from conveyor.publishing import _observers
from conveyor.testing import captured_events

pytestmark = pytest.mark.django_db


def test_captures_in_order_and_only_inside_the_block() -> None:
    publish("before", {})
    with captured_events() as events:
        publish("a", {"n": 1})
        publish_many([EventSpec("b", {}), EventSpec("a", {"n": 2})])
    publish("after", {})
    assert events.types == ["a", "b", "a"]
    assert [e.data["n"] for e in events.of_type("a")] == [1, 2]
    assert _observers == []


def test_nested_captures() -> None:
    with captured_events() as outer:
        publish("a", {})
        with captured_events() as inner:
            publish("b", {})
    assert outer.types == ["a", "b"]
    assert inner.types == ["b"]


def test_observer_removed_on_error() -> None:
    with pytest.raises(ValueError, match="event_type"), captured_events():
        publish("", {})
    assert _observers == []
