"""Progress of long operator actions: a bar on a terminal, plain lines in logs and pipes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class _Stream(Protocol):
    def write(self, text: str, /) -> object: ...
    def flush(self) -> object: ...
    def isatty(self) -> bool: ...


_BAR_WIDTH = 30


class ProgressReporter:
    """A :data:`conveyor.operations.Progress` callback that draws on ``stream``.

    On a terminal it redraws one line (``\\r``); otherwise it writes a line
    (``replay: 1500/4200 events``) at most every ``interval`` seconds, and always for the
    last batch, so logs stay short.
    """

    def __init__(
        self,
        stream: _Stream,
        label: str,
        *,
        tty: bool | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._label = label
        self._tty = stream.isatty() if tty is None else tty
        self._interval = interval
        self._clock = clock
        self._last_line = float("-inf")
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        total = max(total, done)
        if self._tty:
            filled = _BAR_WIDTH * done // total if total else _BAR_WIDTH
            percent = 100 * done // total if total else 100
            bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
            self._stream.write(f"\r{self._label} [{bar}] {percent:3d}% {done}/{total}")
            self._drawn = True
        else:
            now = self._clock()
            if done < total and now - self._last_line < self._interval:
                return
            self._last_line = now
            self._stream.write(f"{self._label}: {done}/{total} events\n")
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line, so the next output starts on a fresh one."""
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


__all__ = ["ProgressReporter"]
