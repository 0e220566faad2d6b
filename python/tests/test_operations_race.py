"""Operator actions while a relay works on the table: nothing pending is ever lost."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from conveyor import Event, EventSpec, Status, publish_many
from conveyor import operations as ops
from conveyor.selection import EventFilter

ACTOR = "race@test"
LONG_AGO = dt.timedelta(days=30)


def _thread(target: Callable[[], Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.concurrent
@pytest.mark.django_db(transaction=True)
def test_purge_racing_a_relay_loses_nothing_pending() -> None:
    """A fake relay settles pending events as published (with an old published_at, so they
    are purgeable at once) and a writer keeps publishing, while purge runs again and again.
    Every event that disappeared had been published first."""
    with transaction.atomic():
        old = publish_many([EventSpec("a", {"i": i}) for i in range(150)])
    Event.objects.update(status=Status.PUBLISHED, published_at=timezone.now() - LONG_AGO)
    created = {e.pk for e in old}
    published = set(created)
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        while not stop.is_set():
            with transaction.atomic():
                events = publish_many([EventSpec("b", {}, key=f"k{i % 3}") for i in range(5)])
            with lock:
                created.update(e.pk for e in events)
            time.sleep(0.005)

    def relay() -> None:
        while not stop.is_set():
            with transaction.atomic():
                qs = Event.objects.filter(status=Status.PENDING).order_by("pk")
                if connection.features.has_select_for_update_skip_locked:
                    qs = qs.select_for_update(skip_locked=True)
                ids = list(qs.values_list("pk", flat=True)[:7])
                # Settle like the relay: only rows still pending.
                Event.objects.filter(pk__in=ids, status=Status.PENDING).update(
                    status=Status.PUBLISHED, published_at=timezone.now() - LONG_AGO, attempts=1
                )
            with lock:
                published.update(ids)
            time.sleep(0.002)

    threads = [_thread(writer, errors), _thread(relay, errors)]
    deleted = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        deleted += ops.purge(dt.timedelta(days=7), actor=ACTOR, batch_size=10).deleted
    stop.set()
    for t in threads:
        t.join(20)
    close_old_connections()
    assert not errors, errors
    present = set(Event.objects.values_list("pk", flat=True))
    missing = created - present
    assert len(missing) == deleted
    assert missing > {e.pk for e in old}, "the relay's events were never purged: no race"
    assert missing <= published, "a pending event was purged"
    assert not present - created


@pytest.mark.concurrent
@pytest.mark.django_db(transaction=True)
def test_replay_between_purge_select_and_delete_survives(monkeypatch: pytest.MonkeyPatch) -> None:
    """purge picks a batch, then a replay (another connection) makes one of its rows pending
    before the DELETE: the DELETE re-checks the status and keeps it."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer: purge's batch transaction holds the write lock")
    with transaction.atomic():
        events = publish_many([EventSpec("a", {"i": i}) for i in range(3)])
    Event.objects.update(status=Status.PUBLISHED, published_at=timezone.now() - LONG_AGO)
    target = events[1].pk
    real = QuerySet._raw_delete
    replayed: list[uuid.UUID] = []

    def delete_after_replay(self: QuerySet[Any], using: str | None) -> int:
        if not replayed:
            errors: list[BaseException] = []
            t = _thread(
                lambda: replayed.append(
                    ops.replay(EventFilter(ids=[target]), actor=ACTOR).last_id or target
                ),
                errors,
            )
            t.join(20)
            assert not errors, errors
        return real(self, using)

    monkeypatch.setattr(QuerySet, "_raw_delete", delete_after_replay)
    result = ops.purge(dt.timedelta(days=7), actor=ACTOR)
    assert replayed == [target]
    assert result.published == 2
    assert list(Event.objects.values_list("pk", "status")) == [(target, Status.PENDING)]
