"""Work run in a child process returns its value, reports its failures, and stops when
cancelled."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import time
from pathlib import Path

import pytest

from services.builder.features.octostache import render
from services.builder.features.pipeline import run_features
from services.builder.features.variables import VariableSet
from services.builder.features.xdt import apply_transform
from services.builder.isolation import (
    DEFAULT_MEMORY_BYTES,
    IsolatedFailure,
    IsolatedMemoryError,
    IsolatedRunner,
    IsolatedTimeout,
    close_isolated,
    run_isolated,
)
from shared.sdi import Features


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


def allocate(size: int) -> int:
    """Hold ``size`` bytes at once (a document grown by a hostile transform, say)."""
    return len(bytearray(size))


async def test_a_call_out_of_memory_fails_clearly_and_its_child_is_replaced() -> None:
    runner = IsolatedRunner(workers=1, memory_bytes=512 * 1024**2)
    try:
        first = await runner.run(os.getpid)
        assert await runner.run(allocate, 64 * 1024**2) == 64 * 1024**2
        started = time.monotonic()
        with pytest.raises(IsolatedMemoryError) as caught:
            await runner.run(allocate, 1024**3, timeout=30)
        assert time.monotonic() - started < 10
        assert isinstance(caught.value, IsolatedFailure)
        assert (
            str(caught.value) == "the call ran out of memory (a limit of 512 MiB) and was stopped"
        )
        assert await runner.run(os.getpid) != first  # a fresh child, not the spent one
        assert await runner.run(allocate, 64 * 1024**2) == 64 * 1024**2
    finally:
        runner.close()


def transform_without_a_growth_limit(elements: int) -> int:
    """An XDT transform that sets a 10 KB attribute on each of ``elements`` elements, its
    own bound lifted."""
    xdt = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'
    rule = f'<e a="{"t" * 10_000}" xdt:Transform="SetAttributes" xdt:Locator="XPath(//e)"/>'
    transform = f"<configuration {xdt}>{rule}</configuration>".encode()
    document = b"<configuration>" + b"<e/>" * elements + b"</configuration>"
    return len(apply_transform(document, transform, max_growth=2**62))


async def test_a_document_grown_past_the_limit_stops_at_the_limit() -> None:
    """Whatever a feature fails to bound, the child's limit does: libxml2's failure to
    allocate comes back as the call running out of memory."""
    runner = IsolatedRunner(workers=1, memory_bytes=256 * 1024**2)
    try:
        with pytest.raises(IsolatedMemoryError):  # 10 KB on each of 100,000 elements
            await runner.run(transform_without_a_growth_limit, 100_000, timeout=60)
        assert await runner.run(transform_without_a_growth_limit, 3) > 0
    finally:
        runner.close()


async def test_the_default_memory_limit_leaves_room_for_the_features(tmp_path: Path) -> None:
    """Each child is limited (hard, so nothing in it can raise the limit again), and every
    feature, with the libraries it loads, runs within the default."""
    (tmp_path / "app.conf").write_text("name=#{Name}\n")
    (tmp_path / "Web.config").write_text(
        '<configuration><appSettings><add key="Name" value="x"/></appSettings></configuration>'
    )
    (tmp_path / "Web.Release.config").write_text(
        '<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">'
        '<appSettings><add key="Added" value="1" xdt:Transform="Insert"/></appSettings>'
        "</configuration>"
    )
    (tmp_path / "settings.yaml").write_text("Name: old\n")
    features = Features(
        substitute_in_files=("app.conf",),
        dotnet_config_transforms=True,
        dotnet_config_variables=True,
        structured_variables=("settings.yaml",),
    )
    runner = IsolatedRunner(workers=1)
    try:
        limit = await runner.run(resource.getrlimit, resource.RLIMIT_AS)
        assert tuple(limit) == (DEFAULT_MEMORY_BYTES, DEFAULT_MEMORY_BYTES)
        done = await runner.run(
            run_features, tmp_path, features, VariableSet({"Name": "new"}), None, None, timeout=30
        )
        assert done.error is None
        assert done.changed == ["Web.config", "app.conf", "settings.yaml"]
    finally:
        runner.close()
    assert (tmp_path / "settings.yaml").read_text() == "Name: new\n"
    assert 'key="Name" value="new"' in (tmp_path / "Web.config").read_text()
