"""Work run in a child process returns its value, reports its failures, and stops when
cancelled."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from services.builder.isolation import IsolatedFailure, IsolatedRunner


async def test_values_and_failures_come_back_and_children_are_reused() -> None:
    runner = IsolatedRunner(workers=1)
    try:
        assert await runner.run(sorted, [3, 1, 2]) == [1, 2, 3]
        with pytest.raises(IsolatedFailure, match="ZeroDivisionError"):
            await runner.run(divmod, 1, 0)
        started = time.monotonic()
        for _ in range(20):
            assert await runner.run(max, [1, 5]) == 5
        assert time.monotonic() - started < 1  # a warm child, not a new process each time
    finally:
        runner.close()


async def test_a_runaway_child_is_killed_and_replaced() -> None:
    """A catastrophic regular expression would hold a thread for hours; the child dies and
    the next call gets a fresh one."""
    runner = IsolatedRunner(workers=1)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(runner.run(re.match, r"^(a+)+$", "a" * 40 + "!"), 1.0)
        assert time.monotonic() - started < 5
        assert await runner.run(sorted, [2, 1]) == [1, 2]
    finally:
        runner.close()
