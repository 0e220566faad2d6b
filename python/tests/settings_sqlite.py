"""Tests on SQLite: `DJANGO_SETTINGS_MODULE=tests.settings_sqlite python -m pytest`."""

from __future__ import annotations

import os
import tempfile

from tests.settings_base import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.gettempdir(), "conveyor-dev.sqlite3"),
        # A file (not :memory:) so the concurrency tests get real, separately locking
        # connections. IMMEDIATE makes a second writer queue at BEGIN (for up to `timeout`
        # seconds) instead of failing with "database is locked" when it upgrades a read lock.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        "TEST": {
            "NAME": os.path.join(tempfile.gettempdir(), f"conveyor-test-{os.getpid()}.sqlite3")
        },
    }
}
