from __future__ import annotations

import uuid

import pytest
from django.test import Client

from conveyor import Event
from shop.models import Order


@pytest.mark.django_db
def test_request_id_becomes_the_events_correlation_id(client: Client) -> None:
    response = client.post(
        "/orders/", {"customer": "ada", "amount": "9.99"}, HTTP_X_REQUEST_ID="req-7f3a"
    )
    assert response.status_code == 201
    assert response["X-Request-ID"] == "req-7f3a"
    event = Event.objects.get(pk=response.json()["event_id"])
    assert event.headers["correlation-id"] == "req-7f3a"
    assert Order.objects.get().customer == "ada"


@pytest.mark.django_db
def test_a_request_without_an_id_gets_one(client: Client) -> None:
    response = client.post("/orders/", {"customer": "bob", "amount": "1"})
    generated = response["X-Request-ID"]
    assert uuid.UUID(generated)
    assert Event.objects.get().headers["correlation-id"] == generated


@pytest.mark.django_db
@pytest.mark.parametrize("data", [{"customer": "x", "amount": "lots"}, {"amount": "1"}])
def test_bad_orders_publish_nothing(client: Client, data: dict[str, str]) -> None:
    assert client.post("/orders/", data).status_code == 400
    assert not Event.objects.exists()
