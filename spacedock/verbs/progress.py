"""Progress of long transfers, on stderr so that stdout stays the verb's answer.

On a terminal the line is redrawn in place (``\\r``) with bytes so far and the rate; off a
terminal (a CI log, a pipe) nothing is drawn while it runs and one plain line says what was
moved, how long it took and how fast, when it is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

REDRAW_SECONDS = 0.1  # a terminal redrawn more often only flickers
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
ERASE_TO_END = "\x1b[K"


def human_bytes(count: float) -> str:
    """``1536`` → ``1.5 KiB``: binary units, one decimal above bytes."""
    for unit in UNITS:
        if abs(count) < 1024 or unit == UNITS[-1]:
            return f"{int(count)} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable: the last unit returns")


def rate(count: int, seconds: float) -> str:
    return f"{human_bytes(count / seconds)}/s" if seconds > 0 else "-"


def running_line(doing: str, done: int, total: int | None, seconds: float) -> str:
    """``pushing app.1.0.0.zip: 3.0 MiB of 12.0 MiB (25%), 1.5 MiB/s``"""
    if total:
        amount = f"{human_bytes(done)} of {human_bytes(total)} ({100 * done // total}%)"
    else:
        amount = human_bytes(done)
    return f"{doing}: {amount}, {rate(done, seconds)}"


def finished_line(done_verb: str, done: int, seconds: float) -> str:
    """``pushed app.1.0.0.zip: 12.0 MiB in 8.0 s, 1.5 MiB/s``"""
    return f"{done_verb}: {human_bytes(done)} in {seconds:.1f} s, {rate(done, seconds)}"


class Transfer:
    """The bytes of one upload or download. Used as a context manager: a transfer that
    fails leaves the terminal on a fresh line for the error."""

    def __init__(
        self,
        out: TextIO,
        *,
        live: bool,
        doing: str,
        done_verb: str,
        total: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.live = live
        self.doing = doing
        self.done_verb = done_verb
        self.total = total
        self.clock = clock
        self.started = clock()
        self.count = 0
        self.drawn_at: float | None = None

    def __enter__(self) -> Transfer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self._finish()
        elif self.drawn_at is not None:
            self.out.write("\n")
            self.out.flush()

    def advance(self, count: int) -> None:
        self.count += count
        now = self.clock()
        if self.live and (self.drawn_at is None or now - self.drawn_at >= REDRAW_SECONDS):
            line = running_line(self.doing, self.count, self.total, now - self.started)
            self.out.write(f"\r{line}{ERASE_TO_END}")
            self.out.flush()
            self.drawn_at = now

    def _finish(self) -> None:
        line = finished_line(self.done_verb, self.count, self.clock() - self.started)
        self.out.write(f"\r{line}{ERASE_TO_END}\n" if self.live else f"{line}\n")
        self.out.flush()
