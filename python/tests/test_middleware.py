"""conveyor.middleware: correlation ids from the request id header into events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings

from conveyor import Event, publish
from conveyor.middleware import CorrelationIdMiddleware, current_correlation_id

USE_IT = {"CORRELATION_ID": "conveyor.middleware.current_correlation_id"}


def _publishing_view(request: HttpRequest) -> HttpResponse:
    event = publish("order.placed", {"seen": current_correlation_id()})
    return HttpResponse(str(event.pk))


@pytest.mark.django_db
@override_settings(CONVEYOR=USE_IT)
def test_header_becomes_the_events_correlation_id() -> None:
    middleware = CorrelationIdMiddleware(_publishing_view)
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="req-42")
    response = middleware(request)
    event = Event.objects.get(pk=response.content.decode())
    assert event.headers["correlation-id"] == "req-42"
    assert event.data == {"seen": "req-42"}
    assert response["X-Request-ID"] == "req-42"
    assert request.correlation_id == "req-42"  # type: ignore[attr-defined]
    assert current_correlation_id() is None  # reset after the request


@pytest.mark.django_db
@override_settings(CONVEYOR=USE_IT)
@pytest.mark.parametrize("sent", [None, "", "has space", "x" * 201, "new\nline", "ü"])
def test_missing_or_unusable_header_gets_a_fresh_uuid(sent: str | None) -> None:
    middleware = CorrelationIdMiddleware(_publishing_view)
    request = RequestFactory().get("/")
    if sent is not None:
        request.META["HTTP_X_REQUEST_ID"] = sent
    response = middleware(request)
    generated = response["X-Request-ID"]
    assert uuid.UUID(generated).version == 4
    event = Event.objects.get(pk=response.content.decode())
    assert event.headers["correlation-id"] == generated


@pytest.mark.django_db
@override_settings(CONVEYOR={**USE_IT, "REQUEST_ID_HEADER": "X-Correlation-ID"})
def test_configurable_header() -> None:
    middleware = CorrelationIdMiddleware(_publishing_view)
    request = RequestFactory().get("/", HTTP_X_CORRELATION_ID="corr-7", HTTP_X_REQUEST_ID="ignored")
    response = middleware(request)
    assert response["X-Correlation-ID"] == "corr-7"
    assert "X-Request-ID" not in response
    assert Event.objects.get().headers["correlation-id"] == "corr-7"


def test_view_may_set_its_own_response_header() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse()
        response["X-Request-ID"] = "from-view"
        return response

    response = CorrelationIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID="a"))
    assert response["X-Request-ID"] == "from-view"


def test_async_requests_are_isolated() -> None:
    seen: dict[str, str | None] = {}

    async def view(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(0.01)  # interleave the two requests
        seen[request.META["HTTP_X_REQUEST_ID"]] = current_correlation_id()
        return HttpResponse()

    middleware = CorrelationIdMiddleware(view)
    assert asyncio.iscoroutinefunction(middleware)

    async def both() -> None:
        calls: list[Awaitable[HttpResponse]] = [
            middleware(RequestFactory().get("/", HTTP_X_REQUEST_ID=f"r{i}")) for i in range(2)
        ]
        responses = await asyncio.gather(*calls)
        assert [r["X-Request-ID"] for r in responses] == ["r0", "r1"]

    asyncio.run(both())
    assert seen == {"r0": "r0", "r1": "r1"}
    assert current_correlation_id() is None


def test_outside_a_request() -> None:
    assert current_correlation_id() is None


@override_settings(MIDDLEWARE=["conveyor.middleware.CorrelationIdMiddleware"])
def test_through_the_django_stack(client: Client) -> None:
    # tests.urls has no view here: the 404 still carries the echoed header.
    response = client.get("/nowhere/", HTTP_X_REQUEST_ID="stack-1")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "stack-1"
