"""Event ids: UUIDv7 (RFC 9562), time-ordered and monotonic within a process."""

from __future__ import annotations

import uuid

import uuid6


def uuid7() -> uuid.UUID:
    """Return a new UUIDv7 as a standard :class:`uuid.UUID`.

    ``uuid6.uuid7`` keeps a sub-millisecond counter, so ids made in one process are strictly
    increasing, which the relay relies on for per-key order.
    """
    return uuid.UUID(int=uuid6.uuid7().int)
