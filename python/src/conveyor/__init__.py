"""django-conveyor: a transactional outbox for Django.

``conveyor.publish()`` records an event in your own database transaction; the Conveyor relay
delivers committed events to your broker. See README.md.

The names that need Django's app registry (publish, Event, ...) are imported on first use, so
``import conveyor`` works while Django is still loading INSTALLED_APPS.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor.exceptions import ConveyorError, OutsideTransactionError

if TYPE_CHECKING:
    from conveyor.models import Event, Status
    from conveyor.publishing import publish, publish_many
    from conveyor.spec import EventSpec

__version__ = "0.1.0"

_LAZY = {
    "publish": "conveyor.publishing",
    "publish_many": "conveyor.publishing",
    "EventSpec": "conveyor.spec",
    "Event": "conveyor.models",
    "Status": "conveyor.models",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ConveyorError",
    "Event",
    "EventSpec",
    "OutsideTransactionError",
    "Status",
    "publish",
    "publish_many",
]
