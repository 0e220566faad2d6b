from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.test import override_settings

from conveyor.checks import check_environment, check_settings


def _ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages if m.id is not None]


def _run() -> list[checks.CheckMessage]:
    return [*check_settings(None), *check_environment(None)]


def test_defaults_are_clean() -> None:
    assert _run() == []


def test_registered_under_the_conveyor_tag() -> None:
    assert "conveyor" in checks.registry.registry.tags_available()
    call_command("check", "--tag", "conveyor")


def test_only_for_conveyor_app() -> None:
    from django.apps import apps

    with override_settings(CONVEYOR=[]):
        assert check_settings([apps.get_app_config("auth")]) == []
        assert _ids(check_settings([apps.get_app_config("conveyor")])) == ["conveyor.E001"]


@override_settings(CONVEYOR=["REQUIRE_ATOMIC"])
def test_e001_not_a_dict() -> None:
    (message,) = check_settings(None)
    assert message.id == "conveyor.E001"
    assert message.msg == "The CONVEYOR setting must be a dict, not list."
    assert isinstance(message, checks.Error)


@override_settings(CONVEYOR={"REQUIRE_ATOMICS": True, "BANANA": 1})
def test_e001_unknown_keys_with_did_you_mean() -> None:
    first, second = check_settings(None)
    assert (first.id, first.msg, first.hint) == (
        "conveyor.E001",
        "Unknown CONVEYOR key 'REQUIRE_ATOMICS'.",
        "Did you mean 'REQUIRE_ATOMIC'?",
    )
    assert second.id == "conveyor.E001"
    assert second.hint is not None and second.hint.startswith("Known keys: CORRELATION_ID, ")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("REQUIRE_ATOMIC", "yes"),
        ("REQUIRE_ATOMIC", 1),
        ("SOURCE", ""),
        ("SOURCE", 5),
        ("SOURCE", "s" * 256),
        ("CORRELATION_ID", 3),
        ("MAX_PAYLOAD_BYTES", 0),
        ("MAX_PAYLOAD_BYTES", True),
        ("MAX_PAYLOAD_BYTES", "1MB"),
        ("DATABASE_ALIAS", None),
        ("RELAY_BINARY", ""),
        ("REQUEST_ID_HEADER", "X Request Id"),
        ("REQUEST_ID_HEADER", ""),
    ],
)
def test_e002_bad_values(key: str, value: Any) -> None:
    with override_settings(CONVEYOR={key: value}):
        messages = check_settings(None)
    assert _ids(messages) == ["conveyor.E002"]
    assert f'CONVEYOR["{key}"]' in messages[0].msg


@override_settings(CONVEYOR={"SOURCE": None, "CORRELATION_ID": None})
def test_none_means_default() -> None:
    assert _run() == []


@override_settings(CONVEYOR={"CORRELATION_ID": "tests.helpers.missing_function"})
def test_e003_correlation_id_not_importable() -> None:
    (message,) = check_settings(None)
    assert message.id == "conveyor.E003"
    assert "'tests.helpers.missing_function' cannot be used" in message.msg


@override_settings(CONVEYOR={"CORRELATION_ID": "tests.helpers.not_callable"})
def test_e003_correlation_id_not_callable() -> None:
    (message,) = check_settings(None)
    assert message.id == "conveyor.E003"
    assert "is not callable" in message.msg


@override_settings(CONVEYOR={"CORRELATION_ID": "tests.helpers.correlation_id"})
def test_e003_clean_when_importable() -> None:
    assert _run() == []


@override_settings(CONVEYOR={"DATABASE_ALIAS": "outbox"})
def test_e004_unknown_database_alias() -> None:
    (message,) = check_settings(None)
    assert message.id == "conveyor.E004"
    assert message.hint == "Use one of: default."


@override_settings(USE_TZ=False)
def test_w001_use_tz_false() -> None:
    (message,) = check_environment(None)
    assert message.id == "conveyor.W001"
    assert isinstance(message, checks.Warning)


def test_w002_unsupported_vendor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "conveyor.checks.connections", {"default": SimpleNamespace(vendor="cockroach")}
    )
    (message,) = check_environment(None)
    assert message.id == "conveyor.W002"
    assert message.msg.startswith("Database 'default' is cockroach;")
    assert isinstance(message, checks.Warning)


@pytest.mark.parametrize("vendor", ["postgresql", "mysql", "sqlite"])
def test_w002_supported_vendors(monkeypatch: pytest.MonkeyPatch, vendor: str) -> None:
    monkeypatch.setattr("conveyor.checks.connections", {"default": SimpleNamespace(vendor=vendor)})
    assert check_environment(None) == []


def test_w003_correlation_accessor_without_middleware() -> None:
    accessor = {"CORRELATION_ID": "conveyor.middleware.current_correlation_id"}
    with override_settings(CONVEYOR=accessor):
        assert _ids(check_settings(None)) == ["conveyor.W003"]
    with override_settings(
        CONVEYOR=accessor, MIDDLEWARE=["conveyor.middleware.CorrelationIdMiddleware"]
    ):
        assert check_settings(None) == []
