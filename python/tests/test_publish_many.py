from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from pytest_django import DjangoAssertNumQueries

from conveyor import Event, EventSpec, OutsideTransactionError, publish_many


@pytest.mark.django_db
def test_bulk_publish_keeps_iteration_order() -> None:
    specs = [EventSpec("order.line", {"n": n}, key="order-1") for n in range(50)]
    events = publish_many(specs)
    ids = [e.pk for e in events]
    assert ids == sorted(ids)
    assert [e.data["n"] for e in events] == list(range(50))
    stored = list(Event.objects.order_by("pk").values_list("pk", "data"))
    assert stored == [(e.pk, e.data) for e in events]


@pytest.mark.django_db
def test_dicts_and_specs_mix() -> None:
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    items: list[EventSpec | dict[str, Any]] = [
        {"event_type": "a", "data": {"x": 1}, "key": "k", "deliver_at": when},
        EventSpec("b", [1, 2], subject="s", headers={"h": "v"}),
    ]
    a, b = publish_many(items)
    assert (a.event_type, a.key, a.available_at) == ("a", "k", when)
    assert (b.event_type, b.subject, b.headers, b.data) == ("b", "s", {"h": "v"}, [1, 2])
    assert b.available_at != when
    assert Event.objects.count() == 2


@pytest.mark.django_db
def test_one_insert_statement(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    specs = [EventSpec("a", {"n": n}) for n in range(20)]
    # One INSERT; backends that cannot RETURN column defaults (MySQL) need one SELECT more.
    expected = 1 if connection.features.can_return_rows_from_bulk_insert else 2
    with django_assert_num_queries(expected) as captured:
        publish_many(specs)
    inserts = [q for q in captured.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1


@pytest.mark.django_db
def test_empty_batch_does_nothing(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    with django_assert_num_queries(0):
        assert publish_many([]) == []
    assert publish_many(iter(())) == []


@pytest.mark.django_db(transaction=True)
def test_empty_batch_still_requires_atomic() -> None:
    with pytest.raises(OutsideTransactionError, match=r"conveyor\.publish_many"):
        publish_many([])


@pytest.mark.django_db(transaction=True)
def test_bulk_rollback() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish_many([EventSpec("a", {}), EventSpec("b", {})])
        raise RuntimeError
    assert Event.objects.count() == 0


@pytest.mark.django_db(transaction=True)
@override_settings(CONVEYOR={"REQUIRE_ATOMIC": False})
def test_bulk_in_autocommit() -> None:
    assert len(publish_many([EventSpec("a", {}), EventSpec("b", {})])) == 2
    assert Event.objects.count() == 2


@pytest.mark.django_db
def test_large_batch_over_parameter_limits() -> None:
    events = publish_many(EventSpec("a", {"n": n}, idempotency_key=f"k{n}") for n in range(1200))
    assert len(events) == 1200
    assert Event.objects.count() == 1200
    assert [e.idempotency_key for e in events] == [f"k{n}" for n in range(1200)]
