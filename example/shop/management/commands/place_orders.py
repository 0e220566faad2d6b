"""`manage.py place_orders --count N --out FILE`: the demo's writer.

Places N orders, each in its own transaction.atomic() with its `order.placed` event, and one
more whose transaction raises after publish() and rolls back. Writes what happened as JSON:

    {"committed": [{"order_id", "event_id", "event_type", "key", "committed_at"}, ...],
     "rolled_back": [{"order_id", "event_id", "event_type", "key"}]}

``committed_at`` is a Unix time taken in transaction.on_commit, i.e. right after COMMIT.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from shop.services import PlacedOrder, place_order

CUSTOMERS = ("ada", "grace", "linus", "barbara", "ken")


class _RollBack(Exception):
    """Raised on purpose after publish() to abandon the transaction."""


def _describe(placed: PlacedOrder) -> dict[str, Any]:
    return {
        "order_id": placed.order.pk,
        "event_id": str(placed.event.pk),
        "event_type": placed.event.event_type,
        "key": placed.event.key,
    }


class Command(BaseCommand):
    help = "Place N orders (one transaction each) and one that rolls back; write them as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=10, help="orders to commit")
        parser.add_argument("--out", type=Path, required=True, help="JSON file to write")

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["count"]
        if count < 0:
            raise CommandError("--count must be 0 or more")
        committed: list[dict[str, Any]] = []
        rolled_back: list[dict[str, Any]] = []

        def record(placed: PlacedOrder) -> None:
            committed.append({**_describe(placed), "committed_at": time.time()})

        for i in range(count):
            if i == count // 2:  # roll one back in the middle of the run
                rolled_back.append(self._place_and_roll_back(i))
            customer = CUSTOMERS[i % len(CUSTOMERS)]
            place_order(customer, Decimal(i % 90 + 10) + Decimal("0.99"), on_commit=record)
        if count == 0:
            rolled_back.append(self._place_and_roll_back(0))

        options["out"].write_text(
            json.dumps({"committed": committed, "rolled_back": rolled_back}, indent=2) + "\n"
        )
        self.stdout.write(
            f"placed {len(committed)} orders; rolled back {len(rolled_back)} "
            f"(its event {rolled_back[0]['event_id']} must never be delivered)"
        )

    def _place_and_roll_back(self, i: int) -> dict[str, Any]:
        doomed: dict[str, Any] = {}
        try:
            with transaction.atomic():
                placed = place_order("mallory", Decimal("13.37"))
                doomed.update(_describe(placed))
                raise _RollBack
        except _RollBack:
            pass
        return doomed
