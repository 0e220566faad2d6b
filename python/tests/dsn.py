"""Turn the service DSNs printed by `scripts/services.sh env` into Django DATABASES entries."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured


def database_from_env(var: str, engine: str) -> dict[str, Any]:
    """Read a URL DSN from ``var``; a missing variable is an error, never a silent skip.

    The tests create (and drop) their own database, ``conveyor_pytest``, on that server, so
    the DSN's own database is never touched; the user needs CREATE DATABASE rights.
    """
    dsn = os.environ.get(var)
    if not dsn:
        raise ImproperlyConfigured(
            f"{var} is not set, so this backend's tests cannot run. Start the services and "
            'export their addresses with: eval "$(scripts/services.sh env)" (from the '
            "repository root), or run python/run_tests.sh, which does that for you."
        )
    url = urlsplit(dsn)
    query = dict(parse_qsl(url.query))
    db: dict[str, Any] = {
        "ENGINE": engine,
        "NAME": unquote(url.path.lstrip("/")),
        "USER": unquote(url.username or ""),
        "PASSWORD": unquote(url.password or ""),
        "HOST": url.hostname or "",
        "PORT": str(url.port or ""),
        "OPTIONS": {},
        "TEST": {},
    }
    if engine.endswith("postgresql"):
        db["OPTIONS"].update(query)  # e.g. sslmode=disable
        db["TEST"]["NAME"] = "conveyor_pytest"
    elif engine.endswith("mysql"):
        db["OPTIONS"]["charset"] = "utf8mb4"
        db["TEST"].update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
        db["TEST"]["NAME"] = "conveyor_pytest"
    return db
