"""Serialize event payloads before anything is written, and name the exact bad value.

``json.dumps`` only says "Object of type set is not JSON serializable". In a payload of a few
hundred keys that is not enough, so on failure we walk the value and report its path:
``data['items'][2] is a set, which is not JSON-serializable; convert it to a list``.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Model

_SCALARS = (str, int, float, bool, type(None))


def encode_json(value: Any, *, where: str) -> str:
    """Return ``value`` as compact JSON text, or raise TypeError/ValueError naming the path.

    ``where`` prefixes the path in messages, e.g. ``"conveyor.publish: data"``.
    """
    try:
        return json.dumps(
            value, cls=DjangoJSONEncoder, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        )
    except (TypeError, ValueError) as exc:
        found = _find_bad_value(value, where, set())
        if found is None:  # pragma: no cover - json failed in a way the walk cannot see
            raise type(exc)(f"{where}: {exc}") from exc
        raise found from None


def _find_bad_value(value: Any, path: str, seen: set[int]) -> Exception | None:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ValueError(
                f"{path} is the float {value!r}, which JSON cannot represent; use None or a string"
            )
        return None
    if isinstance(value, _SCALARS):
        return None
    if isinstance(value, dict | list | tuple):
        if id(value) in seen:
            return ValueError(f"{path} refers back to one of its own containers (a cycle)")
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                for k, v in value.items():
                    if not isinstance(k, _SCALARS):
                        return TypeError(
                            f"{path} has a key {k!r} of type {type(k).__name__}; "
                            "JSON object keys must be str"
                        )
                    err = _find_bad_value(v, f"{path}[{k!r}]", seen)
                    if err is not None:
                        return err
            else:
                for i, v in enumerate(value):
                    err = _find_bad_value(v, f"{path}[{i}]", seen)
                    if err is not None:
                        return err
        finally:
            seen.discard(id(value))
        return None
    try:
        converted = DjangoJSONEncoder().default(value)
    except ValueError as exc:  # e.g. an aware datetime.time
        return ValueError(f"{path}: {exc}")
    except TypeError:
        return TypeError(
            f"{path} is {_article(type(value).__name__)}, which is not JSON-serializable; "
            f"{_hint(value)}"
        )
    return _find_bad_value(converted, path, seen)


def _article(name: str) -> str:
    # "a User", "a UUID", "an int": a leading u is usually sounded "you".
    return f"an {name}" if name[:1].lower() in "aeio" else f"a {name}"


def _hint(value: object) -> str:
    if isinstance(value, set | frozenset):
        return "convert it to a list"
    if isinstance(value, bytes | bytearray | memoryview):
        return "decode it to str, or base64-encode it"
    if isinstance(value, enum.Enum):
        return "publish its .value"
    if isinstance(value, Model):
        return "publish its primary key or a dict of the fields consumers need"
    return (
        "convert it to a dict, list, str, int, float, bool or None "
        "(datetime, date, time, timedelta, Decimal and UUID are converted for you)"
    )


def json_size(text: str) -> int:
    return len(text.encode("utf-8"))


__all__ = ["encode_json", "json_size"]
