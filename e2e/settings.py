"""Django settings for the end-to-end tests: real PostgreSQL, the real conveyor app."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_dsn = os.environ.get("CONVEYOR_TEST_PG_DSN")
if not _dsn:
    raise ImproperlyConfigured(
        'CONVEYOR_TEST_PG_DSN is not set: run `make test`, or `eval "$(scripts/services.sh env)"`'
    )
_url = urlsplit(_dsn)

SECRET_KEY = "e2e-not-secret"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "conveyor"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": unquote(_url.username or ""),
        "PASSWORD": unquote(_url.password or ""),
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
        "TEST": {"NAME": "conveyor_e2e"},
    }
}
CONVEYOR = {"SOURCE": "e2e"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
