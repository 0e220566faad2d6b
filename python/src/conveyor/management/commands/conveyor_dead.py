"""`manage.py conveyor_dead list|show|retry|discard`: dead letters, through conveyor.operations.

The same filters and semantics as the relay's `conveyor dead`; retry and discard are dry runs
unless given --yes, and write audit entries (conveyor_audit) with the changes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conveyor import operations
from conveyor.management.options import (
    actor_from_options,
    add_change_arguments,
    add_database_argument,
    add_filter_arguments,
    event_id,
    event_json,
    event_table,
    filter_from_options,
    graceful_stop,
    progress_reporter,
    report,
)
from conveyor.models import AuditEntry, Event

LIST_PAGE_SIZE = 50
_VERBS = {operations.RETRY: ("retry", "retried"), operations.DISCARD: ("discard", "discarded")}


class Command(BaseCommand):
    help = (
        "Inspect, retry or discard dead events. retry makes them pending again (attempts 0, "
        "same id, so per-key order holds); discard marks them discarded and keeps the row. "
        "Both change nothing without --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(
            dest="subcommand", required=True, metavar="{list,show,retry,discard}"
        )
        p = sub.add_parser(
            "list", help=f"List dead events, oldest first, {LIST_PAGE_SIZE} per page."
        )
        add_filter_arguments(p, error=True)
        p.add_argument(
            "--after-id", type=event_id, metavar="ID", help="The next page: events after ID."
        )
        p.add_argument(
            "--include-discarded", action="store_true", help="Also list discarded events."
        )
        p.add_argument("--json", action="store_true", help="Print a JSON array.")

        p = sub.add_parser("show", help="Show one event in full, with its audit trail.")
        p.add_argument("id", type=event_id, help="The event id.")
        p.add_argument("--json", action="store_true", help="Print one JSON object.")
        add_database_argument(p)

        for action in (operations.RETRY, operations.DISCARD):
            verb = _VERBS[action][0]
            p = sub.add_parser(
                action,
                help=f"{verb.capitalize()} dead events (a dry run without --yes).",
            )
            add_filter_arguments(p, error=True)
            add_change_arguments(p, verb=verb)

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "list":
            self._list(options)
        elif subcommand == "show":
            self._show(options)
        else:
            self._change(subcommand, options)

    def _list(self, options: dict[str, Any]) -> None:
        selection = filter_from_options(options)
        page_size = selection.limit or LIST_PAGE_SIZE
        if selection.limit is None:
            selection = dataclasses.replace(selection, limit=page_size)
        events = list(
            operations.dead_events(
                selection,
                include_discarded=options["include_discarded"],
                using=options["database"],
            )
        )
        if options["json"]:
            self.stdout.write(json.dumps([event_json(e) for e in events], indent=2))
            return
        if not events:
            self.stdout.write(f"no dead events match (filter: {selection.describe()})")
            return
        self.stdout.write(event_table(events, error=True))
        self.stdout.write(f"{len(events)} dead event(s)")
        if len(events) == page_size:
            self.stdout.write(f"more may follow: add --after-id {events[-1].pk}")

    def _show(self, options: dict[str, Any]) -> None:
        manager = Event._default_manager
        if options["database"]:
            manager = manager.db_manager(options["database"])
        try:
            event = manager.get(pk=options["id"])
        except Event.DoesNotExist:
            raise CommandError(f"no event with id {options['id']}") from None
        audit = AuditEntry._default_manager.using(event._state.db).filter(event=event.pk)
        trail = [
            {"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "detail": a.detail}
            for a in audit.order_by("at", "id")
        ]
        doc = {**event_json(event), "data": event.data, "headers": event.headers, "audit": trail}
        if options["json"]:
            self.stdout.write(json.dumps(doc, indent=2, sort_keys=True))
            return
        for name in (
            "id",
            "event_type",
            "status",
            "key",
            "source",
            "subject",
            "attempts",
            "created_at",
            "available_at",
            "published_at",
            "discarded_at",
            "blocks_key",
        ):
            self.stdout.write(f"{name:<13} {doc[name] if doc[name] is not None else '-'}")
        self.stdout.write(f"last_error\n{_indent(event.last_error or '-')}")
        self.stdout.write(f"data\n{_indent(json.dumps(event.data, indent=2))}")
        self.stdout.write(f"headers\n{_indent(json.dumps(event.headers, indent=2))}")
        self.stdout.write("audit")
        for entry in trail or [{"at": "-", "actor": "", "action": "", "detail": ""}]:
            line = f"{entry['at']} {entry['actor']} {entry['action']} {entry['detail']}"
            self.stdout.write(_indent(line.rstrip()))

    def _change(self, action: str, options: dict[str, Any]) -> None:
        verb, done = _VERBS[action]
        selection = filter_from_options(options)
        dry_run = not options["yes"]
        run = operations.retry_dead if action == operations.RETRY else operations.discard_dead
        progress = None if dry_run else progress_reporter(self.stderr, verb)
        with graceful_stop(self.stderr) as stop:
            result = run(
                selection,
                actor=actor_from_options(options),
                reason=options["reason"],
                dry_run=dry_run,
                batch_size=options["batch_size"],
                using=options["database"],
                progress=progress,
                stop=stop,
                command=f"manage.py conveyor_dead {action}",
            )
        if progress is not None:
            progress.close()
        report(self, result, selection, verb=verb, done=done, noun="dead")


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
