"""What the admin's summary page shows: the outbox status, and dead letters by event type."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Max, Min, Q, QuerySet

from conveyor.conf import get_settings
from conveyor.models import Event, Status
from conveyor.status import OutboxStatus, outbox_status


@dataclass(frozen=True, slots=True)
class DeadType:
    """The dead (not discarded) events of one event type."""

    event_type: str
    count: int
    blocking: int  # how many hold their ordering key (on_dead: block)
    oldest: dt.datetime
    newest: dt.datetime


@dataclass(frozen=True, slots=True)
class Summary:
    status: OutboxStatus
    discarded: int  # dead events an operator discarded (counted in status.dead too)
    dead_types: list[DeadType]

    @property
    def active_dead(self) -> int:
        return self.status.dead - self.discarded

    @property
    def oldest_pending_display(self) -> str:
        """``"4m 12s"``, or ``"-"`` when nothing due is pending."""
        age = self.status.oldest_pending_age
        return "-" if age is None else human_duration(age)


def human_duration(value: dt.timedelta) -> str:
    """Two units at most: ``"2d 3h"``, ``"4m 12s"``, ``"0.4s"``."""
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f}s"
    total = int(seconds)
    units = [("d", total // 86400), ("h", total % 86400 // 3600), ("m", total % 3600 // 60)]
    units.append(("s", total % 60))
    first = next(i for i, (_, n) in enumerate(units) if n)  # total >= 10, so one is non-zero
    return " ".join(f"{n}{unit}" for unit, n in units[first : first + 2])


def dead_letters(using: str | None = None) -> QuerySet[Event]:
    """Dead, not discarded events, newest first: the ones an operator still has to handle."""
    alias = using or get_settings().database_alias
    return (
        Event._default_manager.db_manager(alias)
        .filter(status=Status.DEAD, discarded_at__isnull=True)
        .order_by("-pk")
    )


def outbox_summary(using: str | None = None) -> Summary:
    """Three queries on top of outbox_status(): discarded count and dead letters by type."""
    alias = using or get_settings().database_alias
    events = Event._default_manager.db_manager(alias)
    discarded = events.filter(status=Status.DEAD, discarded_at__isnull=False).count()
    rows = (
        dead_letters(alias)
        .order_by()
        .values("event_type")
        .annotate(
            n=Count("pk"),
            blocking=Count("pk", filter=Q(blocks_key=True)),
            oldest=Min("created_at"),
            newest=Max("created_at"),
        )
        .order_by("-n", "event_type")
    )
    return Summary(
        status=outbox_status(alias),
        discarded=discarded,
        dead_types=[
            DeadType(r["event_type"], r["n"], r["blocking"], r["oldest"], r["newest"]) for r in rows
        ],
    )


__all__ = ["DeadType", "Summary", "dead_letters", "human_duration", "outbox_summary"]
