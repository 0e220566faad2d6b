"""Django publish() -> the conveyor relay binary -> NATS JetStream -> a real NATS consumer.

Everything is real: PostgreSQL migrated by the Django migrations, the relay binary, a
nats-server process and the nats-py client.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid

import pytest
from django.db import connection, transaction

from conftest import consume
from conveyor import publish
from conveyor.models import Event, Status

pytestmark = pytest.mark.django_db(transaction=True)


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


class Boom(Exception):
    pass


def test_committed_published_rolled_back_never(nats_server, relay_factory) -> None:
    relay = relay_factory()
    relay.start()
    committed = []
    for i in range(5):
        with transaction.atomic():
            committed.append(
                publish("order.placed", {"order": i, "total": "9.99"}, key=f"c-{i % 2}", subject=f"o-{i}")
            )
    rolled_back_id = None
    with pytest.raises(Boom), transaction.atomic():
        rolled_back_id = publish("order.placed", {"order": "ghost"}).id
        raise Boom
    assert not Event.objects.filter(id=rolled_back_id).exists()

    wait_for(lambda: Event.objects.filter(status=Status.PUBLISHED).count() == 5)
    got = consume(nats_server.url, want=6, timeout=3)
    assert len(got) == 5, "the rolled-back event must never be published"
    by_id = {m.headers["Nats-Msg-Id"]: m for m in got}
    assert set(by_id) == {str(e.id) for e in committed}
    first = by_id[str(committed[0].id)]
    assert first.subject == "events.order.placed"
    assert json.loads(first.data) == {"order": 0, "total": "9.99"}
    assert first.headers["ce-specversion"] == "1.0"
    assert first.headers["ce-id"] == str(committed[0].id)
    assert first.headers["ce-type"] == "order.placed"
    assert first.headers["ce-source"] == "e2e"
    assert first.headers["ce-subject"] == "o-0"
    assert first.headers["ce-datacontenttype"] == "application/json"
    assert re.match(r"^\d{4}-\d\d-\d\dT", first.headers["ce-time"])
    # Per-key order on the wire.
    for key in ("c-0", "c-1"):
        ids = [str(e.id) for e in committed if e.key == key]
        seen = [m.headers["Nats-Msg-Id"] for m in got if m.headers["Nats-Msg-Id"] in ids]
        assert seen == ids
    assert relay.stop() == 0


def test_out_of_order_commits_both_arrive(nats_server, relay_factory) -> None:
    """Hold an earlier transaction open, commit a later one, then commit the first."""
    relay = relay_factory()
    relay.start()
    first_published = threading.Event()
    release = threading.Event()
    first: dict[str, uuid.UUID] = {}
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                first["id"] = publish("order.placed", {"n": 1}).id
                first_published.set()
                assert release.wait(20)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)
        finally:
            connection.close()

    t = threading.Thread(target=slow_writer)
    t.start()
    assert first_published.wait(10)
    with transaction.atomic():
        later = publish("order.placed", {"n": 2})
    assert later.id > first["id"], "the held transaction allocated the smaller id"
    wait_for(lambda: Event.objects.filter(id=later.id, status=Status.PUBLISHED).exists())
    release.set()
    t.join(20)
    assert not errors
    wait_for(lambda: Event.objects.filter(id=first["id"], status=Status.PUBLISHED).exists())
    got = consume(nats_server.url, want=2)
    assert [m.headers["Nats-Msg-Id"] for m in got] == [str(later.id), str(first["id"])]
    assert relay.stop() == 0


def test_restart_with_rows_mid_lease(nats_server, relay_factory) -> None:
    """Rows leased by a relay that died are published once the lease expires."""
    with transaction.atomic():
        events = [publish("order.placed", {"n": i}, key="k") for i in range(3)]
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE conveyor_event SET locked_by = 'crashed-relay', lease_token = lease_token + 1,"
            " attempts = attempts + 1, locked_until = now() + interval '2 seconds'"
        )
    relay = relay_factory()
    relay.start()
    time.sleep(1.0)
    assert Event.objects.filter(status=Status.PUBLISHED).count() == 0, "the lease still holds"
    wait_for(lambda: Event.objects.filter(status=Status.PUBLISHED).count() == 3, timeout=15)
    got = consume(nats_server.url, want=3)
    assert [m.headers["Nats-Msg-Id"] for m in got] == [str(e.id) for e in events]
    assert {e.attempts for e in Event.objects.all()} == {2}
    assert relay.stop() == 0


def test_graceful_shutdown_releases_nothing_half_done(nats_server, relay_factory) -> None:
    relay = relay_factory()
    relay.start()
    with transaction.atomic():
        for i in range(50):
            publish("order.placed", {"n": i}, key=f"k{i % 5}")
    assert relay.stop() == 0
    # Whatever the relay did not publish it released: no row keeps a lease.
    assert not Event.objects.filter(locked_by__isnull=False).exists()
    assert "relay stopped" in relay.log.read_text()


def test_broker_unreachable_is_a_clear_error(relay_factory) -> None:
    relay = relay_factory(nats_url="nats://127.0.0.1:1", name="nobroker")
    relay.start(wait=False)
    assert relay.proc is not None
    code = relay.proc.wait(30)
    assert code == 1
    log = relay.log.read_text()
    assert "127.0.0.1:1" in log
    assert "sinks.main" in log


def test_notify_wakes_relay_fast(nats_server, relay_factory) -> None:
    """With LISTEN/NOTIFY a commit is published long before the poll (sleeps of 10-20 s)."""
    relay = relay_factory(poll="20s")
    relay.start()
    time.sleep(0.5)  # let the listener connect
    latencies = []
    for i in range(5):
        with transaction.atomic():
            ev = publish("order.placed", {"n": i})
        t0 = time.monotonic()
        wait_for(lambda ev=ev: Event.objects.filter(id=ev.id, status=Status.PUBLISHED).exists(), 5)
        latencies.append(time.monotonic() - t0)
    assert max(latencies) < 5.0, latencies
    assert relay.stop() == 0
