"""`manage.py demo_report --orders FILE --received FILE`: the demo's verdict.

Exits non-zero, with the reason, if a committed event is missing from the stream, an
unexpected or duplicated one is there, the rolled-back event was delivered, or the database
does not mark every committed event published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conveyor import Event, Status
from shop.report import build_report, load_orders, load_received


class Command(BaseCommand):
    help = "Compare the orders Django committed with the events read back from the stream."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--orders", type=Path, required=True, help="place_orders output")
        parser.add_argument(
            "--received", type=Path, required=True, help="`conveyor tail --json` output"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            orders = load_orders(options["orders"])
            received = load_received(options["received"])
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        ids = [o["event_id"] for o in orders["committed"]]
        published = Event.objects.filter(pk__in=ids, status=Status.PUBLISHED).count()
        report = build_report(orders, received, published)
        self.stdout.write(report.render())
        if not report.ok:
            raise CommandError(
                f"demo failed: {len(report.problems)} problem(s); see the report above"
            )
