"""PostgreSQL: the statement-level trigger wakes LISTENers on commit, and only on commit."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, transaction

from conveyor import EventSpec, publish, publish_many
from conveyor.schema_sql import NOTIFY_CHANNEL

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def listener() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A separate connection to the test database, LISTENing like the relay does."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        yield conn


def _received(
    conn: psycopg.Connection[tuple[object, ...]], timeout: float, stop_after: int = 10
) -> list[str]:
    return [n.channel for n in conn.notifies(timeout=timeout, stop_after=stop_after)]


def test_commit_notifies(listener: psycopg.Connection[tuple[object, ...]]) -> None:
    with transaction.atomic():
        publish("a", {})
        publish("b", {})
        assert _received(listener, 0.3) == [], "nothing may arrive before the commit"
    # One NOTIFY per INSERT statement; PostgreSQL folds identical ones in a transaction.
    assert _received(listener, 5.0, stop_after=1) == [NOTIFY_CHANNEL]
    assert _received(listener, 0.2) == []


def test_bulk_publish_notifies_once(listener: psycopg.Connection[tuple[object, ...]]) -> None:
    with transaction.atomic():
        publish_many([EventSpec("a", {"n": n}) for n in range(100)])
    assert _received(listener, 5.0, stop_after=1) == [NOTIFY_CHANNEL]
    assert _received(listener, 0.2) == []


def test_rollback_does_not_notify(listener: psycopg.Connection[tuple[object, ...]]) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("a", {})
        raise RuntimeError
    assert _received(listener, 1.0) == []
