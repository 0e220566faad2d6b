"""Arguments and output shared by the operator commands (conveyor_dead, _replay, _purge)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.utils import timezone

from conveyor.models import Event, Status
from conveyor.operations import DEFAULT_BATCH_SIZE, OperationResult, default_actor
from conveyor.progress import ProgressReporter
from conveyor.selection import EventFilter, parse_duration, parse_when

INTERRUPTED_EXIT_CODE = 130  # what shells report for SIGINT
USAGE_EXIT_CODE = 2  # bad arguments, as argparse exits


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE_EXIT_CODE)


def event_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an event id (a UUID)") from None


def event_ids(text: str) -> list[uuid.UUID]:
    """``--id A`` or ``--id A,B,C``."""
    return [event_id(part) for part in text.split(",") if part.strip()] or [event_id(text)]


def duration(text: str) -> dt.timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_database_argument(parser: CommandParser) -> None:
    parser.add_argument(
        "--database",
        default=None,
        help='Database alias holding the outbox (default: CONVEYOR["DATABASE_ALIAS"]).',
    )


def add_filter_arguments(parser: CommandParser, *, error: bool, ids_help: str = "") -> None:
    group = parser.add_argument_group("filters (combined with AND)")
    group.add_argument(
        "--id",
        dest="ids",
        action="extend",
        type=event_ids,
        default=[],
        metavar="ID",
        help=ids_help or "An event id; repeat it or separate ids with commas.",
    )
    group.add_argument(
        "--type",
        dest="event_type",
        metavar="GLOB",
        help='Event type, a glob like "order.*" (* ? [a-z], as in the relay).',
    )
    group.add_argument("--key", help="Ordering key, exactly.")
    group.add_argument(
        "--since",
        metavar="WHEN",
        help='Created at or after: ISO 8601 (UTC unless an offset is given) or "2h", "7d" ago.',
    )
    group.add_argument("--until", metavar="WHEN", help="Created before; same forms as --since.")
    if error:
        group.add_argument(
            "--error", metavar="TEXT", help="last_error contains TEXT (case-sensitive)."
        )
    group.add_argument("--limit", type=positive_int, help="At most this many events.")
    add_database_argument(parser)


def add_change_arguments(parser: CommandParser, *, verb: str) -> None:
    parser.add_argument(
        "--yes",
        action="store_true",
        help=f"Really {verb}. Without it, print what would change and change nothing.",
    )
    add_actor_arguments(parser)


def add_actor_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--actor",
        default=None,
        help="Who acts, for the audit trail (default: $USER@hostname).",
    )
    parser.add_argument("--reason", default="", help="Why, for the audit trail.")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"Events per transaction (default {DEFAULT_BATCH_SIZE}).",
    )


def filter_from_options(options: dict[str, Any], *, now: dt.datetime | None = None) -> EventFilter:
    now = now or timezone.now()

    def when(name: str) -> dt.datetime | None:
        text = options.get(name)
        if not text:
            return None
        try:
            return parse_when(text, now=now)
        except ValueError as exc:
            raise usage_error(f"--{name}: {exc}") from None

    try:
        return EventFilter(
            ids=tuple(options.get("ids") or ()),
            event_type=options.get("event_type"),
            key=options.get("key"),
            since=when("since"),
            until=when("until"),
            error=options.get("error"),
            after_id=options.get("after_id"),
            limit=options.get("limit"),
        )
    except ValueError as exc:
        raise usage_error(str(exc)) from None


def actor_from_options(options: dict[str, Any]) -> str:
    actor: str | None = options.get("actor")
    if actor is not None and not actor.strip():
        raise usage_error("--actor must not be empty")
    return actor or default_actor()


@contextlib.contextmanager
def graceful_stop(out: OutputWrapper) -> Iterator[Callable[[], bool]]:
    """While the block runs, the first SIGINT or SIGTERM asks the operation to stop after
    the batch in progress (the yielded callable turns True); a second one interrupts at once
    (KeyboardInterrupt: the batch in progress rolls back)."""
    requested = False

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal requested
        if requested:
            raise KeyboardInterrupt
        requested = True
        out.write(
            f"\n{signal.Signals(signum).name}: stopping after the batch in progress "
            "(send it again to stop now)",
            style_func=lambda s: s,
        )

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handle)
    try:
        yield lambda: requested
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Unstyled:
    """Writes to a command's stream without Django's styling or automatic newline."""

    def __init__(self, out: OutputWrapper) -> None:
        self._out = out

    def write(self, text: str, /) -> None:
        self._out.write(text, style_func=lambda s: s, ending="")

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()


def progress_reporter(out: OutputWrapper, label: str) -> ProgressReporter:
    return ProgressReporter(_Unstyled(out), label)


def _first_line(text: str | None, width: int) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def event_table(events: Iterable[Event], *, error: bool) -> str:
    """One line per event: id, created_at, type, key, attempts[, last error]."""
    rows = []
    for e in events:
        row = [
            str(e.pk),
            e.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.event_type,
            e.key or "-",
            str(e.attempts),
        ]
        if error:
            mark = "[blocks key] " if e.blocks_key else ""
            row.append(mark + (_first_line(e.last_error, 70) or "-"))
        rows.append(row)
    header = ["ID", "CREATED (UTC)", "TYPE", "KEY", "ATTEMPTS"] + (["LAST ERROR"] if error else [])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )


def report(
    command: BaseCommand,
    result: OperationResult,
    selection: EventFilter,
    *,
    verb: str,
    done: str,
    noun: str,
    resume_hint: str = "",
) -> None:
    """Print a change's outcome; shared by conveyor_dead and conveyor_replay."""
    out = command.stdout
    if result.matched == 0 and not result.changed:
        out.write(f"no {noun} events match (filter: {selection.describe()})")
        return
    if result.dry_run:
        out.write(f"would {verb} {result.matched} {noun} event(s) (filter: {selection.describe()})")
        out.write(event_table(result.sample, error=noun == "dead"))
        if result.matched > len(result.sample):
            out.write(f"... and {result.matched - len(result.sample)} more")
        out.write(f"Nothing changed. Run again with --yes to {verb} them.")
        return
    summary = f"{done} {result.changed} {noun} event(s) in {result.batches} batch(es)"
    if result.interrupted:
        hint = resume_hint.format(last_id=result.last_id) if result.last_id else ""
        raise CommandError(
            f"interrupted: {summary}; committed batches stay, the batch in progress was "
            f"rolled back. {hint or 'Run the same command again to continue.'}",
            returncode=INTERRUPTED_EXIT_CODE,
        )
    out.write(command.style.SUCCESS(summary))


def event_json(event: Event) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": str(event.pk),
        "event_type": event.event_type,
        "status": Status(event.status).label,
        "key": event.key,
        "source": event.source,
        "subject": event.subject,
        "attempts": event.attempts,
        "last_error": event.last_error,
        "created_at": iso(event.created_at),
        "available_at": iso(event.available_at),
        "published_at": iso(event.published_at),
        "discarded_at": iso(event.discarded_at),
        "blocks_key": event.blocks_key,
    }


__all__ = [
    "INTERRUPTED_EXIT_CODE",
    "actor_from_options",
    "add_change_arguments",
    "add_database_argument",
    "add_filter_arguments",
    "duration",
    "event_id",
    "event_ids",
    "event_json",
    "event_table",
    "filter_from_options",
    "graceful_stop",
    "positive_int",
    "progress_reporter",
    "report",
    "usage_error",
]
