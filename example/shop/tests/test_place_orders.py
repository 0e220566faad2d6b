from __future__ import annotations

import json
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from conveyor import Event
from shop.models import Order


@pytest.mark.django_db(transaction=True)
def test_place_orders_writes_what_committed(tmp_path: Path) -> None:
    out = tmp_path / "orders.json"
    stdout = StringIO()
    call_command("place_orders", "--count", "6", "--out", str(out), stdout=stdout)

    result = json.loads(out.read_text())
    committed, rolled_back = result["committed"], result["rolled_back"]
    assert len(committed) == 6
    assert len(rolled_back) == 1
    assert Order.objects.count() == 6

    stored = {str(pk) for pk in Event.objects.values_list("pk", flat=True)}
    assert stored == {c["event_id"] for c in committed}
    assert rolled_back[0]["event_id"] not in stored
    for item in committed:
        assert set(item) == {"order_id", "event_id", "event_type", "key", "committed_at"}
        assert str(uuid.UUID(item["event_id"])) == item["event_id"]  # canonical, with dashes
        assert item["event_type"] == "order.placed"
        assert item["key"].startswith("customer-")
        assert isinstance(item["committed_at"], float)
    times = [c["committed_at"] for c in committed]
    assert times == sorted(times)
    assert "rolled back 1" in stdout.getvalue()


@pytest.mark.django_db(transaction=True)
def test_place_orders_zero_still_rolls_one_back(tmp_path: Path) -> None:
    out = tmp_path / "orders.json"
    call_command("place_orders", "--count", "0", "--out", str(out), stdout=StringIO())
    result = json.loads(out.read_text())
    assert result["committed"] == []
    assert len(result["rolled_back"]) == 1
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_negative_count(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--count"):
        call_command("place_orders", "--count", "-1", "--out", str(tmp_path / "x.json"))
