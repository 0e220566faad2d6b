"""`manage.py conveyor_status [--json]`: a thin adapter over conveyor.status.outbox_status."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conveyor.status import OutboxStatus, outbox_status


class Command(BaseCommand):
    help = "Show how many outbox events are pending, published and dead, and the oldest backlog."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")
        parser.add_argument(
            "--database",
            default=None,
            help='Database alias holding the outbox (default: CONVEYOR["DATABASE_ALIAS"]).',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        status = outbox_status(using=options["database"])
        if options["json"]:
            self.stdout.write(json.dumps(status.as_dict(), sort_keys=True))
        else:
            self.stdout.write(render(status))


def render(status: OutboxStatus) -> str:
    if status.oldest_pending_age is None:
        backlog = "none"
    else:
        backlog = f"{status.oldest_pending_age.total_seconds():.1f}s"
    lines = [
        f"database    {status.database}",
        f"pending     {status.pending}"
        + (f" ({status.scheduled} scheduled for later)" if status.scheduled else ""),
        f"published   {status.published}",
        f"dead        {status.dead}",
        f"oldest due pending event age  {backlog}",
    ]
    return "\n".join(lines)
