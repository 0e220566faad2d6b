"""Settings for the example shop.

The database is the SQLite file example/db.sqlite3 unless DATABASE_URL says otherwise:
``postgres://user:pass@host:5432/shop``, ``mysql://user:pass@host:3306/shop`` or
``sqlite:////absolute/path.sqlite3``. The Conveyor relay, started in example/ with no
config, reads the same ./db.sqlite3.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "conveyor",
    "shop",
]
MIDDLEWARE = [
    # First, so everything after it (and every event published) sees the request's id.
    "conveyor.middleware.CorrelationIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "shop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "static/"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def database_from_url(url: str | None) -> dict[str, Any]:
    if not url:
        return _sqlite(BASE_DIR / "db.sqlite3")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return _sqlite(Path(unquote(parts.path)))
    engines = {
        "postgres": "django.db.backends.postgresql",
        "postgresql": "django.db.backends.postgresql",
        "mysql": "django.db.backends.mysql",
        "mariadb": "django.db.backends.mysql",
    }
    if scheme not in engines:
        raise ValueError(f"DATABASE_URL: unsupported scheme {scheme!r}")
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    if engines[scheme].endswith("mysql"):
        options.setdefault("charset", "utf8mb4")
    return {
        "ENGINE": engines[scheme],
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


def _sqlite(path: Path) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        # The relay writes to the same file: wait for its lock instead of failing, and take
        # the write lock at BEGIN so a transaction never has to upgrade a read lock.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }


DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL"))}

CONVEYOR = {
    "SOURCE": "shop",  # CloudEvents source of every event this project publishes
    # The X-Request-ID of the request that published an event becomes its correlation-id.
    "CORRELATION_ID": "conveyor.middleware.current_correlation_id",
    # `python manage.py conveyor_relay` runs this binary with DATABASES["default"].
    "RELAY_BINARY": os.environ.get(
        "CONVEYOR_RELAY_BINARY", str(BASE_DIR.parent / "bin" / "conveyor")
    ),
}
