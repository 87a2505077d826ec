"""How a verb ends, as an exit code a script can trust.

One exception class per way of failing, each carrying its exit code, so every verb fails the
same way and ``spacedock.verbs.run`` turns them into a one-line message in one place.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the server refused or failed the operation; a build failed or was cancelled
    USAGE = 2  # wrong arguments, settings or missing credentials: nothing was asked
    TIMEOUT = 3  # --timeout ran out before the build finished
    UNREACHABLE = 4  # no answer from the server: refused, unresolvable, or silent
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


EXIT_CODES_HELP = """\
exit codes:
  0    done
  1    the operation failed: the server answered with an error (HTTP 4xx/5xx), or a
       build waited for (--wait, logs --follow) failed or was cancelled
  2    usage: wrong arguments or settings, or no credentials without a terminal
  3    --timeout ran out (the build goes on; see `spacedock builds show`)
  4    the server cannot be reached (connection refused, unknown host, no answer)
  130  interrupted (Ctrl-C)"""


class VerbFailed(Exception):
    """The verb did not do what it was asked. ``document``, when given, is printed on stdout
    as a successful verb's answer would be (a failed build's final state, say)."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, document: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.document = document


class UsageError(VerbFailed):
    exit_code = ExitCode.USAGE


class TimedOut(VerbFailed):
    exit_code = ExitCode.TIMEOUT


class Unreachable(VerbFailed):
    exit_code = ExitCode.UNREACHABLE


class ApiFailed(VerbFailed):
    """The server answered with an error: its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.server_message = message
