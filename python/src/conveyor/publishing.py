"""publish() and publish_many(): record events in the caller's transaction.

The write is one INSERT (plus one SELECT when idempotency keys are involved, or when the
backend cannot return column defaults from an INSERT). On PostgreSQL the statement-level trigger
from migration 0001 queues the NOTIFY that wakes the relay when the transaction commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db import connections
from django.db.models import Q
from django.db.models.expressions import DatabaseDefault

from conveyor import fast_insert
from conveyor.conf import get_settings
from conveyor.exceptions import ConveyorError, OutsideTransactionError
from conveyor.headers import captured_headers
from conveyor.models import Event
from conveyor.spec import EventSpec, build_event

# Callbacks given the newly recorded events; conveyor.testing uses this to capture them.
_observers: list[Callable[[list[Event]], None]] = []

_FETCH_CHUNK = 500  # keeps IN (...) lists under every backend's parameter limit


def publish(
    event_type: str,
    data: Any,
    *,
    key: str | None = None,
    subject: str | None = None,
    headers: Mapping[str, str] | None = None,
    idempotency_key: str | None = None,
    deliver_at: dt.datetime | None = None,
    using: str | None = None,
    source: str | None = None,
) -> Event:
    """Record one event in the current transaction and return its row.

    The relay delivers it after the transaction commits; if the transaction rolls back, the
    event never existed. With ``idempotency_key``, a key seen before returns the existing event
    and records nothing.

    Raises OutsideTransactionError outside ``transaction.atomic()`` (unless
    ``CONVEYOR["REQUIRE_ATOMIC"]`` is False), and TypeError/ValueError for a bad argument,
    before anything is written.
    """
    spec = EventSpec(
        event_type,
        data,
        key=key,
        subject=subject,
        headers=headers,
        idempotency_key=idempotency_key,
        deliver_at=deliver_at,
        source=source,
    )
    return _publish([spec], using=using, where="conveyor.publish", indexed=False)[0]


def publish_many(
    events: Iterable[EventSpec | Mapping[str, Any]], *, using: str | None = None
) -> list[Event]:
    """Record several events with one bulk INSERT; return their rows in the same order.

    Each item is an :class:`EventSpec` or a dict of its fields. Ids increase in iteration
    order, so events sharing a key are delivered in that order.
    """
    specs = [
        EventSpec.coerce(item, where=f"conveyor.publish_many: events[{i}]")
        for i, item in enumerate(events)
    ]
    return _publish(specs, using=using, where="conveyor.publish_many", indexed=True)


def _publish(
    specs: list[EventSpec], *, using: str | None, where: str, indexed: bool
) -> list[Event]:
    conf = get_settings()
    alias = using or conf.database_alias
    captured = captured_headers() if specs else {}
    rows = [
        build_event(
            spec,
            where=f"{where}: events[{i}]" if indexed else where,
            conf=conf,
            captured_headers=captured,
        )
        for i, spec in enumerate(specs)
    ]
    if conf.require_atomic and not connections[alias].in_atomic_block:
        raise OutsideTransactionError(
            f"{where}() was called outside transaction.atomic() on database {alias!r}. Wrap "
            "the business write and the publish in one `with transaction.atomic():` block so "
            "the event is recorded if and only if the change commits, or set "
            'CONVEYOR["REQUIRE_ATOMIC"] = False to allow autocommit.'
        )
    if not rows:
        return []
    stored = _insert(rows, alias)
    new = [got for row, got in zip(rows, stored, strict=True) if got.pk == row.pk]
    for observer in list(_observers):
        observer(new)
    return stored


def _insert(rows: list[Event], alias: str) -> list[Event]:
    manager = Event._default_manager.db_manager(alias)
    keys = [row.idempotency_key for row in rows if row.idempotency_key is not None]
    if not keys and connections[alias].vendor in fast_insert.SUPPORTED_VENDORS:
        fast_insert.insert(rows, [row._conveyor_data_json for row in rows], alias)  # type: ignore[attr-defined]
        return rows
    if not keys:
        manager.bulk_create(rows)
        if not any(_has_db_defaults(row) for row in rows):
            return rows  # the INSERT returned created_at/available_at (RETURNING)
        found = _fetch(alias, ids=[row.pk for row in rows], keys=[])
    else:
        # INSERT ... ON CONFLICT DO NOTHING (PostgreSQL, SQLite) / INSERT IGNORE (MySQL). A
        # concurrent insert of the same key makes this wait for the other transaction; if it
        # commits, our row is skipped and we return theirs.
        manager.bulk_create(rows, ignore_conflicts=True)
        found = _fetch(
            alias, ids=[row.pk for row in rows if row.idempotency_key is None], keys=keys
        )
    by_pk = {row.pk: row for row in found}
    by_key = {row.idempotency_key: row for row in found if row.idempotency_key is not None}
    result: list[Event] = []
    for row in rows:
        got = by_key.get(row.idempotency_key) if row.idempotency_key else by_pk.get(row.pk)
        if got is None:
            what = (
                f"event {row.pk} ({row.event_type}) with idempotency key {row.idempotency_key!r}"
                if row.idempotency_key
                else f"event {row.pk} ({row.event_type})"
            )
            raise ConveyorError(
                f"The database neither stored {what} nor reported an error; check the "
                "conveyor_event table's constraints and the server's SQL mode."
            )
        result.append(got)
    return result


def _has_db_defaults(row: Event) -> bool:
    # Until the INSERT returns them, db_default fields hold a DatabaseDefault placeholder.
    values: tuple[object, ...] = (row.created_at, row.available_at)
    return any(isinstance(value, DatabaseDefault) for value in values)


def _fetch(alias: str, *, ids: list[Any], keys: list[str]) -> list[Event]:
    manager = Event._default_manager.db_manager(alias)
    connection = connections[alias]
    # InnoDB's REPEATABLE READ would answer from a snapshot taken before the other
    # transaction committed the key we collided with; a locking read sees the latest row.
    locking = connection.vendor == "mysql" and connection.in_atomic_block
    found: list[Event] = []
    for start in range(0, max(len(ids), len(keys)), _FETCH_CHUNK):
        chunk_ids = ids[start : start + _FETCH_CHUNK]
        chunk_keys = keys[start : start + _FETCH_CHUNK]
        qs = manager.filter(Q(pk__in=chunk_ids) | Q(idempotency_key__in=chunk_keys)).order_by()
        if locking:
            sql, params = qs.query.get_compiler(using=alias).as_sql()
            found.extend(manager.raw(f"{sql} LOCK IN SHARE MODE", params))
        else:
            found.extend(qs)
    return found


__all__ = ["publish", "publish_many"]
