"""Small callables that tests point CONVEYOR settings at."""

from __future__ import annotations

current_correlation_id: str | None = "req-123"


def correlation_id() -> str | None:
    return current_correlation_id


def bad_correlation_id() -> object:
    return 42


not_callable = "just a string"
