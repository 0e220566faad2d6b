"""Tests on PostgreSQL; needs CONVEYOR_TEST_PG_DSN (see `scripts/services.sh env`)."""

from __future__ import annotations

from tests.dsn import database_from_env
from tests.settings_base import *  # noqa: F403

DATABASES = {"default": database_from_env("CONVEYOR_TEST_PG_DSN", "django.db.backends.postgresql")}
