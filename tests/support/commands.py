"""Running real client programs (docker, skopeo) from tests, with readable failures."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Mapping

import pytest


def require(program: str, package: str) -> str:
    """The path of ``program``; fails the test (never skips) when it is not installed."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program!r} is not on PATH; install the Debian package {package!r}")
    return path


def run(
    command: list[str],
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` and return what happened, whatever its exit status."""
    return subprocess.run(
        command,
        input=stdin,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def succeed(
    command: list[str],
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    diagnose: Callable[[], str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fail the test with its output, and what ``diagnose`` tells (a server's
    log, say), if it exits non-zero."""
    result = run(command, stdin=stdin, env=env, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited with {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            + (f"\n{diagnose()}" if diagnose is not None else ""),
            pytrace=False,
        )
    return result
