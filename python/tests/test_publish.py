from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import transaction
from django.db.models.expressions import DatabaseDefault
from django.test import override_settings

from conveyor import ConveyorError, Event, OutsideTransactionError, Status, publish


class Boom(Exception):
    pass


@pytest.mark.django_db
def test_publish_records_a_pending_row() -> None:
    event = publish("order.placed", {"order_id": 7}, key="customer-1", subject="orders/7")

    row = Event.objects.get()
    assert row.pk == event.pk
    assert isinstance(event.pk, uuid.UUID) and event.pk.version == 7
    assert (row.event_type, row.key, row.subject) == ("order.placed", "customer-1", "orders/7")
    assert row.data == {"order_id": 7} == event.data
    assert row.status == Status.PENDING
    assert row.source == "django:tests"  # top-level package of DJANGO_SETTINGS_MODULE
    assert row.headers == {}
    assert row.attempts == 0 and row.lease_token == 0 and row.locked_by is None


@pytest.mark.django_db
def test_returned_event_carries_database_times() -> None:
    event = publish("order.placed", {})
    created: object = event.created_at
    assert not isinstance(created, DatabaseDefault)
    assert isinstance(event.created_at, dt.datetime)
    assert event.available_at == event.created_at
    assert event.created_at == Event.objects.get().created_at


@pytest.mark.django_db(transaction=True)
def test_committed_publish_persists() -> None:
    with transaction.atomic():
        event = publish("order.placed", {"n": 1})
    assert list(Event.objects.values_list("pk", flat=True)) == [event.pk]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_publish_leaves_no_row() -> None:
    with pytest.raises(Boom), transaction.atomic():
        publish("order.placed", {"n": 1})
        raise Boom
    assert Event.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_rolled_back_savepoint_drops_only_its_events() -> None:
    with transaction.atomic():
        kept = publish("a", {})
        with pytest.raises(Boom), transaction.atomic():
            publish("b", {})
            raise Boom
    assert list(Event.objects.values_list("pk", flat=True)) == [kept.pk]


@pytest.mark.django_db(transaction=True)
def test_outside_atomic_raises_and_writes_nothing() -> None:
    with pytest.raises(OutsideTransactionError) as info:
        publish("order.placed", {})
    message = str(info.value)
    assert "outside transaction.atomic() on database 'default'" in message
    assert 'CONVEYOR["REQUIRE_ATOMIC"] = False' in message
    assert isinstance(info.value, ConveyorError)
    assert Event.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@override_settings(CONVEYOR={"REQUIRE_ATOMIC": False})
def test_require_atomic_off_allows_autocommit() -> None:
    event = publish("order.placed", {"n": 1})
    assert Event.objects.get().pk == event.pk


def test_error_default_message_is_docstring() -> None:
    assert str(ConveyorError()) == "Conveyor failed to record the event."
    assert str(OutsideTransactionError()).startswith(
        "conveyor.publish() was called outside transaction.atomic()."
    )


@pytest.mark.django_db
def test_source_argument_and_setting() -> None:
    assert publish("a", {}, source="billing").source == "billing"
    with override_settings(CONVEYOR={"SOURCE": "urn:shop"}):
        assert publish("a", {}).source == "urn:shop"


@pytest.mark.django_db
def test_deliver_at_is_stored_in_utc() -> None:
    tz = dt.timezone(dt.timedelta(hours=5))
    when = dt.datetime(2031, 1, 2, 8, 30, tzinfo=tz)
    event = publish("a", {}, deliver_at=when)
    stored = Event.objects.get().available_at
    assert stored == when
    assert stored.utcoffset() == dt.timedelta(0)
    assert stored.hour == 3
    assert event.available_at == when


@pytest.mark.django_db
def test_django_json_types_are_converted() -> None:
    data: dict[str, Any] = {
        "amount": __import__("decimal").Decimal("9.99"),
        "at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        "id": uuid.UUID(int=1),
        "tuple": (1, 2),
        "nested": {"ok": [True, None, 1.5]},
    }
    event = publish("a", data)
    expected = {
        "amount": "9.99",
        "at": "2030-01-01T00:00:00Z",
        "id": "00000000-0000-0000-0000-000000000001",
        "tuple": [1, 2],
        "nested": {"ok": [True, None, 1.5]},
    }
    assert event.data == expected
    assert Event.objects.get().data == expected


@pytest.mark.django_db
def test_unicode_payload_round_trips() -> None:
    publish("a", {"name": "Zoë 🚚"})
    assert Event.objects.get().data == {"name": "Zoë 🚚"}


@pytest.mark.django_db
def test_using_names_the_database() -> None:
    event = publish("a", {}, using="default")
    assert event._state.db == "default"


@pytest.mark.django_db
def test_unknown_database_alias_is_an_error() -> None:
    from django.utils.connection import ConnectionDoesNotExist

    with pytest.raises(ConnectionDoesNotExist):
        publish("a", {}, using="nope")
