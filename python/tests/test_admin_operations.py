"""Admin: retry/discard actions, the audit trail admin and the summary page, with permissions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conveyor import Event, EventSpec, Status, publish_many
from conveyor.models import AuditEntry
from conveyor.permissions import NAME, OPERATE_EVENT
from conveyor.summary import human_duration

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:conveyor_event_changelist"
SUMMARY = "admin:conveyor_event_summary"


def dead(n: int, event_type: str = "order.placed", **fields: Any) -> list[Event]:
    events = publish_many([EventSpec(event_type, {"i": i}, key="k") for i in range(n)])
    Event.objects.filter(pk__in=[e.pk for e in events]).update(
        status=Status.DEAD, attempts=10, last_error=f"{event_type} rejected: <bad>", **fields
    )
    return events


def user(django_user_model: Any, name: str, *perms: str) -> Any:
    u = django_user_model.objects.create_user(name, password="pw", is_staff=True)
    for perm in perms:
        u.user_permissions.add(Permission.objects.get(codename=perm))
    return u


@pytest.fixture
def viewer(client: Client, django_user_model: Any) -> Client:
    client.force_login(user(django_user_model, "viewer", "view_event", "view_auditentry"))
    return client


@pytest.fixture
def operator(client: Client, django_user_model: Any) -> Client:
    client.force_login(user(django_user_model, "operator", "view_event", "operate_event"))
    return client


def test_operate_permission_exists_after_migrate() -> None:
    perm = Permission.objects.get(codename="operate_event")
    assert perm.content_type.app_label == "conveyor" and perm.name == NAME
    assert OPERATE_EVENT == "conveyor.operate_event"


# --- actions on the event list -------------------------------------------------------------


def _actions(client: Client) -> set[str]:
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    form = response.context["action_form"]
    return {name for name, _ in form.fields["action"].choices if name} if form else set()


def test_actions_need_the_operate_permission(admin_client: Client, viewer: Client) -> None:
    assert _actions(admin_client) == {"retry_dead_events", "discard_dead_events"}
    assert _actions(viewer) == set()


def test_retry_action(admin_client: Client) -> None:
    events = dead(2)
    pending = publish_many([EventSpec("x", {})])
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "retry_dead_events", "_selected_action": [str(e.pk) for e in events + pending]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Retried 2 dead event(s). 1 of the selected were not dead" in text
    assert set(
        Event.objects.filter(pk__in=[e.pk for e in events]).values_list("status", "attempts")
    ) == {(Status.PENDING, 0)}
    entries = AuditEntry.objects.order_by("id")
    assert [(a.actor, a.action, a.event) for a in entries] == [
        ("admin", "retry", e.pk) for e in events
    ]


def test_discard_action_by_an_operator(operator: Client) -> None:
    events = dead(1)
    response = operator.post(
        reverse(CHANGELIST),
        {"action": "discard_dead_events", "_selected_action": [str(events[0].pk)]},
        follow=True,
    )
    assert "Discarded 1 dead event(s)." in response.content.decode()
    row = Event.objects.get(pk=events[0].pk)
    assert row.status == Status.DEAD and row.discarded_at is not None
    assert AuditEntry.objects.get().actor == "operator"


def test_viewer_cannot_run_actions(viewer: Client) -> None:
    events = dead(1)
    response = viewer.post(
        reverse(CHANGELIST),
        {"action": "retry_dead_events", "_selected_action": [str(events[0].pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert Event.objects.get(pk=events[0].pk).status == Status.DEAD
    assert not AuditEntry.objects.exists()


def test_changelist_links_to_summary(viewer: Client) -> None:
    body = viewer.get(reverse(CHANGELIST)).content.decode()
    assert f'href="{reverse(SUMMARY)}"' in body


def test_event_detail_shows_its_audit_trail(admin_client: Client) -> None:
    events = dead(1)
    admin_client.post(
        reverse(CHANGELIST),
        {"action": "discard_dead_events", "_selected_action": [str(events[0].pk)]},
    )
    body = admin_client.get(reverse("admin:conveyor_event_change", args=[events[0].pk])).content
    assert b"admin discard admin action discard --id " in body


# --- the summary page ----------------------------------------------------------------------


def test_summary_page(admin_client: Client) -> None:
    dead(3, "order.placed", blocks_key=True)
    dead(1, "invoice.issued")
    dead(1, "gone", discarded_at=timezone.now())
    publish_many([EventSpec("x", {}), EventSpec("x", {})])
    Event.objects.filter(event_type="x").update(created_at=timezone.now() - dt.timedelta(minutes=5))
    response = admin_client.get(reverse(SUMMARY))
    assert response.status_code == 200
    summary = response.context["summary"]
    assert (summary.status.pending, summary.active_dead, summary.discarded) == (2, 4, 1)
    assert [(t.event_type, t.count, t.blocking) for t in summary.dead_types] == [
        ("order.placed", 3, 3),
        ("invoice.issued", 1, 0),
    ]
    body = response.content.decode()
    assert '<span class="n" id="count-pending">2</span>' in body
    assert '<span class="n" id="oldest-pending">5m ' in body
    assert "Retry 3</button>" in body and "Discard 1</button>" in body
    assert "csrfmiddlewaretoken" in body
    assert "order.placed rejected: &lt;bad&gt;" in body  # escaped
    assert "gone" not in body  # discarded events are handled
    assert "?status__exact=2&amp;event_type__exact=order.placed" in body


def test_summary_empty(admin_client: Client) -> None:
    body = admin_client.get(reverse(SUMMARY)).content.decode()
    assert "No dead letters." in body and 'id="oldest-pending">-<' in body


def test_summary_paginates_dead_events(admin_client: Client) -> None:
    events = dead(30)
    first = admin_client.get(reverse(SUMMARY))
    assert [e.pk for e in first.context["page"]] == [e.pk for e in reversed(events)][:25]
    assert "Page 1 of 2" in first.content.decode()
    second = admin_client.get(reverse(SUMMARY), {"page": 2})
    assert len(second.context["page"]) == 5


def test_summary_for_viewers_has_no_buttons(viewer: Client) -> None:
    events = dead(2)
    response = viewer.get(reverse(SUMMARY))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Retry 2" not in body and '<form method="post"' not in body
    response = viewer.post(reverse(SUMMARY), {"action": "retry", "event_type": "order.placed"})
    assert response.status_code == 403
    assert Event.objects.filter(pk__in=[e.pk for e in events], status=Status.DEAD).count() == 2


def test_summary_needs_view_permission(client: Client, django_user_model: Any) -> None:
    client.force_login(user(django_user_model, "nobody"))
    assert client.get(reverse(SUMMARY)).status_code == 403
    client.logout()
    response = client.get(reverse(SUMMARY))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_summary_retry_and_discard_by_type(operator: Client) -> None:
    placed = dead(2, "order.placed")
    literal = dead(1, "order.*")  # a type that looks like a glob is matched exactly
    response = operator.post(reverse(SUMMARY), {"action": "retry", "event_type": "order.*"})
    assert response.status_code == 302 and response["Location"] == reverse(SUMMARY)
    assert Event.objects.get(pk=literal[0].pk).status == Status.PENDING
    assert Event.objects.filter(pk__in=[e.pk for e in placed], status=Status.DEAD).count() == 2
    response = operator.post(
        reverse(SUMMARY), {"action": "discard", "event_type": "order.placed"}, follow=True
    )
    assert "Discarded order.placed: 2 dead event(s)." in response.content.decode()
    assert Event.objects.filter(discarded_at__isnull=False).count() == 2
    details = set(AuditEntry.objects.values_list("actor", "action", "detail"))
    assert details == {
        ("operator", "retry", 'admin summary retry --type "order.*"'),
        ("operator", "discard", "admin summary discard --type order.placed"),
    }


def test_summary_post_validation(admin_client: Client) -> None:
    assert (
        admin_client.post(reverse(SUMMARY), {"action": "explode", "event_type": "a"}).status_code
        == 400
    )
    assert admin_client.post(reverse(SUMMARY), {"action": "retry"}).status_code == 400
    assert admin_client.put(reverse(SUMMARY)).status_code == 405


def test_summary_post_needs_csrf(django_user_model: Any) -> None:
    dead(1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    response = client.post(reverse(SUMMARY), {"action": "retry", "event_type": "order.placed"})
    assert response.status_code == 403
    assert Event.objects.get().status == Status.DEAD
    page = client.get(reverse(SUMMARY))
    token = page.context["csrf_token"]
    response = client.post(
        reverse(SUMMARY),
        {"action": "retry", "event_type": "order.placed", "csrfmiddlewaretoken": str(token)},
    )
    assert response.status_code == 302
    assert Event.objects.get().status == Status.PENDING


# --- the audit trail -----------------------------------------------------------------------


def test_audit_admin_is_read_only(admin_client: Client, viewer: Client) -> None:
    events = dead(1)
    admin_client.post(
        reverse(CHANGELIST),
        {"action": "retry_dead_events", "_selected_action": [str(events[0].pk)]},
    )
    entry = AuditEntry.objects.get()
    changelist = reverse("admin:conveyor_auditentry_changelist")
    body = viewer.get(changelist).content.decode()
    assert "retry" in body and reverse("admin:conveyor_event_change", args=[events[0].pk]) in body
    assert viewer.get(changelist, {"q": "admin"}).context["cl"].result_list[0] == entry
    assert list(viewer.get(changelist, {"q": str(events[0].pk)}).context["cl"].result_list) == [
        entry
    ]
    assert not viewer.get(changelist, {"q": "someone"}).context["cl"].result_list
    assert admin_client.get(reverse("admin:conveyor_auditentry_add")).status_code == 403
    change = reverse("admin:conveyor_auditentry_change", args=[entry.pk])
    assert admin_client.post(change, {"actor": "forged"}).status_code == 403
    assert (
        admin_client.get(reverse("admin:conveyor_auditentry_delete", args=[entry.pk])).status_code
        == 403
    )
    assert AuditEntry.objects.get().actor == "admin"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0.4s"), (12, "12s"), (252, "4m 12s"), (3600, "1h 0m"), (86405, "1d 0h")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == text
