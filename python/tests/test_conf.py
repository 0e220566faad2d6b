from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from conveyor.conf import DEFAULT_MAX_PAYLOAD_BYTES, default_source, get_settings


def test_defaults() -> None:
    conf = get_settings()
    assert conf.require_atomic is True
    assert conf.source == "django:tests"
    assert conf.correlation_id is None
    assert conf.max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES == 1024 * 1024
    assert conf.database_alias == "default"
    assert conf.relay_binary == "conveyor"


def test_overrides_are_picked_up_and_reset() -> None:
    with override_settings(CONVEYOR={"MAX_PAYLOAD_BYTES": 10, "SOURCE": "urn:x"}):
        assert get_settings().max_payload_bytes == 10
        assert get_settings().source == "urn:x"
    assert get_settings().max_payload_bytes == DEFAULT_MAX_PAYLOAD_BYTES


def test_default_source_falls_back_to_root_urlconf() -> None:
    with override_settings(SETTINGS_MODULE=None, ROOT_URLCONF="shop.urls"):
        assert default_source() == "django:shop"
    with override_settings(SETTINGS_MODULE=None, ROOT_URLCONF=None):
        assert default_source() == "django:app"


@override_settings(CONVEYOR={"NOPE": 1})
def test_errors_name_the_check_id() -> None:
    with pytest.raises(
        ImproperlyConfigured, match=r"Unknown CONVEYOR key 'NOPE'.*\(conveyor.E001\)"
    ):
        get_settings()
