"""Event headers: validation of the caller's headers, and context captured at publish() time.

Captured, in this order (later wins):

1. W3C trace context (``traceparent``, ``tracestate``) from the current OpenTelemetry context,
   when ``opentelemetry-api`` is installed and a span is active. The relay forwards them so a
   consumer's span joins the producer's trace.
2. ``correlation-id`` from the callable named by ``CONVEYOR["CORRELATION_ID"]``.
3. The caller's own ``headers=``: explicit headers override captured ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from conveyor.conf import correlation_id_provider

CORRELATION_ID_HEADER = "correlation-id"

# An HTTP token (RFC 9110): brokers that carry headers (NATS, Kafka, AMQP, HTTP) all accept it.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_RESERVED_PREFIXES = ("ce-", "ce_", "nats-")  # see docs/contract.md, "Wire format"

try:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # pragma: no cover - exercised when opentelemetry-api is not installed
    _trace_propagator: Any = None
else:
    _trace_propagator = TraceContextTextMapPropagator()


def trace_context_headers() -> dict[str, str]:
    """``traceparent``/``tracestate`` for the current span, or ``{}`` without one."""
    carrier: dict[str, str] = {}
    if _trace_propagator is not None:
        _trace_propagator.inject(carrier)
    return carrier


def captured_headers() -> dict[str, str]:
    headers = trace_context_headers()
    provider = correlation_id_provider()
    if provider is not None:
        value = provider()
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f'CONVEYOR["CORRELATION_ID"] returned {type(value).__name__} {value!r}; '
                "it must return a str or None"
            )
        if value:
            headers[CORRELATION_ID_HEADER] = value
    return headers


def validate_headers(headers: object, *, where: str) -> dict[str, str]:
    """Return a copy of the caller's headers, or raise TypeError/ValueError naming the entry."""
    if not isinstance(headers, Mapping):
        raise TypeError(
            f"{where}: headers must be a dict of str to str, not {type(headers).__name__}"
        )
    result: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str):
            raise TypeError(
                f"{where}: header name {name!r} is {type(name).__name__}; header names must be str"
            )
        if not _HEADER_NAME.match(name):
            raise ValueError(
                f"{where}: header name {name!r} is not a valid header name; use letters, "
                "digits and - _ . (no spaces or colons)"
            )
        if name.lower().startswith(_RESERVED_PREFIXES):
            raise ValueError(
                f"{where}: header name {name!r} is reserved: the relay sets the CloudEvents "
                "attributes (ce-*) and broker headers (Nats-*) itself; pick another name"
            )
        if not isinstance(value, str):
            raise TypeError(
                f"{where}: headers[{name!r}] is {type(value).__name__} {value!r}; "
                "header values must be str (convert it with str())"
            )
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(
                f"{where}: headers[{name!r}] contains a line break or NUL, "
                "which brokers cannot carry"
            )
        result[name] = value
    return result


__all__ = [
    "CORRELATION_ID_HEADER",
    "captured_headers",
    "trace_context_headers",
    "validate_headers",
]
