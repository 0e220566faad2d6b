"""Conveyor's settings: the ``CONVEYOR`` dict in Django settings, read through ``get_settings()``.

Every key is optional:

=================== ======================= ===============================================
key                 default                 meaning
=================== ======================= ===============================================
REQUIRE_ATOMIC      ``True``                publish() raises OutsideTransactionError unless
                                            called inside ``transaction.atomic()``.
SOURCE              ``"django:<project>"``  CloudEvents ``source`` of every event; <project>
                                            is the top-level package of the settings module
                                            (``shop.settings`` -> ``django:shop``), else of
                                            ROOT_URLCONF, else ``django:app``.
CORRELATION_ID      ``None``                Dotted path to a zero-argument callable returning
                                            ``str | None``; its value becomes the
                                            ``correlation-id`` header.
MAX_PAYLOAD_BYTES   ``1048576`` (1 MiB)     Largest ``data`` accepted, as UTF-8 JSON bytes.
DATABASE_ALIAS      ``"default"``           Database that holds the outbox table when
                                            publish() gets no ``using=``.
RELAY_BINARY        ``"conveyor"``          The relay executable that ``conveyor_relay`` runs:
                                            a path, or a name looked up on PATH.
REQUEST_ID_HEADER   ``"X-Request-ID"``      The request header CorrelationIdMiddleware reads
                                            the correlation id from (and echoes back).
=================== ======================= ===============================================

Validation lives here too, so the system checks (conveyor.checks) and the runtime report the
same problems with the same ids.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
DEFAULT_DATABASE_ALIAS = "default"
DEFAULT_RELAY_BINARY = "conveyor"
DEFAULT_REQUEST_ID_HEADER = "X-Request-ID"
MAX_SOURCE_LENGTH = 255  # Event.source max_length


@dataclass(frozen=True, slots=True)
class ConveyorSettings:
    """The resolved ``CONVEYOR`` settings, defaults filled in."""

    require_atomic: bool = True
    source: str = "django:app"
    correlation_id: str | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    database_alias: str = DEFAULT_DATABASE_ALIAS
    relay_binary: str = DEFAULT_RELAY_BINARY
    request_id_header: str = DEFAULT_REQUEST_ID_HEADER


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration mistake, with the stable id the system check reports it under."""

    id: str
    msg: str
    hint: str | None = None
    key: str | None = None  # the CONVEYOR key at fault, if any


def _is_bool(v: object) -> bool:
    return isinstance(v, bool)


def _is_positive_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _is_nonempty_str(v: object) -> bool:
    return isinstance(v, str) and v.strip() != ""


def _is_optional_str(v: object) -> bool:
    return v is None or _is_nonempty_str(v)


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # an HTTP token (RFC 9110)


def _is_header_name(v: object) -> bool:
    return isinstance(v, str) and bool(_HEADER_NAME.match(v))


# key -> (validator, what is expected, for the message)
_KEYS: dict[str, tuple[Callable[[object], bool], str]] = {
    "REQUIRE_ATOMIC": (_is_bool, "a bool"),
    "SOURCE": (_is_optional_str, "a non-empty str or None"),
    "CORRELATION_ID": (_is_optional_str, "a dotted path (str) to a callable, or None"),
    "MAX_PAYLOAD_BYTES": (_is_positive_int, "a positive int"),
    "DATABASE_ALIAS": (_is_nonempty_str, "a database alias (str)"),
    "RELAY_BINARY": (_is_nonempty_str, "a non-empty str"),
    "REQUEST_ID_HEADER": (_is_header_name, 'an HTTP header name like "X-Request-ID"'),
}
KNOWN_KEYS = frozenset(_KEYS)


def raw_settings() -> object:
    return getattr(django_settings, "CONVEYOR", {})


def find_problems(raw: object) -> list[Problem]:
    """Return every mistake in a ``CONVEYOR`` value (E001 shape, E002 types)."""
    if not isinstance(raw, Mapping):
        return [
            Problem(
                "conveyor.E001",
                f"The CONVEYOR setting must be a dict, not {type(raw).__name__}.",
                'Use CONVEYOR = {"REQUIRE_ATOMIC": True, ...} or remove the setting.',
            )
        ]
    problems: list[Problem] = []
    for key in raw:
        if key not in _KEYS:
            close = difflib.get_close_matches(str(key), sorted(_KEYS), n=1)
            hint = (
                f"Did you mean {close[0]!r}?"
                if close
                else f"Known keys: {', '.join(sorted(_KEYS))}."
            )
            problems.append(
                Problem("conveyor.E001", f"Unknown CONVEYOR key {key!r}.", hint, key=str(key))
            )
    for key, (valid, expected) in _KEYS.items():
        if key in raw and not valid(raw[key]):
            problems.append(
                Problem(
                    "conveyor.E002",
                    f'CONVEYOR["{key}"] must be {expected}, not {raw[key]!r}.',
                    key=key,
                )
            )
    source = raw.get("SOURCE")
    if isinstance(source, str) and len(source) > MAX_SOURCE_LENGTH:
        problems.append(
            Problem(
                "conveyor.E002",
                f'CONVEYOR["SOURCE"] is {len(source)} characters; the limit is '
                f"{MAX_SOURCE_LENGTH}.",
                key="SOURCE",
            )
        )
    return problems


def default_source() -> str:
    """``django:<project>``: the settings module's top-level package, else ROOT_URLCONF's."""
    for dotted in (
        getattr(django_settings, "SETTINGS_MODULE", None),
        getattr(django_settings, "ROOT_URLCONF", None),
    ):
        if isinstance(dotted, str) and dotted:
            return f"django:{dotted.split('.')[0]}"
    return "django:app"


@functools.cache
def get_settings() -> ConveyorSettings:
    """Return the resolved settings. Raises ImproperlyConfigured on the first problem."""
    raw = raw_settings()
    problems = find_problems(raw)
    if problems:
        first = problems[0]
        hint = f" {first.hint}" if first.hint else ""
        raise ImproperlyConfigured(f"{first.msg}{hint} ({first.id})")
    assert isinstance(raw, Mapping)
    defaults = ConveyorSettings()
    return ConveyorSettings(
        require_atomic=raw.get("REQUIRE_ATOMIC", defaults.require_atomic),
        source=raw.get("SOURCE") or default_source(),
        correlation_id=raw.get("CORRELATION_ID"),
        max_payload_bytes=raw.get("MAX_PAYLOAD_BYTES", defaults.max_payload_bytes),
        database_alias=raw.get("DATABASE_ALIAS", defaults.database_alias),
        relay_binary=raw.get("RELAY_BINARY", defaults.relay_binary),
        request_id_header=raw.get("REQUEST_ID_HEADER", defaults.request_id_header),
    )


def load_correlation_id_provider(path: str) -> Callable[[], str | None]:
    """Import ``CORRELATION_ID``. Raises ImportError or TypeError with a readable message."""
    obj: Any = import_string(path)
    if not callable(obj):
        raise TypeError(f'CONVEYOR["CORRELATION_ID"] = {path!r} is not callable.')
    provider: Callable[[], str | None] = obj
    return provider


@functools.cache
def correlation_id_provider() -> Callable[[], str | None] | None:
    path = get_settings().correlation_id
    return load_correlation_id_provider(path) if path else None


@receiver(setting_changed)
def _reset_cache(*, setting: str, **kwargs: Any) -> None:
    if setting in {"CONVEYOR", "SETTINGS_MODULE", "ROOT_URLCONF"}:
        get_settings.cache_clear()
        correlation_id_provider.cache_clear()


__all__ = [
    "KNOWN_KEYS",
    "ConveyorSettings",
    "Problem",
    "correlation_id_provider",
    "default_source",
    "find_problems",
    "get_settings",
]
