from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

import shop.services
from conveyor import Event, OutsideTransactionError, Status
from shop.models import Order
from shop.services import PlacedOrder, place_order


@pytest.mark.django_db(transaction=True)
def test_order_and_event_commit_together() -> None:
    order, event = place_order("ada", Decimal("12.50"))
    stored = Event.objects.get()
    assert stored.pk == event.pk
    assert stored.event_type == "order.placed"
    assert stored.key == "customer-ada"
    assert stored.subject == str(order.pk)
    assert stored.source == "shop"
    assert stored.status == Status.PENDING
    assert stored.data == {"order_id": order.pk, "customer": "ada", "amount": "12.50"}
    assert Order.objects.get().amount == Decimal("12.50")


@pytest.mark.django_db(transaction=True)
def test_rollback_after_publish_removes_both() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        place_order("mallory", Decimal("1.00"))
        raise RuntimeError("payment declined")
    assert Order.objects.count() == 0
    assert Event.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_failed_publish_removes_the_order(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_publish(*args: object, **kwargs: object) -> Event:
        raise OutsideTransactionError("simulated failure")

    monkeypatch.setattr(shop.services, "publish", broken_publish)
    with pytest.raises(OutsideTransactionError):
        place_order("ada", Decimal("1.00"))
    assert Order.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_on_commit_runs_after_commit_only() -> None:
    seen: list[PlacedOrder] = []
    placed = place_order("ada", Decimal("2.00"), on_commit=seen.append)
    assert seen == [placed]

    seen.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        place_order("mallory", Decimal("3.00"), on_commit=seen.append)
        raise RuntimeError
    assert seen == []


@pytest.mark.django_db(transaction=True)
def test_each_customer_key_orders_its_events() -> None:
    events = [place_order(c, Decimal("1.00")).event for c in ("ada", "ken", "ada")]
    ada = Event.objects.filter(key="customer-ada").order_by("pk")
    assert [e.pk for e in ada] == [events[0].pk, events[2].pk]
