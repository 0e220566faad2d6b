"""Operator actions on the outbox: retry and discard dead events, replay published ones, purge.

The relay's CLI (``conveyor dead|replay|purge``) does the same with the same semantics; the
management commands (``conveyor_dead``, ``conveyor_replay``, ``conveyor_purge``) and the admin
are thin adapters over these functions.

- Work happens in batches in id order, each batch its own transaction, so an interrupted run
  keeps the batches it committed and loses none half-done. Re-running a retry, discard or
  purge picks up what is left; an interrupted replay resumes with ``after_id``.
- Every change writes :class:`~conveyor.models.AuditEntry` rows in the same transaction: one
  per event for retry, discard and replay, one per batch for purge.
- Each change re-checks the row's state in its ``UPDATE``/``DELETE``, so a relay working on
  the table at the same time is never overruled: pending events are never purged, and only
  dead events are retried or discarded.
- Times that the relay compares (``available_at``, ``discarded_at``) come from the database
  clock (``Now()``), like every other timestamp in the table.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from conveyor.conf import get_settings
from conveyor.exceptions import ConveyorError
from conveyor.models import AuditEntry, Event, Status
from conveyor.selection import EventFilter

DEFAULT_BATCH_SIZE: Final = 500  # retry, discard, replay (as the relay's CLI)
DEFAULT_PURGE_BATCH_SIZE: Final = 1000  # purge: short transactions, short locks
MAX_ACTOR_LENGTH: Final = 255  # AuditEntry.actor
SAMPLE_SIZE: Final = 20  # events a dry run returns to show what would change
_MAX_IDS_PER_QUERY: Final = 500  # keeps IN (...) under every backend's parameter limit

RETRY: Final = "retry"
DISCARD: Final = "discard"
REPLAY: Final = "replay"
PURGE: Final = "purge"
ACTIONS: Final = (RETRY, DISCARD, REPLAY, PURGE)

Progress = Callable[[int, int], None]
"""Called after each committed batch with (rows done, rows expected in total)."""

Stop = Callable[[], bool]
"""Asked before each batch; True ends the run there, as an interruption (SIGTERM, Ctrl-C)."""


class ConcurrentChangeError(ConveyorError):
    """Events changed state while this batch was being applied, so it was rolled back. Run the
    command again: it picks up where it stopped."""


@dataclass(slots=True)
class OperationResult:
    """What a retry, discard or replay did (or, as a dry run, would do)."""

    action: str
    dry_run: bool
    matched: int = 0  # events the filter selected when the run started
    changed: int = 0  # events changed (0 on a dry run)
    batches: int = 0  # committed batches
    last_id: uuid.UUID | None = None  # the last event changed: resume with after_id=last_id
    interrupted: bool = False  # stopped by KeyboardInterrupt; committed batches stay
    sample: list[Event] = field(default_factory=list)  # dry run: the first SAMPLE_SIZE events


@dataclass(slots=True)
class PurgeResult:
    """What a purge deleted (or, as a dry run, would delete)."""

    dry_run: bool
    cutoff: dt.datetime
    include_dead: bool
    matched: int = 0  # events older than the cutoff when the run started
    published: int = 0  # published events deleted
    dead: int = 0  # dead events deleted (only with include_dead)
    batches: int = 0
    interrupted: bool = False

    @property
    def deleted(self) -> int:
        return self.published + self.dead


def default_actor() -> str:
    """``user@hostname`` of this process, for audit entries written by commands."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


_NOW_SQL: Final = {
    # UTC on every vendor, as Django stores datetimes with USE_TZ.
    "postgresql": "SELECT statement_timestamp()",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
    "sqlite": "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')",
}


def database_now(using: str | None = None) -> dt.datetime:
    """The database's clock, as an aware UTC datetime (this host's for other vendors)."""
    connection = connections[using or get_settings().database_alias]
    sql = _NOW_SQL.get(connection.vendor)
    if sql is None:
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    value = row[0]
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _events(using: str | None) -> tuple[str, QuerySet[Event]]:
    alias = using or get_settings().database_alias
    return alias, Event._default_manager.db_manager(alias).all()


_DEAD: Final = Q(status=Status.DEAD, discarded_at__isnull=True)
_PUBLISHED: Final = Q(status=Status.PUBLISHED)


_ALL: Final = EventFilter()


def dead_events(
    selection: EventFilter = _ALL,
    *,
    include_discarded: bool = False,
    using: str | None = None,
) -> QuerySet[Event]:
    """Dead events matching ``selection``, oldest first (``limit`` applied)."""
    base = Q(status=Status.DEAD) if include_discarded else _DEAD
    return _select(base, selection, using)


def published_events(selection: EventFilter = _ALL, *, using: str | None = None) -> QuerySet[Event]:
    """Published events matching ``selection``, oldest first: what a replay would pick."""
    return _select(_PUBLISHED, selection, using)


def _select(base: Q, selection: EventFilter, using: str | None) -> QuerySet[Event]:
    _, events = _events(using)
    qs = events.filter(base & selection.q())
    if selection.ids:
        qs = qs.filter(pk__in=sorted(set(selection.ids)))
    qs = qs.order_by("pk")
    return qs[: selection.limit] if selection.limit else qs


def retry_dead(
    selection: EventFilter,
    *,
    actor: str,
    reason: str = "",
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    using: str | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
    command: str = "",
) -> OperationResult:
    """Make dead events pending again: attempts 0, available now (database clock), lease
    cleared, no longer blocking their key; ``last_error`` is kept. Their ids are unchanged, so
    each is again the oldest pending event of its key and per-key order holds."""
    return _change(
        RETRY,
        _DEAD,
        selection,
        {
            "status": Status.PENDING,
            "attempts": 0,
            "available_at": Now(),
            "blocks_key": False,
            "locked_by": None,
            "locked_until": None,
        },
        actor=actor,
        reason=reason,
        dry_run=dry_run,
        batch_size=batch_size,
        using=using,
        progress=progress,
        stop=stop,
        command=command,
    )


def discard_dead(
    selection: EventFilter,
    *,
    actor: str,
    reason: str = "",
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    using: str | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
    command: str = "",
) -> OperationResult:
    """Mark dead events discarded (``discarded_at``, database clock) and release their key.
    The rows stay, with their audit entries, until a purge with ``include_dead``."""
    return _change(
        DISCARD,
        _DEAD,
        selection,
        {"discarded_at": Now(), "blocks_key": False},
        actor=actor,
        reason=reason,
        dry_run=dry_run,
        batch_size=batch_size,
        using=using,
        progress=progress,
        stop=stop,
        command=command,
    )


def replay(
    selection: EventFilter,
    *,
    actor: str,
    reason: str = "",
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    using: str | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
    command: str = "",
) -> OperationResult:
    """Make published events pending again, keeping their ids: brokers and consumers that
    deduplicate by event id drop the copy; the others get the event a second time.
    ``published_at`` and ``last_error`` are kept until the relay settles it again."""
    return _change(
        REPLAY,
        _PUBLISHED,
        selection,
        {
            "status": Status.PENDING,
            "attempts": 0,
            "available_at": Now(),
            "blocks_key": False,
            "locked_by": None,
            "locked_until": None,
        },
        actor=actor,
        reason=reason,
        dry_run=dry_run,
        batch_size=batch_size,
        using=using,
        progress=progress,
        stop=stop,
        command=command,
    )


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _windows(selection: EventFilter) -> Iterator[Q]:
    """The id windows batches are taken from: pages of the given ids, or one open window
    that the keyset (``pk > last``) moves along."""
    if selection.ids:
        ids = sorted(set(selection.ids))
        for i in range(0, len(ids), _MAX_IDS_PER_QUERY):
            yield Q(pk__in=ids[i : i + _MAX_IDS_PER_QUERY])
    else:
        yield Q()


def _count(qs: QuerySet[Event], q: Q, selection: EventFilter) -> int:
    total = sum(qs.filter(q & window).count() for window in _windows(selection))
    return min(total, selection.limit) if selection.limit else total


def _detail(command: str, selection: EventFilter, reason: str) -> str:
    """``<command> <filters>[; reason: <reason>]``, worded like the relay's audit rows."""
    detail = f"{command} {selection.describe()}".strip()
    return f"{detail}; reason: {reason}" if reason else detail


def _actor(actor: str) -> str:
    if not actor.strip():
        raise ValueError("actor must name who acts, for the audit trail (conveyor_audit.actor)")
    return actor[:MAX_ACTOR_LENGTH]


def _change(
    action: str,
    state: Q,
    selection: EventFilter,
    update: dict[str, Any],
    *,
    actor: str,
    reason: str,
    dry_run: bool,
    batch_size: int,
    using: str | None,
    progress: Progress | None,
    stop: Stop | None,
    command: str,
) -> OperationResult:
    _check_batch_size(batch_size)
    actor = _actor(actor)
    alias, events = _events(using)
    q = state & selection.q()
    result = OperationResult(action=action, dry_run=dry_run)
    result.matched = _count(events, q, selection)
    if dry_run:
        result.sample = list(_select(state, selection, using)[:SAMPLE_SIZE])
        return result
    if not selection.ids:
        # Bound the run by the newest matching id now, so it does not chase events that
        # arrive (or that a relay publishes again, for a replay) while it works.
        newest = events.filter(q).order_by("-pk").values_list("pk", flat=True).first()
        if newest is None:
            return result
        q &= Q(pk__lte=newest)
    detail = _detail(command, selection, reason)
    remaining = selection.limit
    try:
        for window in _windows(selection):
            last: uuid.UUID | None = None
            while remaining is None or remaining > 0:
                if stop is not None and stop():
                    result.interrupted = True
                    return result
                n = batch_size if remaining is None else min(batch_size, remaining)
                keyset = Q(pk__gt=last) if last is not None else Q()
                with transaction.atomic(using=alias):
                    # Lock the batch (PostgreSQL, MySQL; SQLite has one writer anyway), then
                    # change exactly those rows, re-checking their state.
                    picked: list[uuid.UUID] = list(
                        events.filter(q & window & keyset)
                        .select_for_update()
                        .order_by("pk")
                        .values_list("pk", flat=True)[:n]
                    )
                    if not picked:
                        break
                    changed = events.filter(q, pk__in=picked).update(**update)
                    if changed != len(picked):
                        raise ConcurrentChangeError()
                    AuditEntry._default_manager.db_manager(alias).bulk_create(
                        AuditEntry(actor=actor, action=action, event=pk, detail=detail)
                        for pk in picked
                    )
                last = picked[-1]
                result.changed += changed
                result.batches += 1
                result.last_id = last
                if remaining is not None:
                    remaining -= changed
                if progress is not None:
                    progress(result.changed, result.matched)
    except KeyboardInterrupt:
        result.interrupted = True  # the open batch rolled back; committed ones stay
    return result


def purge(
    older_than: dt.timedelta,
    *,
    actor: str,
    include_dead: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_PURGE_BATCH_SIZE,
    using: str | None = None,
    progress: Progress | None = None,
    stop: Stop | None = None,
    command: str = "",
    now: dt.datetime | None = None,
) -> PurgeResult:
    """Delete published events whose ``published_at`` is older than ``older_than`` and, with
    ``include_dead``, dead events (discarded or not) whose ``created_at`` is. Pending events
    are never touched. One audit entry per batch names the rows and the cutoff.

    The cutoff is taken once, on the database clock (or from ``now``), so every batch and
    audit entry of a run shares it."""
    _check_batch_size(batch_size)
    if older_than < dt.timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    actor = _actor(actor)
    alias, events = _events(using)
    cutoff = (now or database_now(alias)) - older_than
    # A pending row matches neither: purge never deletes one.
    published_q = Q(status=Status.PUBLISHED, published_at__lt=cutoff)
    dead_q = Q(status=Status.DEAD, created_at__lt=cutoff)
    q = published_q | dead_q if include_dead else published_q
    result = PurgeResult(dry_run=dry_run, cutoff=cutoff, include_dead=include_dead)
    result.matched = events.filter(q).count()
    if dry_run:
        return result
    last: uuid.UUID | None = None
    try:
        while True:
            if stop is not None and stop():
                result.interrupted = True
                break
            keyset = Q(pk__gt=last) if last is not None else Q()
            with transaction.atomic(using=alias):
                picked: list[uuid.UUID] = list(
                    events.filter(q & keyset)
                    .order_by("pk")
                    .values_list("pk", flat=True)[:batch_size]
                )
                if not picked:
                    break
                # DELETEs that re-check the state, so a row a replay or a retry made pending
                # meanwhile stays. Not QuerySet.delete(): with any delete signal receiver
                # connected it deletes by primary key only, without the re-check.
                published = events.filter(published_q, pk__in=picked)._raw_delete(alias)
                dead = (
                    events.filter(dead_q, pk__in=picked)._raw_delete(alias) if include_dead else 0
                )
                deleted = published + dead
                if deleted:
                    AuditEntry._default_manager.db_manager(alias).create(
                        actor=actor,
                        action=PURGE,
                        event=None,
                        detail=purge_detail(published, dead, cutoff, include_dead, command),
                    )
            last = picked[-1]
            result.published += published
            result.dead += dead
            result.batches += 1
            if progress is not None:
                progress(result.deleted, result.matched)
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def purge_detail(
    published: int, dead: int, cutoff: dt.datetime, include_dead: bool, command: str = ""
) -> str:
    """The audit detail of one purge batch, worded as the relay's ``store.PurgeDetail``:
    ``<command>: deleted N rows; P published before T[; D dead created before T]``."""
    when = cutoff.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = f"{command}: " if command else ""
    detail += f"deleted {published + dead} rows; {published} published before {when}"
    if include_dead:
        detail += f"; {dead} dead created before {when}"
    return detail


__all__ = [
    "ACTIONS",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_PURGE_BATCH_SIZE",
    "DISCARD",
    "PURGE",
    "REPLAY",
    "RETRY",
    "ConcurrentChangeError",
    "OperationResult",
    "Progress",
    "PurgeResult",
    "Stop",
    "database_now",
    "dead_events",
    "default_actor",
    "discard_dead",
    "published_events",
    "purge",
    "purge_detail",
    "replay",
    "retry_dead",
]
