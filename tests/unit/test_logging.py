"""Log lines never carry secrets held in local variables of a failing frame."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SCRIPT = """
import structlog
from shared.logging import configure_logging
configure_logging({fmt!r})
def verify(password):
    raise ValueError("boom")
try:
    verify("hunter2-secret")
except ValueError:
    structlog.get_logger("test").exception("unhandled_error")
"""


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_exception_logs_show_the_error_but_not_local_variables(fmt: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(fmt=fmt)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "boom" in result.stderr and "unhandled_error" in result.stderr
    assert "hunter2-secret" not in result.stderr


STDLIB_SCRIPT = """
import logging
from shared.logging import configure_logging
configure_logging("json")
def handle(token):
    assert token is None, "probe refused"
try:
    handle("eyJ-secret-token")
except AssertionError:
    logging.getLogger("aiohttp.server").exception("Unhandled exception")
"""


def test_standard_library_records_carry_their_traceback_as_json() -> None:
    """aiohttp and asyncio log through the standard library: their tracebacks are rendered
    like structlog's (frames, no locals), not lost."""
    result = subprocess.run(
        [sys.executable, "-c", STDLIB_SCRIPT], capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["event"] == "Unhandled exception" and line["level"] == "error"
    exception = line["exception"][0]
    assert exception["exc_type"] == "AssertionError"
    assert exception["exc_value"] == "probe refused"
    assert any(frame["name"] == "handle" for frame in exception["frames"])
    assert "eyJ-secret-token" not in result.stderr
