from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import conveyor


def test_public_names() -> None:
    from conveyor import (
        ConveyorError,
        Event,
        EventSpec,
        OutsideTransactionError,
        Status,
        publish,
        publish_many,
    )

    assert inspect.isfunction(publish)
    assert inspect.isfunction(publish_many)
    assert issubclass(OutsideTransactionError, ConveyorError)
    assert Event._meta.db_table == "conveyor_event"
    assert [s.value for s in Status] == [0, 1, 2]
    assert EventSpec("a", {}).key is None
    assert set(conveyor.__all__) <= set(dir(conveyor))


def test_importable_before_django_is_set_up() -> None:
    """INSTALLED_APPS imports `conveyor` before the app registry is ready."""
    src = Path(conveyor.__file__).resolve().parent.parent
    code = "import conveyor; from conveyor import ConveyorError; print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src)},
        check=False,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_publish_signature() -> None:
    params = inspect.signature(conveyor.publish).parameters
    assert list(params) == [
        "event_type",
        "data",
        "key",
        "subject",
        "headers",
        "idempotency_key",
        "deliver_at",
        "using",
        "source",
    ]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(params.values())[2:])
