"""A read-only admin for the outbox: look, never touch.

Rows belong to the relay once committed; editing one from the admin could break per-key order
or a live lease. Retrying and discarding dead events is the relay CLI's job (`conveyor dead`).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from conveyor.models import Event


def _pretty(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Event]
else:  # ModelAdmin is generic only in django-stubs, not at runtime
    _ModelAdmin = admin.ModelAdmin


@admin.register(Event)
class EventAdmin(_ModelAdmin):
    list_display = ("id", "created_at", "event_type", "status", "key", "attempts")
    list_filter = ("status", "event_type")
    search_fields = ("id", "key", "idempotency_key")  # see get_search_results
    search_help_text = "Exact event id (UUID), ordering key or idempotency key."
    ordering = ("-id",)  # UUIDv7: newest first, on the primary key index
    show_full_result_count = False  # skip a second COUNT(*) on a large table
    list_per_page = 50
    fieldsets = (
        (None, {"fields": ("id", "event_type", "source", "key", "subject", "status")}),
        ("Payload", {"fields": ("data_pretty", "headers_pretty", "idempotency_key")}),
        (
            "Delivery",
            {
                "fields": (
                    "created_at",
                    "available_at",
                    "attempts",
                    "last_error",
                    "published_at",
                    "locked_by",
                    "locked_until",
                    "lease_token",
                )
            },
        ),
    )
    readonly_fields = (
        "id",
        "event_type",
        "source",
        "key",
        "subject",
        "status",
        "data_pretty",
        "headers_pretty",
        "idempotency_key",
        "created_at",
        "available_at",
        "attempts",
        "last_error",
        "published_at",
        "locked_by",
        "locked_until",
        "lease_token",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Event], search_term: str
    ) -> tuple[QuerySet[Event], bool]:
        # Exact matches only: they use the primary key and unique indexes, where the default
        # icontains would scan the whole table.
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(key=term) | Q(idempotency_key=term)
        with contextlib.suppress(ValueError):  # not a UUID: search the keys only
            query |= Q(pk=uuid.UUID(term))
        return queryset.filter(query), False

    @admin.display(description="data")
    def data_pretty(self, obj: Event) -> SafeString:
        return _pretty(obj.data)

    @admin.display(description="headers")
    def headers_pretty(self, obj: Event) -> SafeString:
        return _pretty(obj.headers)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False
