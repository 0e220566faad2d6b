"""A snapshot of the outbox: how many events are in each state, and how far behind it is."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Min, Q
from django.utils import timezone

from conveyor.conf import get_settings
from conveyor.models import Event, Status


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """Counts by status, plus the oldest pending event that is due.

    ``oldest_pending_age`` is measured against this host's clock; a value that keeps growing
    means no relay is delivering. Events scheduled for later (deliver_at) count as pending but
    are left out of the age.
    """

    database: str
    pending: int
    published: int
    dead: int
    scheduled: int  # pending, but with available_at in the future
    oldest_pending_created_at: dt.datetime | None
    oldest_pending_age: dt.timedelta | None

    @property
    def total(self) -> int:
        return self.pending + self.published + self.dead

    def as_dict(self) -> dict[str, Any]:
        created = self.oldest_pending_created_at
        age = self.oldest_pending_age
        return {
            "database": self.database,
            "counts": {
                "pending": self.pending,
                "published": self.published,
                "dead": self.dead,
            },
            "total": self.total,
            "scheduled": self.scheduled,
            "oldest_pending_created_at": created.isoformat() if created else None,
            "oldest_pending_age_seconds": round(age.total_seconds(), 3) if age else None,
        }


def outbox_status(using: str | None = None) -> OutboxStatus:
    """Read the snapshot in two queries (counts by status, then the oldest due event)."""
    alias = using or get_settings().database_alias
    now = timezone.now()
    events = Event._default_manager.db_manager(alias)
    counts = {
        row["status"]: row["n"]
        for row in events.order_by().values("status").annotate(n=Count("pk"))
    }
    pending = events.filter(status=Status.PENDING).aggregate(
        oldest_due=Min("created_at", filter=Q(available_at__lte=now)),
        scheduled=Count("pk", filter=Q(available_at__gt=now)),
    )
    oldest: dt.datetime | None = pending["oldest_due"]
    return OutboxStatus(
        database=alias,
        pending=counts.get(Status.PENDING, 0),
        published=counts.get(Status.PUBLISHED, 0),
        dead=counts.get(Status.DEAD, 0),
        scheduled=pending["scheduled"],
        oldest_pending_created_at=oldest,
        oldest_pending_age=max(now - oldest, dt.timedelta(0)) if oldest else None,
    )


__all__ = ["OutboxStatus", "outbox_status"]
