"""`manage.py conveyor_purge --older-than 7d`: delete old published events in batches, through
conveyor.operations.purge. Pending events are never touched; dead ones only with
--include-dead."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conveyor import operations
from conveyor.management.options import (
    INTERRUPTED_EXIT_CODE,
    actor_from_options,
    add_database_argument,
    graceful_stop,
    positive_int,
    progress_reporter,
    usage_error,
)
from conveyor.selection import parse_duration


class Command(BaseCommand):
    help = (
        "Delete published events whose published_at is older than --older-than, in batches of "
        "one transaction each (safe to interrupt and re-run). Never deletes pending events; "
        "dead events only with --include-dead (by created_at). Writes one audit entry per batch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            dest="older_than_text",
            required=True,
            metavar="DURATION",
            help='Age cutoff, like "7d", "36h" or "90m".',
        )
        parser.add_argument(
            "--include-dead",
            action="store_true",
            help="Also delete dead events (discarded or not) created before the cutoff.",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="Really delete. Without it, count what would be deleted and delete nothing.",
        )
        parser.add_argument(
            "--actor", default=None, help="Who acts, for the audit trail (default: $USER@hostname)."
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=operations.DEFAULT_PURGE_BATCH_SIZE,
            help=f"Events per transaction (default {operations.DEFAULT_PURGE_BATCH_SIZE}).",
        )
        add_database_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            options["older_than"] = parse_duration(options["older_than_text"])
        except ValueError as exc:
            raise usage_error(f"--older-than: {exc}") from None
        dry_run = not options["yes"]
        progress = None if dry_run else progress_reporter(self.stderr, "purge")
        with graceful_stop(self.stderr) as stop:
            result = operations.purge(
                options["older_than"],
                actor=actor_from_options(options),
                include_dead=options["include_dead"],
                dry_run=dry_run,
                batch_size=options["batch_size"],
                using=options["database"],
                progress=progress,
                stop=stop,
                command=f"manage.py conveyor_purge --older-than {options['older_than_text']}",
            )
        if progress is not None:
            progress.close()
        cutoff = result.cutoff.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        what = "published" + (" and dead" if result.include_dead else "")
        if dry_run:
            self.stdout.write(
                f"would delete {result.matched} {what} event(s) older than {cutoff}. "
                "Nothing changed. Run again with --yes to delete them."
            )
            return
        summary = (
            f"deleted {result.published} published"
            + (f" and {result.dead} dead" if result.include_dead else "")
            + f" event(s) older than {cutoff} in {result.batches} batch(es)"
        )
        if result.interrupted:
            raise CommandError(
                f"interrupted: {summary}; committed batches stay. Run the same command again "
                "to continue.",
                returncode=INTERRUPTED_EXIT_CODE,
            )
        if result.deleted == 0:
            self.stdout.write(f"nothing to purge: no {what} events older than {cutoff}")
            return
        self.stdout.write(self.style.SUCCESS(summary))
