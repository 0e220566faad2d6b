"""The outbox in the admin: events (read-only data), the audit trail, and a summary page.

Rows belong to the relay once committed, so no field is ever editable here: editing one could
break per-key order or a live lease. What an operator may do is what the relay's CLI does,
through conveyor.operations with the same audit trail: retry or discard dead events (actions
on the event list, and buttons per event type on the summary page). Those need the
``conveyor.operate_event`` permission (see conveyor.permissions); viewing needs
``conveyor.view_event``.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from conveyor import operations
from conveyor.models import AuditEntry, Event, Status
from conveyor.permissions import can_operate
from conveyor.selection import EventFilter
from conveyor.summary import dead_letters, outbox_summary

SUMMARY_PAGE_SIZE = 25


def _pretty(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


if TYPE_CHECKING:
    _EventAdminBase = admin.ModelAdmin[Event]
    _AuditAdminBase = admin.ModelAdmin[AuditEntry]
else:  # ModelAdmin is generic only in django-stubs, not at runtime
    _EventAdminBase = _AuditAdminBase = admin.ModelAdmin


class _ReadOnly:
    """No add, change or delete for anyone, superusers included."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _actor(request: HttpRequest) -> str:
    return request.user.get_username() or f"user #{request.user.pk}"


def _report(
    admin_obj: admin.ModelAdmin[Any],
    request: HttpRequest,
    result: operations.OperationResult,
    *,
    done: str,
    asked: int | None = None,
) -> None:
    text = f"{done} {result.changed} dead event(s)."
    if asked is not None and asked > result.changed:
        text += (
            f" {asked - result.changed} of the selected were not dead (or already discarded) "
            "and were left alone."
        )
    level = messages.SUCCESS if result.changed else messages.WARNING
    admin_obj.message_user(request, text, level)


@admin.register(Event)
class EventAdmin(_ReadOnly, _EventAdminBase):
    list_display = ("id", "created_at", "event_type", "status", "key", "attempts", "discarded")
    list_filter = ("status", "event_type")
    search_fields = ("id", "key", "idempotency_key")  # see get_search_results
    search_help_text = "Exact event id (UUID), ordering key or idempotency key."
    ordering = ("-id",)  # UUIDv7: newest first, on the primary key index
    show_full_result_count = False  # skip a second COUNT(*) on a large table
    list_per_page = 50
    actions = ["retry_dead_events", "discard_dead_events"]
    change_list_template = "admin/conveyor/event/change_list.html"
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
                    "blocks_key",
                    "discarded_at",
                )
            },
        ),
        ("Audit trail", {"fields": ("audit_trail",)}),
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
        "blocks_key",
        "discarded_at",
        "audit_trail",
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

    @admin.display(description="discarded", boolean=True)
    def discarded(self, obj: Event) -> bool | None:
        return obj.discarded_at is not None if obj.status == Status.DEAD else None

    @admin.display(description="audit trail")
    def audit_trail(self, obj: Event) -> SafeString:
        entries = AuditEntry._default_manager.using(obj._state.db).filter(event=obj.pk)
        lines = [
            f"{a.at:%Y-%m-%d %H:%M:%S} {a.actor} {a.action} {a.detail}".rstrip()
            for a in entries.order_by("at", "id")
        ]
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', "\n".join(lines) or "-"
        )

    # --- operator actions ----------------------------------------------------------------

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return can_operate(request.user)

    @admin.action(description="Retry selected dead events", permissions=["operate"])
    def retry_dead_events(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        self._act(request, queryset, operations.retry_dead, operations.RETRY, done="Retried")

    @admin.action(description="Discard selected dead events", permissions=["operate"])
    def discard_dead_events(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        self._act(request, queryset, operations.discard_dead, operations.DISCARD, done="Discarded")

    def _act(
        self,
        request: HttpRequest,
        queryset: QuerySet[Event],
        run: Callable[..., operations.OperationResult],
        action: str,
        *,
        done: str,
    ) -> None:
        ids = list(queryset.order_by().values_list("pk", flat=True))
        result = run(
            EventFilter(ids=ids),
            actor=_actor(request),
            using=queryset.db,
            command=f"admin action {action}",
        )
        _report(self, request, result, done=done, asked=len(ids))

    # --- summary page --------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        summary = path(
            "summary/",
            self.admin_site.admin_view(self.summary_view),
            name="{}_{}_summary".format(*info),
        )
        return [summary, *super().get_urls()]  # before <path:object_id>/, which would match

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"summary_url": reverse(f"{self.admin_site.name}:conveyor_event_summary")}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    def summary_view(self, request: HttpRequest) -> HttpResponse:
        """GET: counts, oldest pending age, dead letters by type, the last errors. POST
        (operate permission): retry or discard every dead event of one type."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._summary_post(request)
        if request.method != "GET":
            return HttpResponse(status=405, headers={"Allow": "GET, POST"})
        summary = outbox_summary()
        page = Paginator(dead_letters(), SUMMARY_PAGE_SIZE).get_page(request.GET.get("page"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Outbox summary",
            "subtitle": None,
            "summary": summary,
            "page": page,
            "can_operate": self.has_operate_permission(request),
            "changelist_url": reverse(f"{self.admin_site.name}:conveyor_event_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/conveyor/event/summary.html", context)

    def _summary_post(self, request: HttpRequest) -> HttpResponse:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        action = request.POST.get("action")
        event_type = request.POST.get("event_type", "")
        if action not in (operations.RETRY, operations.DISCARD) or not event_type:
            return HttpResponse("Bad request: action and event_type are required.", status=400)
        run = operations.retry_dead if action == operations.RETRY else operations.discard_dead
        result = run(
            EventFilter(event_type=event_type, exact_type=True),
            actor=_actor(request),
            command=f"admin summary {action}",
        )
        done = "Retried" if action == operations.RETRY else "Discarded"
        _report(self, request, result, done=f"{done} {event_type}:")
        return HttpResponseRedirect(request.path)


@admin.register(AuditEntry)
class AuditEntryAdmin(_ReadOnly, _AuditAdminBase):
    list_display = ("at", "actor", "action", "event_link", "detail")
    list_filter = ("action",)
    search_fields = ("actor", "event")  # see get_search_results
    search_help_text = "Exact actor or event id."
    ordering = ("-at", "-id")
    show_full_result_count = False
    list_per_page = 100
    fields = ("at", "actor", "action", "event_link", "detail")
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEntry], search_term: str
    ) -> tuple[QuerySet[AuditEntry], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        query = Q(actor=term)
        with contextlib.suppress(ValueError):
            query |= Q(event=uuid.UUID(term))
        return queryset.filter(query), False

    @admin.display(description="event", ordering="event")
    def event_link(self, obj: AuditEntry) -> SafeString | str:
        if obj.event is None:
            return "-"
        url = reverse(f"{self.admin_site.name}:conveyor_event_change", args=[obj.event])
        return format_html('<a href="{}">{}</a>', url, obj.event)
