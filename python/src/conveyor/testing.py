"""Helpers for your own tests.

    from conveyor.testing import captured_events

    def test_place_order():
        with captured_events() as events:
            place_order("ada", Decimal("9.99"))
        assert [e.event_type for e in events] == ["order.placed"]

Events are captured when publish() records them, so this works inside Django's TestCase (whose
transactions never commit). A publish() whose transaction later rolls back is still captured:
to test rollback behaviour, query ``conveyor.Event`` from a TransactionTestCase instead.
A repeated idempotency key records nothing, so it captures nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.models import Event
from conveyor.publishing import _observers


class CapturedEvents(list[Event]):
    """The events recorded inside a :func:`captured_events` block, in publish order."""

    def of_type(self, event_type: str) -> list[Event]:
        return [event for event in self if event.event_type == event_type]

    @property
    def types(self) -> list[str]:
        return [event.event_type for event in self]


@contextmanager
def captured_events() -> Iterator[CapturedEvents]:
    """Collect every event publish()/publish_many() records inside the block."""
    captured = CapturedEvents()
    _observers.append(captured.extend)
    try:
        yield captured
    finally:
        _observers.remove(captured.extend)


__all__ = ["CapturedEvents", "captured_events"]
