"""System checks. Their ids are stable; README.md lists them.

conveyor.E001  CONVEYOR is not a dict, or has an unknown key (with a did-you-mean hint).
conveyor.E002  A CONVEYOR value has the wrong type or is out of range.
conveyor.E003  CONVEYOR["CORRELATION_ID"] cannot be imported or is not callable.
conveyor.E004  CONVEYOR["DATABASE_ALIAS"] is not in DATABASES.
conveyor.W001  USE_TZ = False: the relay compares available_at with the database's UTC clock.
conveyor.W002  The outbox database's vendor is not one the relay supports.
conveyor.W003  CORRELATION_ID reads CorrelationIdMiddleware's id, but the middleware is not in
               MIDDLEWARE, so no event gets a correlation-id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import connections

from conveyor import conf

SUPPORTED_VENDORS = ("postgresql", "mysql", "sqlite")
MIDDLEWARE_PATH = "conveyor.middleware.CorrelationIdMiddleware"
MIDDLEWARE_ACCESSOR = "conveyor.middleware.current_correlation_id"


def _ours(app_configs: Sequence[AppConfig] | None) -> bool:
    return app_configs is None or any(a.label == "conveyor" for a in app_configs)


@register("conveyor")
def check_settings(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[CheckMessage]:
    if not _ours(app_configs):
        return []
    raw = conf.raw_settings()
    problems = conf.find_problems(raw)
    messages: list[CheckMessage] = [Error(p.msg, hint=p.hint, id=p.id) for p in problems]
    if not isinstance(raw, Mapping):
        return messages
    bad = {p.key for p in problems}
    path = raw.get("CORRELATION_ID")
    if isinstance(path, str) and path and "CORRELATION_ID" not in bad:
        try:
            conf.load_correlation_id_provider(path)
        except (ImportError, TypeError) as exc:
            messages.append(
                Error(
                    f'CONVEYOR["CORRELATION_ID"] = {path!r} cannot be used: {exc}',
                    hint="Point it at a zero-argument function returning str or None, "
                    'e.g. "myproject.logging.current_request_id".',
                    id="conveyor.E003",
                )
            )
    if path == MIDDLEWARE_ACCESSOR and MIDDLEWARE_PATH not in getattr(settings, "MIDDLEWARE", []):
        messages.append(
            Warning(
                f'CONVEYOR["CORRELATION_ID"] is {MIDDLEWARE_ACCESSOR!r}, but '
                f"{MIDDLEWARE_PATH} is not in MIDDLEWARE, so it never has an id to give.",
                hint=f"Add {MIDDLEWARE_PATH!r} near the top of MIDDLEWARE.",
                id="conveyor.W003",
            )
        )
    alias = raw.get("DATABASE_ALIAS", conf.DEFAULT_DATABASE_ALIAS)
    if isinstance(alias, str) and alias and alias not in settings.DATABASES:
        messages.append(
            Error(
                f'CONVEYOR["DATABASE_ALIAS"] = {alias!r} is not a key of DATABASES.',
                hint=f"Use one of: {', '.join(sorted(settings.DATABASES))}.",
                id="conveyor.E004",
            )
        )
    return messages


@register("conveyor")
def check_environment(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[CheckMessage]:
    if not _ours(app_configs):
        return []
    messages: list[CheckMessage] = []
    if not settings.USE_TZ:
        messages.append(
            Warning(
                "USE_TZ is False, so Django writes naive local times into conveyor_event.",
                hint="The relay compares available_at with the database's UTC clock; set "
                "USE_TZ = True (Django's default) so deliver_at is honoured exactly.",
                id="conveyor.W001",
            )
        )
    raw = conf.raw_settings()
    alias = (
        raw.get("DATABASE_ALIAS", conf.DEFAULT_DATABASE_ALIAS)
        if isinstance(raw, Mapping)
        else conf.DEFAULT_DATABASE_ALIAS
    )
    if isinstance(alias, str) and alias in settings.DATABASES:
        vendor = connections[alias].vendor  # a class attribute: no connection is opened
        if vendor not in SUPPORTED_VENDORS:
            messages.append(
                Warning(
                    f"Database {alias!r} is {vendor}; the Conveyor relay supports "
                    "PostgreSQL, MySQL/MariaDB and SQLite.",
                    hint="Keep the outbox in a supported database: set "
                    'CONVEYOR["DATABASE_ALIAS"] to one, and publish(using=...) there.',
                    id="conveyor.W002",
                )
            )
    return messages


__all__ = ["SUPPORTED_VENDORS", "check_environment", "check_settings"]
