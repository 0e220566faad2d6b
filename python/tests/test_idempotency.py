from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import close_old_connections, connection, connections, transaction

from conveyor import Event, EventSpec, publish, publish_many
from conveyor.testing import captured_events


@pytest.mark.django_db
def test_repeated_key_returns_the_existing_event() -> None:
    first = publish("payment.captured", {"amount": 1}, idempotency_key="pay-1")
    again = publish("payment.captured", {"amount": 2}, idempotency_key="pay-1")
    assert again.pk == first.pk
    assert again.data == {"amount": 1}
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_keys_in_a_batch() -> None:
    existing = publish("a", {"n": 0}, idempotency_key="dup")
    with captured_events() as captured:
        events = publish_many(
            [
                EventSpec("a", {"n": 1}),
                EventSpec("a", {"n": 2}, idempotency_key="dup"),
                EventSpec("a", {"n": 3}, idempotency_key="fresh"),
                EventSpec("a", {"n": 4}, idempotency_key="fresh"),
            ]
        )
    assert events[1].pk == existing.pk
    assert events[2].pk == events[3].pk
    assert [e.data["n"] for e in events] == [1, 0, 3, 3]
    assert Event.objects.count() == 3
    assert [e.data["n"] for e in captured] == [1, 3]  # only rows actually recorded


@pytest.mark.django_db(transaction=True)
def test_key_of_a_rolled_back_event_is_free_again() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("a", {}, idempotency_key="k")
        raise RuntimeError
    with transaction.atomic():
        event = publish("a", {}, idempotency_key="k")
    assert Event.objects.get().pk == event.pk


def _in_thread(target: Callable[[], Any], results: dict[str, Any], name: str) -> threading.Thread:
    def run() -> None:
        try:
            results[name] = target()
        except BaseException as exc:  # surfaced by the test
            results[name] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


@pytest.mark.concurrent
@pytest.mark.django_db(transaction=True)
def test_concurrent_publishers_with_one_key_record_one_event() -> None:
    """Two connections publish the same key; the second waits for the first and gets its row."""
    first_inserted = threading.Event()
    release_first = threading.Event()
    committed_at: dict[str, float] = {}
    results: dict[str, Any] = {}

    def first() -> Event:
        with transaction.atomic():
            event = publish("a", {"who": "first"}, idempotency_key="same")
            first_inserted.set()
            release_first.wait(10)
        return event

    def second() -> Event:
        first_inserted.wait(10)
        with transaction.atomic():
            if connection.vendor == "mysql":
                # Django defaults MySQL to READ COMMITTED; InnoDB's own default is stricter.
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # Read first: under REPEATABLE READ this fixes a snapshot taken before the other
            # insert commits, and publish() must still find that row (a locking read).
            Event.objects.count()
            event = publish("a", {"who": "second"}, idempotency_key="same")
            committed_at["second_returned"] = time.monotonic()
        return event

    t1 = _in_thread(first, results, "first")
    assert first_inserted.wait(10)
    t2 = _in_thread(second, results, "second")
    time.sleep(0.5)
    assert t2.is_alive(), f"the second publisher should wait for the first: {results}"
    committed_at["first_released"] = time.monotonic()
    release_first.set()
    t1.join(20)
    t2.join(20)
    close_old_connections()

    for name in ("first", "second"):
        assert not isinstance(results.get(name), BaseException), results.get(name)
    assert results["first"].pk == results["second"].pk
    assert results["second"].data == {"who": "first"}
    assert committed_at["second_returned"] > committed_at["first_released"]
    assert Event.objects.count() == 1


@pytest.mark.concurrent
@pytest.mark.django_db(transaction=True)
def test_concurrent_publisher_inserts_when_the_first_rolls_back() -> None:
    first_inserted = threading.Event()
    release_first = threading.Event()
    results: dict[str, Any] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                publish("a", {"who": "first"}, idempotency_key="same")
                first_inserted.set()
                release_first.wait(10)
                raise RuntimeError("roll back")
        except RuntimeError:
            return None

    def second() -> Event:
        first_inserted.wait(10)
        with transaction.atomic():
            return publish("a", {"who": "second"}, idempotency_key="same")

    t1 = _in_thread(first, results, "first")
    assert first_inserted.wait(10)
    t2 = _in_thread(second, results, "second")
    time.sleep(0.5)
    release_first.set()
    t1.join(20)
    t2.join(20)
    close_old_connections()

    assert not isinstance(results.get("second"), BaseException), results.get("second")
    stored = Event.objects.get()
    assert stored.pk == results["second"].pk
    assert stored.data == {"who": "second"}
