from __future__ import annotations

import datetime as dt
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from conveyor import Event, EventSpec, Status, publish_many
from conveyor.status import outbox_status

pytestmark = pytest.mark.django_db


def _seed() -> list[Event]:
    events = publish_many(
        [
            EventSpec("a", {}),
            EventSpec("a", {}),
            EventSpec("a", {}, deliver_at=timezone.now() + dt.timedelta(days=1)),
            EventSpec("b", {}),
            EventSpec("c", {}),
        ]
    )
    Event.objects.filter(pk=events[3].pk).update(status=Status.PUBLISHED)
    Event.objects.filter(pk=events[4].pk).update(status=Status.DEAD, last_error="rejected")
    # Age the oldest due event by a known amount.
    Event.objects.filter(pk=events[0].pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )
    return events


def test_empty_outbox() -> None:
    status = outbox_status()
    assert (status.pending, status.published, status.dead, status.total) == (0, 0, 0, 0)
    assert status.oldest_pending_age is None


def test_counts_and_backlog() -> None:
    _seed()
    status = outbox_status()
    assert (status.pending, status.published, status.dead, status.scheduled) == (3, 1, 1, 1)
    assert status.total == 5
    assert status.oldest_pending_age is not None
    assert dt.timedelta(minutes=4) < status.oldest_pending_age < dt.timedelta(minutes=6)


def test_command_text() -> None:
    _seed()
    out = StringIO()
    call_command("conveyor_status", stdout=out)
    text = out.getvalue()
    assert "pending     3 (1 scheduled for later)" in text
    assert "published   1" in text
    assert "dead        1" in text
    assert "oldest due pending event age  3" in text  # ~300s


def test_command_json() -> None:
    _seed()
    out = StringIO()
    call_command("conveyor_status", "--json", "--database", "default", stdout=out)
    data = json.loads(out.getvalue())
    assert data["counts"] == {"pending": 3, "published": 1, "dead": 1}
    assert data["total"] == 5 and data["scheduled"] == 1 and data["database"] == "default"
    assert 240 < data["oldest_pending_age_seconds"] < 360
    assert dt.datetime.fromisoformat(data["oldest_pending_created_at"]).tzinfo is not None


def test_command_json_empty() -> None:
    out = StringIO()
    call_command("conveyor_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["oldest_pending_age_seconds"] is None
    assert data["counts"] == {"pending": 0, "published": 0, "dead": 0}
