"""The business operation: an order and its event, in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import NamedTuple

from django.db import transaction

from conveyor import Event, publish
from shop.models import Order


class PlacedOrder(NamedTuple):
    order: Order
    event: Event


def place_order(
    customer: str,
    amount: Decimal,
    *,
    on_commit: Callable[[PlacedOrder], None] | None = None,
) -> PlacedOrder:
    """Create the order and record `order.placed` atomically: both exist, or neither does.

    The key keeps each customer's events in order; ``on_commit`` runs after the commit
    (never on rollback), which is how the demo measures commit-to-delivery latency.
    """
    with transaction.atomic():
        order = Order.objects.create(customer=customer, amount=amount)
        event = publish(
            "order.placed",
            {"order_id": order.pk, "customer": customer, "amount": amount},
            key=f"customer-{customer}",
            subject=str(order.pk),
        )
        placed = PlacedOrder(order, event)
        if on_commit is not None:
            transaction.on_commit(lambda: on_commit(placed))
    return placed
