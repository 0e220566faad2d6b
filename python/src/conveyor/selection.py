"""Which events an operator action touches: :class:`EventFilter`, and the parsers behind it.

The same filters, with the same meaning, as the relay's CLI (``conveyor dead|replay``,
``store.Filter`` in Go): ids, an event-type glob (``*`` any run of characters, ``?`` one
character, everything else itself, case-sensitive), an exact ordering key, a ``created_at``
range (``since <= created_at < until``), a case-insensitive ``last_error`` substring and a
limit.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Q

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_REGEX_SPECIALS = frozenset(".^$*+?()[]{}|\\")


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``"30s"``, ``"1h30m"``, ``"500ms"`` or ``"7d"``: Go's syntax plus days, as the
    relay's config does. Raises ValueError with an example."""
    s = text.strip()
    error = ValueError(
        f'invalid duration {text!r}: use a number with a unit, like "30s", "5m", "2h" or "7d"'
    )
    if s.endswith("d"):
        try:
            days = float(s[:-1])
        except ValueError:
            raise error from None
        if days < 0:
            raise error
        return dt.timedelta(days=days)
    pos, seconds = 0, 0.0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        if not match:
            raise error
        seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not s:
        raise error
    return dt.timedelta(seconds=seconds)


def parse_when(text: str, *, now: dt.datetime) -> dt.datetime:
    """An instant given as ISO 8601 (``2026-11-20``, ``2026-11-20T12:00:00+01:00``; UTC when
    no offset is given) or as a duration ago (``2h``, ``7d``)."""
    s = text.strip()
    try:
        return now - parse_duration(s)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(
            f"invalid time {text!r}: use ISO 8601 (2026-11-20 or 2026-11-20T12:00:00Z) "
            'or a duration ago ("2h", "7d")'
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when


def glob_to_regex(pattern: str) -> str:
    """Translate an event-type glob into an anchored regular expression that PostgreSQL,
    MySQL/MariaDB and SQLite (through Python's ``re``) read alike and case-sensitively:
    ``*`` is ``.*``, ``?`` is ``.``, every other character is escaped."""
    body = "".join(".*" if c == "*" else "." if c == "?" else _literal(c) for c in pattern)
    return f"^{body}$"


def _literal(c: str) -> str:
    return "\\" + c if c in _REGEX_SPECIALS else c


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Selects events for an operator action. Empty fields select everything.

    ``since`` is inclusive and ``until`` exclusive, both on ``created_at``. ``error`` is a
    case-insensitive substring of ``last_error`` (dead events only). ``after_id`` resumes an
    interrupted run: only events with a larger id are selected. ``limit`` caps the total.
    """

    ids: Sequence[uuid.UUID] = field(default=())
    event_type: str | None = None
    key: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    error: str | None = None
    after_id: uuid.UUID | None = None
    limit: int | None = None
    exact_type: bool = False

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")
        if self.event_type is not None and not self.event_type:
            raise ValueError("event_type must not be empty; leave it out to select every type")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be an aware datetime, got {value!r}")

    def q(self) -> Q:
        """The filter as a Q object (without ``limit`` and ``ids``, which batching applies)."""
        q = Q()
        if self.event_type is not None:
            # A regex even for a plain name: it is case-sensitive on every backend, where
            # MySQL's = follows the column's case-insensitive collation. event_type has no
            # index, so nothing is lost.
            pattern = (
                "^" + "".join(map(_literal, self.event_type)) + "$"
                if self.exact_type
                else glob_to_regex(self.event_type)
            )
            q &= Q(event_type__regex=pattern)
        if self.key is not None:
            q &= Q(key=self.key)
        if self.since is not None:
            q &= Q(created_at__gte=self.since)
        if self.until is not None:
            q &= Q(created_at__lt=self.until)
        if self.error is not None:
            q &= Q(last_error__icontains=self.error)
        if self.after_id is not None:
            q &= Q(pk__gt=self.after_id)
        return q

    def describe(self) -> str:
        """The filters in the CLI's flag syntax, as the relay writes them into audit entries:
        ``--type order.* --key "customer 7"``, or ``(all)``. ``after_id`` and ``limit`` say
        how far a run went, not what it selects, so they are left out."""
        words: list[str] = []
        if len(self.ids) == 1:
            words.append(f"--id {self.ids[0]}")
        elif self.ids:
            words.append(f"--id ({len(self.ids)} ids)")
        if self.event_type is not None:
            words.append(f"--type {_quote(self.event_type)}")
        if self.key is not None:
            words.append(f"--key {_quote(self.key)}")
        if self.since is not None:
            words.append(f"--since {_iso(self.since)}")
        if self.until is not None:
            words.append(f"--until {_iso(self.until)}")
        if self.error is not None:
            words.append(f"--error {_quote(self.error)}")
        return " ".join(words) or "(all)"


def _quote(text: str) -> str:
    if text and not any(c in text for c in " \t\"'*?\\"):
        return text
    return json.dumps(text, ensure_ascii=False)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # RFC 3339, as Go prints it


__all__ = [
    "EventFilter",
    "glob_to_regex",
    "parse_duration",
    "parse_when",
]
