"""``conveyor.operate_event``: who may retry, discard and replay events from the admin.

The permission is created after ``migrate`` (a post_migrate handler, as Django creates the
default add/change/delete/view ones) rather than declared in ``Event.Meta.permissions``: that
would need a migration, and the relay refuses to start against a schema with a migration it
does not know. Grant it in the admin (Users or Groups → "conveyor | event | Can retry,
discard and replay events"); superusers have it implicitly.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db import DEFAULT_DB_ALIAS, router

APP_LABEL = "conveyor"
CODENAME = "operate_event"
OPERATE_EVENT = f"{APP_LABEL}.{CODENAME}"
NAME = "Can retry, discard and replay events"


def can_operate(user: Any) -> bool:
    """True when ``user`` may change event states (superusers always may)."""
    return bool(user.is_active and user.has_perm(OPERATE_EVENT))


def create_operate_permission(
    app_config: AppConfig,
    using: str = DEFAULT_DB_ALIAS,
    apps: Apps = global_apps,
    **kwargs: Any,
) -> None:
    """post_migrate handler: make sure the permission row exists."""
    try:
        permission_model = apps.get_model("auth", "Permission")
        content_type_model = apps.get_model("contenttypes", "ContentType")
    except LookupError:  # django.contrib.auth or contenttypes not installed
        return
    if not router.allow_migrate_model(using, permission_model):
        return
    content_type, _ = content_type_model._default_manager.db_manager(using).get_or_create(
        app_label=APP_LABEL, model="event"
    )
    permission_model._default_manager.db_manager(using).get_or_create(
        content_type=content_type, codename=CODENAME, defaults={"name": NAME}
    )


__all__ = ["NAME", "OPERATE_EVENT", "can_operate", "create_operate_permission"]
