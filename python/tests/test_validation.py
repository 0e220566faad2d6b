"""Bad arguments fail before anything is written, with messages that point at the culprit."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from conveyor import Event, publish, publish_many


@pytest.fixture(autouse=True)
def _nothing_written(db: None) -> Iterator[None]:
    yield
    assert Event.objects.count() == 0


def test_set_is_reported_with_its_path() -> None:
    with pytest.raises(TypeError) as info:
        publish("a", {"items": [1, 2, {3}]})
    assert str(info.value) == (
        "conveyor.publish: data['items'][2] is a set, which is not JSON-serializable; "
        "convert it to a list"
    )


def test_deeply_nested_path() -> None:
    with pytest.raises(TypeError, match=r"data\['a'\]\[0\]\['b'\] is a bytes, .*decode it"):
        publish("a", {"a": [{"b": b"raw"}]})


def test_model_instance_hint(django_user_model: Any) -> None:
    user = django_user_model(username="x")
    with pytest.raises(TypeError, match=r"data\['user'\] is a User, .*primary key"):
        publish("a", {"user": user})


def test_enum_hint() -> None:
    class Color(enum.Enum):
        RED = "red"

    with pytest.raises(TypeError, match=r"data\['c'\] is a Color, .*publish its \.value"):
        publish("a", {"c": Color.RED})


def test_top_level_value() -> None:
    with pytest.raises(TypeError, match=r"^conveyor.publish: data is an object, "):
        publish("a", object())


def test_non_string_key() -> None:
    with pytest.raises(TypeError, match=r"data\['x'\] has a key \(1, 2\) of type tuple"):
        publish("a", {"x": {(1, 2): "v"}})


def test_nan_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"data\['ratio'\] is the float nan"):
        publish("a", {"ratio": float("nan")})


def test_cycle_is_rejected() -> None:
    data: dict[str, Any] = {"a": []}
    data["a"].append(data)
    with pytest.raises(ValueError, match=r"data\['a'\]\[0\] refers back"):
        publish("a", data)


def test_none_data_is_rejected() -> None:
    with pytest.raises(TypeError, match=r"data is None; pass \{\}"):
        publish("a", None)


@override_settings(CONVEYOR={"MAX_PAYLOAD_BYTES": 100})
def test_oversized_payload_names_size_and_limit() -> None:
    with pytest.raises(ValueError, match="bytes as JSON") as info:
        publish("a", {"s": "é" * 60})  # 128 bytes as UTF-8 JSON
    assert "data is 128 bytes as JSON; the limit is 100 bytes" in str(info.value)
    assert 'CONVEYOR["MAX_PAYLOAD_BYTES"]' in str(info.value)


def test_default_payload_limit_is_one_mebibyte() -> None:
    with pytest.raises(ValueError, match=r"the limit is 1048576 bytes"):
        publish("a", "x" * (1024 * 1024))


@pytest.mark.parametrize("event_type", ["", "   "])
def test_empty_event_type(event_type: str) -> None:
    with pytest.raises(ValueError, match=r"conveyor\.publish: event_type must not be empty"):
        publish(event_type, {})


def test_long_event_type() -> None:
    with pytest.raises(ValueError, match="event_type is 256 characters long; the limit is 255"):
        publish("x" * 256, {})


def test_event_type_must_be_str() -> None:
    with pytest.raises(TypeError, match="event_type must be a str, not int"):
        publish(5, {})  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["key", "subject", "idempotency_key", "source"])
def test_optional_strings(field: str) -> None:
    empty: dict[str, Any] = {field: ""}
    with pytest.raises(
        ValueError, match=f"{field} must not be empty \\(use None for no {field}\\)"
    ):
        publish("a", {}, **empty)
    long: dict[str, Any] = {field: "k" * 256}
    with pytest.raises(ValueError, match=f"{field} is 256 characters long"):
        publish("a", {}, **long)
    wrong: dict[str, Any] = {field: 1}
    with pytest.raises(TypeError, match=f"{field} must be a str or None, not int"):
        publish("a", {}, **wrong)


def test_naive_deliver_at() -> None:
    with pytest.raises(ValueError, match="deliver_at 2030-01-01T00:00:00 is a naive datetime"):
        publish("a", {}, deliver_at=dt.datetime(2030, 1, 1))


def test_deliver_at_must_be_datetime() -> None:
    with pytest.raises(TypeError, match="deliver_at must be an aware datetime, not date"):
        publish("a", {}, deliver_at=dt.date(2030, 1, 1))  # type: ignore[arg-type]


def test_header_value_must_be_str() -> None:
    with pytest.raises(TypeError) as info:
        publish("a", {}, headers={"x-count": 3})  # type: ignore[dict-item]
    assert str(info.value) == (
        "conveyor.publish: headers['x-count'] is int 3; header values must be str "
        "(convert it with str())"
    )


def test_header_name_must_be_a_token() -> None:
    with pytest.raises(ValueError, match="header name 'bad name' is not a valid header name"):
        publish("a", {}, headers={"bad name": "v"})


@pytest.mark.parametrize("name", ["ce-type", "CE-ID", "Nats-Msg-Id"])
def test_reserved_header_names(name: str) -> None:
    with pytest.raises(ValueError, match=f"header name '{name}' is reserved"):
        publish("a", {}, headers={name: "x"})


def test_header_value_without_line_breaks() -> None:
    with pytest.raises(ValueError, match="contains a line break"):
        publish("a", {}, headers={"x": "a\r\nInjected: 1"})


def test_headers_must_be_a_mapping() -> None:
    with pytest.raises(TypeError, match="headers must be a dict of str to str, not list"):
        publish("a", {}, headers=[("a", "b")])  # type: ignore[arg-type]


def test_publish_many_names_the_item() -> None:
    with pytest.raises(TypeError, match=r"publish_many: events\[1\]: data\['s'\] is a set"):
        publish_many([{"event_type": "a", "data": {}}, {"event_type": "b", "data": {"s": set()}}])


def test_publish_many_unknown_field() -> None:
    with pytest.raises(TypeError, match=r"events\[0\]: .*unexpected keyword argument 'kind'"):
        publish_many([{"event_type": "a", "data": {}, "kind": 1}])


def test_publish_many_wrong_item_type() -> None:
    with pytest.raises(TypeError, match=r"events\[0\] must be an EventSpec or a dict"):
        publish_many(["a"])  # type: ignore[list-item]
