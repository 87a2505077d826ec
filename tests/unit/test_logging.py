"""Log lines never carry secrets held in local variables of a failing frame."""

from __future__ import annotations

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
