from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from opentelemetry import context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from conveyor import Event, publish
from tests import helpers

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


@pytest.fixture
def active_span() -> Iterator[None]:
    span = NonRecordingSpan(
        SpanContext(
            trace_id=TRACE_ID,
            span_id=SPAN_ID,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
            trace_state=TraceState([("vendor", "value")]),
        )
    )
    token = context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)


@pytest.mark.django_db
def test_no_span_no_trace_headers() -> None:
    assert publish("a", {}).headers == {}


@pytest.mark.django_db
@pytest.mark.usefixtures("active_span")
def test_trace_context_is_captured() -> None:
    event = publish("a", {})
    assert event.headers == {
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "vendor=value",
    }
    assert Event.objects.get().headers == event.headers


@pytest.mark.django_db
@pytest.mark.usefixtures("active_span")
def test_explicit_headers_override_captured_ones() -> None:
    event = publish("a", {}, headers={"traceparent": "mine", "x-tenant": "t1"})
    assert event.headers["traceparent"] == "mine"
    assert event.headers["tracestate"] == "vendor=value"
    assert event.headers["x-tenant"] == "t1"


@pytest.mark.django_db
@override_settings(CONVEYOR={"CORRELATION_ID": "tests.helpers.correlation_id"})
def test_correlation_id_is_captured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert publish("a", {}).headers == {"correlation-id": "req-123"}
    assert publish("a", {}, headers={"correlation-id": "x"}).headers == {"correlation-id": "x"}
    monkeypatch.setattr(helpers, "current_correlation_id", None)
    assert publish("a", {}).headers == {}


@pytest.mark.django_db
@override_settings(CONVEYOR={"CORRELATION_ID": "tests.helpers.bad_correlation_id"})
def test_correlation_id_must_return_str() -> None:
    with pytest.raises(TypeError, match=r'CORRELATION_ID"\] returned int 42; it must return'):
        publish("a", {})


@pytest.mark.django_db
@override_settings(CONVEYOR={"CORRELATION_ID": "tests.helpers.nope"})
def test_correlation_id_import_error_surfaces() -> None:
    with pytest.raises(ImportError):
        publish("a", {})


@pytest.mark.django_db
@override_settings(CONVEYOR={"REQUIRE_ATOMIC": "yes"})
def test_bad_settings_raise_improperly_configured() -> None:
    with pytest.raises(ImproperlyConfigured, match=r'REQUIRE_ATOMIC"\] must be a bool.*E002'):
        publish("a", {})
