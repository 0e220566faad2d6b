"""EventSpec: one event to publish, and its validation into an unsaved Event row.

Everything that can be wrong with an event is found here, before anything touches the database.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from conveyor.conf import ConveyorSettings
from conveyor.headers import validate_headers
from conveyor.models import Event
from conveyor.payload import encode_json, json_size

MAX_STRING_LENGTH = 255  # event_type, key, subject, idempotency_key, source columns


@dataclass(frozen=True, slots=True)
class EventSpec:
    """An event for :func:`conveyor.publish_many`; the fields mean what publish()'s arguments do.

    >>> EventSpec("order.placed", {"order_id": 7}, key="customer-42")  # doctest: +SKIP
    """

    event_type: str
    data: Any
    _: KW_ONLY
    key: str | None = None
    subject: str | None = None
    headers: Mapping[str, str] | None = None
    idempotency_key: str | None = None
    deliver_at: dt.datetime | None = None
    source: str | None = None

    @classmethod
    def coerce(cls, value: EventSpec | Mapping[str, Any], *, where: str) -> EventSpec:
        """Accept an EventSpec or a mapping of its fields (``{"event_type": ..., "data": ...}``)."""
        if isinstance(value, EventSpec):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{where} must be an EventSpec or a dict of its fields, not {type(value).__name__}"
            )
        try:
            return cls(**value)
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None


def _required_str(value: object, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{where}: {name} must not be empty")
    return _within_limit(value, name, where)


def _optional_str(value: object, name: str, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be a str or None, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{where}: {name} must not be empty (use None for no {name})")
    return _within_limit(value, name, where)


def _within_limit(value: str, name: str, where: str) -> str:
    if len(value) > MAX_STRING_LENGTH:
        raise ValueError(
            f"{where}: {name} is {len(value)} characters long; the limit is {MAX_STRING_LENGTH}"
        )
    return value


def _available_at(deliver_at: object, where: str) -> dt.datetime | None:
    if deliver_at is None:
        return None
    if not isinstance(deliver_at, dt.datetime):
        raise TypeError(
            f"{where}: deliver_at must be an aware datetime, not {type(deliver_at).__name__}"
        )
    if timezone.is_naive(deliver_at):
        raise ValueError(
            f"{where}: deliver_at {deliver_at.isoformat()} is a naive datetime, so its moment "
            "is ambiguous; pass an aware one, e.g. timezone.now() + timedelta(minutes=5) or "
            "datetime(2030, 1, 1, tzinfo=datetime.UTC)"
        )
    moment = deliver_at.astimezone(dt.UTC)
    if not settings.USE_TZ:  # Django stores naive local times then (see check conveyor.W001)
        return timezone.make_naive(moment, timezone.get_default_timezone())
    return moment


def build_event(
    spec: EventSpec,
    *,
    where: str,
    conf: ConveyorSettings,
    captured_headers: Mapping[str, str],
) -> Event:
    """Validate ``spec`` and return the unsaved :class:`Event` row for it."""
    event_type = _required_str(spec.event_type, "event_type", where)
    key = _optional_str(spec.key, "key", where)
    subject = _optional_str(spec.subject, "subject", where)
    idempotency_key = _optional_str(spec.idempotency_key, "idempotency_key", where)
    source = _optional_str(spec.source, "source", where) or conf.source
    available_at = _available_at(spec.deliver_at, where)

    if spec.data is None:
        raise TypeError(f"{where}: data is None; pass {{}} for an event without a payload")
    text = encode_json(spec.data, where=f"{where}: data")
    size = json_size(text)
    if size > conf.max_payload_bytes:
        raise ValueError(
            f"{where}: data is {size} bytes as JSON; the limit is {conf.max_payload_bytes} "
            'bytes (CONVEYOR["MAX_PAYLOAD_BYTES"]). Publish a reference to the data instead '
            "(an id or a storage URL)"
        )
    headers = dict(captured_headers)
    if spec.headers is not None:
        headers.update(validate_headers(spec.headers, where=where))

    event = Event(
        event_type=event_type,
        source=source,
        key=key,
        subject=subject,
        # Store what JSON round-trips to, so the returned Event equals what a later query reads.
        data=json.loads(text),
        headers=headers,
        idempotency_key=idempotency_key,
    )
    if available_at is not None:
        event.available_at = available_at
    event._conveyor_data_json = text  # type: ignore[attr-defined]  # used by fast_insert
    return event


__all__ = ["MAX_STRING_LENGTH", "EventSpec", "build_event"]
