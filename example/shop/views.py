"""One HTTP endpoint, to show a request's id travelling into the event it publishes."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from shop.services import place_order


@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    """POST customer=...&amount=... → 201 with the order and event ids.

    CorrelationIdMiddleware has put the request's X-Request-ID (or a fresh one) in context,
    and publish() copies it into the event's ``correlation-id`` header.
    """
    customer = request.POST.get("customer", "").strip()
    try:
        amount = Decimal(request.POST.get("amount", ""))
    except InvalidOperation:
        return JsonResponse({"error": "amount must be a decimal number"}, status=400)
    if not customer or not amount.is_finite() or amount <= 0:
        return JsonResponse({"error": "customer and a positive amount are required"}, status=400)
    order, event = place_order(customer, amount)
    return JsonResponse({"order_id": order.pk, "event_id": str(event.pk)}, status=201)
