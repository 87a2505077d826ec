"""Work run in a child process returns its value, reports its failures, and stops when
cancelled."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from services.builder.features.octostache import render
from services.builder.features.variables import VariableSet
from services.builder.isolation import (
    IsolatedFailure,
    IsolatedRunner,
    IsolatedTimeout,
    close_isolated,
    run_isolated,
)


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


def backtracking_template() -> tuple[str, VariableSet]:
    """A Match filter whose pattern backtracks catastrophically on the value: hours of work."""
    return '#{X | Match "(a+)+$"}', VariableSet({"X": "a" * 40 + "b"})


async def test_a_call_past_its_time_budget_is_stopped_and_named() -> None:
    runner = IsolatedRunner(workers=1)
    try:
        started = time.monotonic()
        with pytest.raises(IsolatedTimeout) as caught:
            await runner.run(render, *backtracking_template(), timeout=2)
        assert 1.9 < time.monotonic() - started < 3.5
        assert isinstance(caught.value, IsolatedFailure) and caught.value.seconds == 2
        assert await runner.run(render, "#{X}", VariableSet({"X": "next"}), timeout=2) == "next"
    finally:
        runner.close()


async def test_run_isolated_passes_the_time_budget_on() -> None:
    try:
        started = time.monotonic()
        with pytest.raises(IsolatedTimeout):
            await run_isolated(render, *backtracking_template(), timeout=2)
        assert time.monotonic() - started < 3.5
        assert await run_isolated(sorted, [2, 1], timeout=5) == [1, 2]
    finally:
        close_isolated()


async def test_a_closed_runner_starts_children_again() -> None:
    runner = IsolatedRunner(workers=1)
    try:
        assert await runner.run(max, [1, 2]) == 2
        runner.close()
        assert await asyncio.wait_for(runner.run(min, [1, 2]), 10) == 1
    finally:
        runner.close()
