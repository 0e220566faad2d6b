"""Tests on MySQL/MariaDB; needs CONVEYOR_TEST_MYSQL_DSN (see `scripts/services.sh env`)."""

from __future__ import annotations

from tests.dsn import database_from_env
from tests.settings_base import *  # noqa: F403

DATABASES = {"default": database_from_env("CONVEYOR_TEST_MYSQL_DSN", "django.db.backends.mysql")}
