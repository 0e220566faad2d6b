"""Correlation ids from the request id header, for every event a request publishes.

    MIDDLEWARE = [
        "conveyor.middleware.CorrelationIdMiddleware",  # early, so all later code sees the id
        ...,
    ]
    CONVEYOR = {"CORRELATION_ID": "conveyor.middleware.current_correlation_id"}

The middleware reads the request id header (``CONVEYOR["REQUEST_ID_HEADER"]``, default
``X-Request-ID``), or makes a UUID4 when it is missing or unusable, keeps it for the request
in a context variable, and echoes it on the response. ``publish()`` then stores it as the
event's ``correlation-id`` header, which the relay forwards to the broker.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from conveyor.conf import get_settings

_current: ContextVar[str | None] = ContextVar("conveyor_correlation_id", default=None)

# What we accept from a client: printable, header-safe and short. Anything else is replaced
# by a fresh id rather than copied into events and responses.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,200}\Z")


def current_correlation_id() -> str | None:
    """The current request's correlation id, or None outside a request.

    Point ``CONVEYOR["CORRELATION_ID"]`` here; also handy for log formatters."""
    return _current.get()


def _meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


class CorrelationIdMiddleware:
    """Sets the correlation id for the duration of each request (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        header, value = self._begin(request)
        token = _current.set(value)
        try:
            response: HttpResponseBase = self.get_response(request)
        finally:
            _current.reset(token)
        response.headers.setdefault(header, value)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        header, value = self._begin(request)
        token = _current.set(value)
        try:
            get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
            response = await get_response(request)
        finally:
            _current.reset(token)
        response.headers.setdefault(header, value)
        return response

    @staticmethod
    def _begin(request: HttpRequest) -> tuple[str, str]:
        header = get_settings().request_id_header
        value = request.META.get(_meta_key(header), "")
        if not isinstance(value, str) or not _ACCEPTABLE.match(value):
            value = str(uuid.uuid4())
        request.correlation_id = value  # type: ignore[attr-defined]
        return header, value


__all__ = ["CorrelationIdMiddleware", "current_correlation_id"]
