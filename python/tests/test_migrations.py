"""The migrations are the schema contract with the Go relay: they must apply, unapply and match
the models on every supported vendor."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from conveyor.schema_sql import NOTIFY_CHANNEL

EXPECTED_INDEXES = {
    "postgresql": {"conveyor_event_claim_free_idx", "conveyor_event_claim_key_idx"},
    "sqlite": {"conveyor_event_claim_free_idx", "conveyor_event_claim_key_idx"},
    "mysql": {"conveyor_event_claim_idx"},
}


def _tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def _indexes() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, "conveyor_event"))


def _triggers() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = 'conveyor_event'::regclass AND NOT tgisinternal"
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def remigrate() -> Iterator[None]:
    """Whatever the test does to the schema, leave conveyor fully migrated afterwards."""
    try:
        yield
    finally:
        call_command("migrate", "conveyor", verbosity=0)


@pytest.mark.django_db
def test_models_match_migrations() -> None:
    out = StringIO()
    call_command("makemigrations", "conveyor", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_schema_after_migrate() -> None:
    assert "conveyor_event" in _tables()
    assert EXPECTED_INDEXES[connection.vendor] <= _indexes()
    if connection.vendor == "postgresql":
        assert _triggers() == {"conveyor_event_notify"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("remigrate")
def test_unapply_and_reapply() -> None:
    call_command("migrate", "conveyor", "zero", verbosity=0)
    assert "conveyor_event" not in _tables()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = 'conveyor_notify'")
            assert cursor.fetchone() == (0,)

    call_command("migrate", "conveyor", verbosity=0)
    assert "conveyor_event" in _tables()
    assert EXPECTED_INDEXES[connection.vendor] <= _indexes()
    if connection.vendor == "postgresql":
        assert _triggers() == {"conveyor_event_notify"}


@pytest.mark.django_db(transaction=True)
def test_sqlmigrate_shows_the_table() -> None:
    out = StringIO()
    call_command("sqlmigrate", "conveyor", "0001", stdout=out)
    assert "conveyor_event" in out.getvalue()


def test_notify_channel_is_the_contract() -> None:
    assert NOTIFY_CHANNEL == "conveyor_event"
