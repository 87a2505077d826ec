"""Following a build while it runs: its status changes and its log lines as they come.

The logs endpoint answers with the build's status and its log, the last ``MAX_LOG_LINES``
lines of it (``shared.metadata.builds``), so one request a second gives both; what is new is
worked out here, also once old lines have started to drop off the front.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from spacedock.verbs.outcomes import TimedOut

FINAL = frozenset({"succeeded", "failed", "cancelled"})
POLL_SECONDS = 1.0


def new_lines(shown: Sequence[str], current: Sequence[str]) -> list[str]:
    """The lines of ``current`` after those already ``shown``. When the log was cut at its
    front, the new lines follow the longest end of ``shown`` that ``current`` starts with;
    with no overlap at all (more new lines than the server keeps), all of them are new."""
    for start in range(len(shown) + 1):
        overlap = shown[start:]
        if len(overlap) <= len(current) and list(current[: len(overlap)]) == list(overlap):
            return list(current[len(overlap) :])
    raise AssertionError("unreachable: the empty overlap always matches")


def follow(
    read_logs: Callable[[], Any],
    space: str,
    build_id: str,
    *,
    on_status: Callable[[str], None],
    on_line: Callable[[str], None],
    timeout: float | None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Report the build's status changes and new log lines until it has finished; its final
    status. ``read_logs`` answers as the logs endpoint does (``status`` and ``logs``).
    ``TimedOut`` when ``timeout`` seconds pass first."""
    deadline = None if timeout is None else clock() + timeout
    shown: list[str] = []
    status: str | None = None
    while True:
        answer = read_logs()
        current = [str(line) for line in answer["logs"]]
        changed = answer["status"] != status
        status = str(answer["status"])
        if changed and status not in FINAL:
            on_status(status)
        for line in new_lines(shown, current):
            on_line(line)
        shown = current
        if status in FINAL:
            on_status(status)
            return status
        if deadline is not None:
            left = deadline - clock()
            if left <= 0:
                raise TimedOut(
                    f"build {build_id} is still {status} after {timeout:g} s; it goes on "
                    f"(spacedock builds show|cancel {space} {build_id})"
                )
            sleep(min(POLL_SECONDS, left))
        else:
            sleep(POLL_SECONDS)
