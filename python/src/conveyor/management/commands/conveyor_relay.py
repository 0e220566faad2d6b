"""`manage.py conveyor_relay [--database ALIAS] [RELAY ARGS...]`: run the Go relay on the
database Django uses, so the DSN lives in one place (DATABASES). See conveyor.relay."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from conveyor.conf import get_settings
from conveyor.relay import RelayError, build_invocation


class Command(BaseCommand):
    help = (
        "Run the Conveyor relay (`conveyor run` by default) with database.url taken from "
        "DATABASES, passed as CONVEYOR_DATABASE__URL. Other arguments go to the relay, e.g. "
        "`conveyor_relay run --config base.yaml --config production.yaml` or "
        "`conveyor_relay status --json`; put relay options after the relay subcommand or "
        "after --."
    )
    requires_migrations_checks = True  # the relay refuses an unmigrated table anyway

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=None,
            help="Database alias whose settings the relay uses "
            '(default: CONVEYOR["DATABASE_ALIAS"]).',
        )
        parser.add_argument(
            "--binary",
            default=None,
            help='The relay executable (default: CONVEYOR["RELAY_BINARY"], "conveyor" on PATH).',
        )
        parser.add_argument(
            "--print",
            dest="print_only",
            action="store_true",
            help="Print the command (password masked) instead of running it.",
        )
        parser.add_argument(
            "--no-exec",
            dest="exec_",
            action="store_false",
            help="Run the relay as a child process and wait, instead of replacing this "
            "process with it (the default, so signals reach the relay directly).",
        )
        parser.add_argument(
            "relay_args",
            nargs=argparse.REMAINDER,
            metavar="RELAY ARGS",
            help="The relay subcommand and its flags (default: run).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        settings = get_settings()
        alias = options["database"] or settings.database_alias
        # The same dict the connection uses, so a test database's NAME is seen too.
        settings_dict = connections.settings.get(alias)
        if settings_dict is None:
            raise CommandError(f"--database {alias!r} is not a key of DATABASES")
        try:
            invocation = build_invocation(
                settings_dict,
                options["relay_args"],
                binary=options["binary"] or settings.relay_binary,
                alias=alias,
            )
        except RelayError as exc:
            raise CommandError(str(exc)) from None
        if invocation.ignored_options:
            self.stderr.write(
                f"conveyor_relay: DATABASES[{alias!r}]['OPTIONS'] keys the relay does not use: "
                f"{', '.join(invocation.ignored_options)}"
            )
        if options["print_only"]:
            self.stdout.write(invocation.display())
            return
        if options["verbosity"] >= 2:
            self.stderr.write(f"conveyor_relay: {invocation.display()}")
        env = {**os.environ, **invocation.env}
        if options["exec_"]:
            connections.close_all()  # say goodbye to the server before the process is replaced
            self.stdout.flush()
            self.stderr.flush()
            os.execve(invocation.argv[0], invocation.argv, env)  # does not return
        returncode = run_forwarding_signals(invocation.argv, env)
        if returncode != 0:
            raise CommandError(f"the relay exited with status {returncode}", returncode=returncode)


def run_forwarding_signals(argv: list[str], env: dict[str, str]) -> int:
    """Run the relay as a child; SIGTERM and SIGINT go to it (for its graceful shutdown)
    instead of stopping this process, which then waits for the relay's exit status."""
    child = subprocess.Popen(argv, env=env)

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
