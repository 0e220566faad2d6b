from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from conveyor import Event, EventSpec, publish, publish_many

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:conveyor_event_changelist"


@pytest.fixture
def events() -> list[Event]:
    return publish_many(
        [
            EventSpec("order.placed", {"order_id": 1, "items": ["a", "b"]}, key="customer-1"),
            EventSpec("order.paid", {"order_id": 1}, key="customer-1", idempotency_key="pay-1"),
            EventSpec("invoice.issued", {"n": 2}, headers={"x-tenant": "acme"}),
        ]
    )


def test_changelist_lists_events(admin_client: Client, events: list[Event]) -> None:
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    body = response.content.decode()
    for event in events:
        assert str(event.pk) in body
    assert "invoice.issued" in body and "customer-1" in body
    assert "Add event" not in body  # no add permission


def test_changelist_filters(admin_client: Client, events: list[Event]) -> None:
    response = admin_client.get(reverse(CHANGELIST), {"event_type": "order.paid", "status": "0"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [events[1]]


@pytest.mark.parametrize(
    ("term", "expected"),
    [("customer-1", [1, 0]), ("pay-1", [1]), ("nothing", []), ("  ", [2, 1, 0])],
)
def test_search_by_key(
    admin_client: Client, events: list[Event], term: str, expected: list[int]
) -> None:
    response = admin_client.get(reverse(CHANGELIST), {"q": term})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [events[i] for i in expected]


def test_search_by_id(admin_client: Client, events: list[Event]) -> None:
    response = admin_client.get(reverse(CHANGELIST), {"q": str(events[2].pk)})
    assert list(response.context["cl"].result_list) == [events[2]]


def test_detail_is_read_only_with_pretty_json(admin_client: Client, events: list[Event]) -> None:
    url = reverse("admin:conveyor_event_change", args=[events[0].pk])
    response = admin_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<pre" in body
    assert "&quot;items&quot;: [\n    &quot;a&quot;," in body  # indented, escaped JSON
    assert 'name="_save"' not in body  # no save button
    assert "order.placed" in body


def test_no_writes(admin_client: Client, events: list[Event]) -> None:
    assert admin_client.get(reverse("admin:conveyor_event_add")).status_code == 403
    delete = reverse("admin:conveyor_event_delete", args=[events[0].pk])
    assert admin_client.get(delete).status_code == 403
    change = reverse("admin:conveyor_event_change", args=[events[0].pk])
    response = admin_client.post(change, {"event_type": "hacked"})
    assert response.status_code == 403
    assert Event.objects.get(pk=events[0].pk).event_type == "order.placed"


def test_view_permission_is_enough(
    client: Client, django_user_model: Any, events: list[Event]
) -> None:
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_event"))
    client.force_login(user)
    assert client.get(reverse(CHANGELIST)).status_code == 200
    change = reverse("admin:conveyor_event_change", args=[events[0].pk])
    assert client.get(change).status_code == 200


def test_without_permission_it_is_hidden(client: Client, django_user_model: Any) -> None:
    publish("a", {})
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(CHANGELIST)).status_code == 403
