"""Conveyor's exceptions: one base class; each docstring is the default message.

Argument mistakes (an unserializable payload, an empty event type, a naive datetime) raise the
built-in ``TypeError``/``ValueError`` instead, because they are programming errors like any other.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Conveyor failed to record the event."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or " ".join((self.__doc__ or "").split()))


class OutsideTransactionError(ConveyorError):
    """conveyor.publish() was called outside transaction.atomic(). Wrap the business write and
    the publish() call in one `with transaction.atomic():` block so that the event is recorded
    if and only if the change commits, or set CONVEYOR["REQUIRE_ATOMIC"] = False to allow
    publishing in autocommit mode."""


__all__ = ["ConveyorError", "OutsideTransactionError"]
