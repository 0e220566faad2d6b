"""`manage.py conveyor_replay`: publish already published events again, through
conveyor.operations.replay. A dry run unless given --yes."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conveyor import operations
from conveyor.management.options import (
    actor_from_options,
    add_change_arguments,
    add_filter_arguments,
    event_id,
    filter_from_options,
    graceful_stop,
    progress_reporter,
    report,
    usage_error,
)


class Command(BaseCommand):
    help = (
        "Replay published events: make them pending again with their original ids, so brokers "
        "and consumers that deduplicate by id drop the copies. Select them by id, type, key or "
        "creation time (--type '*' for all). Changes nothing without --yes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_filter_arguments(parser, error=False)
        parser.add_argument(
            "--after-id",
            type=event_id,
            metavar="ID",
            help="Only events with a larger id: resumes an interrupted replay.",
        )
        add_change_arguments(parser, verb="replay")

    def handle(self, *args: Any, **options: Any) -> None:
        selection = filter_from_options(options)
        narrowed = any(
            options.get(name) for name in ("ids", "event_type", "key", "since", "until", "limit")
        )
        if not narrowed:
            raise usage_error(
                "select the events to replay with --id, --type, --key, --since, --until or "
                "--limit (--type '*' replays every published event)"
            )
        dry_run = not options["yes"]
        progress = None if dry_run else progress_reporter(self.stderr, "replay")
        with graceful_stop(self.stderr) as stop:
            result = operations.replay(
                selection,
                actor=actor_from_options(options),
                reason=options["reason"],
                dry_run=dry_run,
                batch_size=options["batch_size"],
                using=options["database"],
                progress=progress,
                stop=stop,
                command="manage.py conveyor_replay",
            )
        if progress is not None:
            progress.close()
        report(
            self,
            result,
            selection,
            verb="replay",
            done="replayed",
            noun="published",
            resume_hint="Resume with the same arguments plus --after-id {last_id}.",
        )
