"""Vendor-specific DDL that Django's model layer cannot express portably.

The relay's claim query relies on these indexes, and on PostgreSQL the statement-level
trigger sends the wake-up NOTIFY. Both are part of the schema contract (docs/contract.md).
"""

from __future__ import annotations

from typing import Any

NOTIFY_CHANNEL = "conveyor_event"

_INDEXES: dict[str, list[tuple[str, str]]] = {
    # (create, drop) pairs per vendor.
    "postgresql": [
        (
            "CREATE INDEX conveyor_event_claim_free_idx ON conveyor_event (id) "
            "WHERE status = 0 AND key IS NULL",
            "DROP INDEX IF EXISTS conveyor_event_claim_free_idx",
        ),
        (
            "CREATE INDEX conveyor_event_claim_key_idx ON conveyor_event (key, id) "
            "WHERE status = 0 AND key IS NOT NULL",
            "DROP INDEX IF EXISTS conveyor_event_claim_key_idx",
        ),
    ],
    "sqlite": [
        (
            "CREATE INDEX conveyor_event_claim_free_idx ON conveyor_event (id) "
            "WHERE status = 0 AND key IS NULL",
            "DROP INDEX IF EXISTS conveyor_event_claim_free_idx",
        ),
        (
            "CREATE INDEX conveyor_event_claim_key_idx ON conveyor_event (key, id) "
            "WHERE status = 0 AND key IS NOT NULL",
            "DROP INDEX IF EXISTS conveyor_event_claim_key_idx",
        ),
    ],
    # MySQL/MariaDB have no partial indexes: one composite index serves both claim paths.
    "mysql": [
        (
            "CREATE INDEX conveyor_event_claim_idx ON conveyor_event (status, `key`, id)",
            "DROP INDEX conveyor_event_claim_idx ON conveyor_event",
        ),
    ],
}

_NOTIFY_CREATE = f"""
CREATE OR REPLACE FUNCTION conveyor_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER conveyor_event_notify AFTER INSERT ON conveyor_event
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor_notify();
"""

_NOTIFY_DROP = """
DROP TRIGGER IF EXISTS conveyor_event_notify ON conveyor_event;
DROP FUNCTION IF EXISTS conveyor_notify();
"""


def create_claim_indexes(apps: Any, schema_editor: Any) -> None:
    for create, _ in _INDEXES.get(schema_editor.connection.vendor, []):
        schema_editor.execute(create)


def drop_claim_indexes(apps: Any, schema_editor: Any) -> None:
    for _, drop in _INDEXES.get(schema_editor.connection.vendor, []):
        schema_editor.execute(drop)


def create_notify_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_NOTIFY_CREATE)


def drop_notify_trigger(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_NOTIFY_DROP)


# 0002: a dead event can block its key (on_dead: block), so the key index also holds
# blocking dead rows; the claim's head-of-key walk then stops at them.
_KEY_INDEX_V2 = (
    "CREATE INDEX conveyor_event_claim_key_idx ON conveyor_event (key, id) "
    "WHERE key IS NOT NULL AND (status = 0 OR blocks_key)"
)
_KEY_INDEX_V1 = (
    "CREATE INDEX conveyor_event_claim_key_idx ON conveyor_event (key, id) "
    "WHERE status = 0 AND key IS NOT NULL"
)


_FREE_INDEX = (
    "CREATE INDEX IF NOT EXISTS conveyor_event_claim_free_idx ON conveyor_event (id) "
    "WHERE status = 0 AND key IS NULL"
)


def key_index_v2(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute("DROP INDEX IF EXISTS conveyor_event_claim_key_idx")
        schema_editor.execute(_KEY_INDEX_V2)
        # SQLite rebuilds the table to add a NOT NULL column, which drops indexes
        # Django does not know about: make sure the other claim index is back.
        schema_editor.execute(_FREE_INDEX)


def key_index_v1(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute("DROP INDEX IF EXISTS conveyor_event_claim_key_idx")
        schema_editor.execute(_KEY_INDEX_V1)
