"""The INSERT behind publish(), written directly for PostgreSQL and SQLite.

Compiling ``bulk_create`` for a 19-field model and re-encoding the payload costs more than
the INSERT itself (measured in docs/benchmarks.md). The payload is already JSON text after
validation, so this module sends it as is, in one multi-row INSERT that lets the database
fill its own defaults and returns the database-clock timestamps. MySQL keeps the ORM path.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from conveyor.models import Event

SUPPORTED_VENDORS = frozenset({"postgresql", "sqlite"})

_COLUMNS = "id, event_type, source, key, subject, data, headers, available_at"
_ROW = {
    "postgresql": "(%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, "
    "coalesce(%s::timestamptz, statement_timestamp()))",
    "sqlite": "(%s, %s, %s, %s, %s, %s, %s, "
    "coalesce(%s, strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')))",
}


def insert(rows: list[Event], data_json: list[str], alias: str) -> None:
    """INSERT ``rows`` (no idempotency keys) and fill their database defaults in place."""
    connection = connections[alias]
    vendor = connection.vendor
    ops = connection.ops
    native_uuid = connection.features.has_native_uuid_field
    params: list[Any] = []
    for row, text in zip(rows, data_json, strict=True):
        available = row.__dict__.get("available_at")
        available = available if isinstance(available, dt.datetime) else None
        params += [
            row.pk if native_uuid else row.pk.hex,
            row.event_type,
            row.source,
            row.key,
            row.subject,
            text,
            _headers_json(row.headers),
            ops.adapt_datetimefield_value(available) if available is not None else None,
        ]
    sql = (
        f"INSERT INTO conveyor_event ({_COLUMNS}) VALUES "
        + ", ".join([_ROW[vendor]] * len(rows))
        + " RETURNING created_at, available_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        returned = cursor.fetchall()
    for row, (created_at, available_at) in zip(rows, returned, strict=True):
        row.created_at = _as_datetime(created_at)
        row.available_at = _as_datetime(available_at)
        row._state.adding = False
        row._state.db = alias


def _headers_json(headers: dict[str, str]) -> str:
    if not headers:
        return "{}"
    return json.dumps(headers, ensure_ascii=False, separators=(",", ":"))


def _as_datetime(value: Any) -> dt.datetime:
    # PostgreSQL returns aware datetimes; SQLite returns the stored UTC text.
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:  # pragma: no cover - the database wrote it
            raise ValueError(f"unexpected timestamp {value!r} from the database")
        value = parsed
    if settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    return value  # type: ignore[no-any-return]
