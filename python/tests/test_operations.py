"""conveyor.operations: retry, discard, replay and purge, with their audit trail."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import pytest
from django.utils import timezone

from conveyor import Event, EventSpec, Status, publish_many
from conveyor import operations as ops
from conveyor.models import AuditEntry
from conveyor.selection import EventFilter

pytestmark = pytest.mark.django_db

ACTOR = "ops@host"


def make(
    n: int, *, status: int, event_type: str = "order.placed", key: str | None = None, **fields: Any
) -> list[Event]:
    events = publish_many([EventSpec(event_type, {"i": i}, key=key) for i in range(n)])
    update: dict[str, Any] = {"status": status, **fields}
    if status == Status.DEAD:
        update.setdefault("attempts", 10)
        update.setdefault("last_error", "broker said no")
        update.setdefault("locked_by", "relay-1")
        update.setdefault("locked_until", timezone.now() - dt.timedelta(minutes=1))
    if status == Status.PUBLISHED:
        update.setdefault("published_at", timezone.now())
        update.setdefault("attempts", 1)
    Event.objects.filter(pk__in=[e.pk for e in events]).update(**update)
    return [Event.objects.get(pk=e.pk) for e in events]


def audit(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


# --- retry ---------------------------------------------------------------------------------


def test_retry_resets_dead_events() -> None:
    dead = make(2, status=Status.DEAD, blocks_key=True)
    other = make(1, status=Status.PUBLISHED)
    before = timezone.now()
    result = ops.retry_dead(EventFilter(), actor=ACTOR, reason="broker fixed")
    assert (result.matched, result.changed, result.batches) == (2, 2, 1)
    assert not result.interrupted and not result.dry_run
    assert result.last_id == dead[-1].pk
    for e in dead:
        row = Event.objects.get(pk=e.pk)
        assert row.status == Status.PENDING and row.attempts == 0
        assert row.last_error == "broker said no"  # kept for the record
        assert row.blocks_key is False and row.locked_by is None and row.locked_until is None
        assert row.available_at >= before - dt.timedelta(seconds=5)  # database clock
    assert Event.objects.get(pk=other[0].pk).status == Status.PUBLISHED
    entries = audit("retry")
    assert [a.event for a in entries] == [e.pk for e in dead]
    assert {a.actor for a in entries} == {ACTOR}
    assert entries[0].detail == "(all); reason: broker fixed"


def test_retry_keeps_per_key_order() -> None:
    """The retried event is again the oldest pending event of its key: the relay's head."""
    first = make(1, status=Status.DEAD, key="customer-1")[0]
    later = publish_many([EventSpec("order.placed", {"n": n}, key="customer-1") for n in range(3)])
    ops.retry_dead(EventFilter(key="customer-1"), actor=ACTOR)
    head = Event.objects.filter(key="customer-1", status=Status.PENDING).order_by("id").first()
    assert head is not None and head.pk == first.pk
    pending = Event.objects.filter(key="customer-1", status=Status.PENDING).order_by("id")
    assert [e.pk for e in pending] == [first.pk, *(e.pk for e in later)]


def test_retry_skips_discarded_and_other_states() -> None:
    make(1, status=Status.DEAD, discarded_at=timezone.now())
    make(1, status=Status.PENDING)
    make(1, status=Status.PUBLISHED)
    result = ops.retry_dead(EventFilter(), actor=ACTOR)
    assert (result.matched, result.changed) == (0, 0)
    assert audit("retry") == []


def test_dry_run_changes_nothing() -> None:
    dead = make(3, status=Status.DEAD)
    result = ops.retry_dead(EventFilter(limit=2), actor=ACTOR, dry_run=True)
    assert result.dry_run and (result.matched, result.changed) == (2, 0)
    assert [e.pk for e in result.sample] == [dead[0].pk, dead[1].pk]
    assert Event.objects.filter(status=Status.DEAD).count() == 3
    assert not AuditEntry.objects.exists()


def test_filters() -> None:
    a = make(2, status=Status.DEAD, event_type="order.placed", key="k1")
    b = make(1, status=Status.DEAD, event_type="order.paid", last_error="timeout talking to x")
    c = make(1, status=Status.DEAD, event_type="invoice.issued")
    old = timezone.now() - dt.timedelta(days=3)
    Event.objects.filter(pk=c[0].pk).update(created_at=old)

    def picked(**kw: Any) -> list[uuid.UUID]:
        return [e.pk for e in ops.dead_events(EventFilter(**kw))]

    assert picked(event_type="order.*") == [a[0].pk, a[1].pk, b[0].pk]
    assert picked(key="k1") == [a[0].pk, a[1].pk]
    assert picked(error="timeout") == [b[0].pk]
    assert picked(error="TIMEOUT") == [b[0].pk]  # case-insensitive, as in the relay
    assert picked(until=timezone.now() - dt.timedelta(days=1)) == [c[0].pk]
    assert picked(since=timezone.now() - dt.timedelta(days=1)) == [a[0].pk, a[1].pk, b[0].pk]
    assert picked(ids=[c[0].pk, a[1].pk, uuid.uuid4()]) == [a[1].pk, c[0].pk]
    assert picked(limit=1) == [a[0].pk]
    assert picked(after_id=a[1].pk) == [b[0].pk, c[0].pk]
    result = ops.retry_dead(EventFilter(event_type="order.*", limit=2), actor=ACTOR)
    assert result.changed == 2
    assert Event.objects.filter(status=Status.DEAD).count() == 2


def test_batches_and_progress() -> None:
    dead = make(5, status=Status.DEAD)
    seen: list[tuple[int, int]] = []
    result = ops.retry_dead(
        EventFilter(), actor=ACTOR, batch_size=2, progress=lambda d, t: seen.append((d, t))
    )
    assert result.batches == 3 and result.changed == 5
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert [a.event for a in audit("retry")] == [e.pk for e in dead]


def test_limit_across_batches_and_id_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "_MAX_IDS_PER_QUERY", 2)
    dead = make(6, status=Status.DEAD)
    ids = [e.pk for e in reversed(dead)]
    result = ops.discard_dead(EventFilter(ids=ids, limit=5), actor=ACTOR, batch_size=2)
    assert result.changed == 5 and result.matched == 5
    assert [a.event for a in audit("discard")] == [e.pk for e in dead[:5]]


def test_interrupt_between_batches_keeps_committed_ones() -> None:
    make(5, status=Status.DEAD)

    def stop_after_first(done: int, total: int) -> None:
        raise KeyboardInterrupt

    result = ops.retry_dead(EventFilter(), actor=ACTOR, batch_size=2, progress=stop_after_first)
    assert result.interrupted and result.changed == 2 and result.batches == 1
    assert Event.objects.filter(status=Status.PENDING).count() == 2
    # Re-running picks up the rest.
    again = ops.retry_dead(EventFilter(), actor=ACTOR, batch_size=2)
    assert again.changed == 3 and not again.interrupted
    assert len(audit("retry")) == 5


def test_interrupt_inside_a_batch_rolls_it_back(monkeypatch: pytest.MonkeyPatch) -> None:
    make(4, status=Status.DEAD)
    real = AuditEntry.objects.bulk_create
    calls = 0

    def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt  # after the UPDATE of batch 2, before its commit
        return real(*args, **kwargs)

    monkeypatch.setattr(AuditEntry._default_manager, "bulk_create", flaky)
    result = ops.retry_dead(EventFilter(), actor=ACTOR, batch_size=2)
    assert result.interrupted and result.changed == 2
    assert Event.objects.filter(status=Status.PENDING).count() == 2  # batch 2 rolled back
    assert Event.objects.filter(status=Status.DEAD).count() == 2
    assert AuditEntry.objects.count() == 2


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        ops.retry_dead(EventFilter(), actor=ACTOR, batch_size=0)
    with pytest.raises(ValueError, match="actor"):
        ops.discard_dead(EventFilter(), actor="")
    with pytest.raises(ValueError, match="negative"):
        ops.purge(dt.timedelta(days=-1), actor=ACTOR)


# --- discard -------------------------------------------------------------------------------


def test_discard_marks_and_keeps_the_row() -> None:
    dead = make(2, status=Status.DEAD, blocks_key=True)
    result = ops.discard_dead(EventFilter(ids=[dead[0].pk]), actor=ACTOR, reason="bad payload")
    assert result.changed == 1
    row = Event.objects.get(pk=dead[0].pk)
    assert row.status == Status.DEAD and row.discarded_at is not None and not row.blocks_key
    assert row.last_error == "broker said no"
    assert Event.objects.get(pk=dead[1].pk).discarded_at is None
    (entry,) = audit("discard")
    assert entry.event == dead[0].pk and "reason: bad payload" in entry.detail
    # A discarded event is no longer "dead" for list/retry/discard.
    assert list(ops.dead_events()) == [Event.objects.get(pk=dead[1].pk)]
    assert len(ops.dead_events(include_discarded=True)) == 2
    assert ops.discard_dead(EventFilter(ids=[dead[0].pk]), actor=ACTOR).changed == 0


# --- replay --------------------------------------------------------------------------------


def test_replay_republishes_with_the_same_ids() -> None:
    published = make(3, status=Status.PUBLISHED, event_type="invoice.issued")
    dead = make(1, status=Status.DEAD, event_type="invoice.issued")
    result = ops.replay(EventFilter(event_type="invoice.*"), actor=ACTOR)
    assert result.changed == 3
    for e in published:
        row = Event.objects.get(pk=e.pk)
        assert row.status == Status.PENDING and row.attempts == 0
        assert row.published_at is not None  # kept until the relay settles it again
    assert Event.objects.get(pk=dead[0].pk).status == Status.DEAD
    assert [a.event for a in audit("replay")] == [e.pk for e in published]


def test_replay_resumes_after_id() -> None:
    published = make(4, status=Status.PUBLISHED)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    first = ops.replay(EventFilter(), actor=ACTOR, batch_size=3, progress=stop)
    assert first.interrupted and first.last_id == published[2].pk
    # Make the replayed ones published again (a relay delivered them meanwhile): resuming with
    # after_id must not replay them a second time.
    Event.objects.filter(status=Status.PENDING).update(status=Status.PUBLISHED)
    rest = ops.replay(EventFilter(after_id=first.last_id), actor=ACTOR)
    assert rest.changed == 1 and rest.last_id == published[3].pk
    assert len(audit("replay")) == 4


# --- purge ---------------------------------------------------------------------------------


def test_purge_deletes_only_old_published() -> None:
    week = timezone.now() - dt.timedelta(days=8)
    old_published = make(3, status=Status.PUBLISHED, published_at=week)
    new_published = make(1, status=Status.PUBLISHED)
    old_pending = make(1, status=Status.PENDING)
    Event.objects.filter(pk=old_pending[0].pk).update(created_at=week)
    old_dead = make(1, status=Status.DEAD)
    Event.objects.filter(pk=old_dead[0].pk).update(created_at=week)

    dry = ops.purge(dt.timedelta(days=7), actor=ACTOR, dry_run=True)
    assert dry.matched == 3 and dry.deleted == 0 and Event.objects.count() == 6

    result = ops.purge(dt.timedelta(days=7), actor=ACTOR, batch_size=2)
    assert (result.published, result.dead, result.batches) == (3, 0, 2)
    remaining = set(Event.objects.values_list("pk", flat=True))
    assert remaining == {new_published[0].pk, old_pending[0].pk, old_dead[0].pk}
    assert not any(e.pk in remaining for e in old_published)
    entries = audit("purge")
    assert len(entries) == 2 and all(a.event is None for a in entries)
    assert re.fullmatch(
        r"deleted 2 rows; 2 published before \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entries[0].detail
    )
    assert entries[1].detail.startswith("deleted 1 rows; 1 published before ")

    with_dead = ops.purge(dt.timedelta(days=7), actor=ACTOR, include_dead=True)
    assert (with_dead.published, with_dead.dead) == (0, 1)
    assert Event.objects.filter(status=Status.PENDING).count() == 1  # never pending
    assert "deleted 1 rows; 0 published before " in audit("purge")[-1].detail
    assert "; 1 dead created before " in audit("purge")[-1].detail


def test_purge_interrupted_and_resumed() -> None:
    make(5, status=Status.PUBLISHED, published_at=timezone.now() - dt.timedelta(days=30))

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    first = ops.purge(dt.timedelta(days=7), actor=ACTOR, batch_size=2, progress=stop)
    assert first.interrupted and first.deleted == 2
    rest = ops.purge(dt.timedelta(days=7), actor=ACTOR, batch_size=2)
    assert rest.deleted == 3 and not Event.objects.exists()


def test_empty_outbox() -> None:
    for run in (ops.retry_dead, ops.discard_dead, ops.replay):
        result = run(EventFilter(), actor=ACTOR)
        assert (result.matched, result.changed, result.batches, result.last_id) == (0, 0, 0, None)
    assert ops.purge(dt.timedelta(0), actor=ACTOR).deleted == 0
    assert not AuditEntry.objects.exists()


def test_default_actor() -> None:
    assert "@" in ops.default_actor()


def test_a_run_does_not_chase_new_events() -> None:
    """Events published while a replay runs are past its bound: it ends instead of chasing."""
    make(3, status=Status.PUBLISHED)
    newcomers: list[Event] = []

    def publish_more(done: int, total: int) -> None:
        newcomers.extend(make(2, status=Status.PUBLISHED))

    result = ops.replay(EventFilter(), actor=ACTOR, batch_size=2, progress=publish_more)
    assert result.changed == 3 and result.matched == 3
    assert all(Event.objects.get(pk=e.pk).status == Status.PUBLISHED for e in newcomers)


def test_long_actor_is_truncated() -> None:
    make(1, status=Status.DEAD)
    ops.retry_dead(EventFilter(), actor="a" * 300)
    assert AuditEntry.objects.get().actor == "a" * 255


def test_stop_ends_the_run_between_batches() -> None:
    make(5, status=Status.DEAD)
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 2  # let two batches run

    result = ops.retry_dead(EventFilter(), actor=ACTOR, batch_size=2, stop=stop)
    assert result.interrupted and result.changed == 4 and result.batches == 2
    make(3, status=Status.PUBLISHED, published_at=timezone.now() - dt.timedelta(days=9))
    purged = ops.purge(dt.timedelta(days=7), actor=ACTOR, batch_size=1, stop=lambda: True)
    assert purged.interrupted and purged.deleted == 0


def test_command_prefixes_the_audit_detail() -> None:
    make(1, status=Status.DEAD)
    ops.discard_dead(EventFilter(key="x"), actor=ACTOR, command="conveyor dead discard")
    ops.discard_dead(EventFilter(), actor=ACTOR, command="conveyor dead discard", reason="r")
    assert AuditEntry.objects.get().detail == "conveyor dead discard (all); reason: r"


def test_database_now() -> None:
    now = ops.database_now()
    assert now.tzinfo is not None
    assert abs((now - timezone.now()).total_seconds()) < 60
