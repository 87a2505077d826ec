"""A stand-in for ``run_build``, the worker's seam to the build itself: no feed, no registry,
no Docker engine, only what the test scripts a build to do."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from services.builder.build import BuildEnvironment, BuildOutcome, Log
from shared.build_requests import BuildRequest

Step = Callable[[BuildRequest, Log], Awaitable[BuildOutcome]]


class ScriptedBuild:
    """Records every build the worker starts, then does ``step``; ``started`` is set once a
    build runs, and ``stopped`` counts builds cancelled while they ran."""

    def __init__(self, step: Step) -> None:
        self.requests: list[BuildRequest] = []
        self.workspaces: list[Path] = []
        self.started = asyncio.Event()
        self.stopped = 0
        self._step = step

    async def __call__(
        self, request: BuildRequest, workspace: Path, env: BuildEnvironment, log: Log
    ) -> BuildOutcome:
        self.requests.append(request)
        self.workspaces.append(workspace)
        self.started.set()
        try:
            return await self._step(request, log)
        except asyncio.CancelledError:
            self.stopped += 1
            raise


def succeeding(outcome: BuildOutcome) -> ScriptedBuild:
    async def step(request: BuildRequest, log: Log) -> BuildOutcome:
        log(f"pushed {outcome.image}")
        return outcome

    return ScriptedBuild(step)


def failing(error: Exception) -> ScriptedBuild:
    """A build that raises ``error``: an error of the catalogue (``shared.builds.errors``)
    as the builder's modules raise one, or anything else as a bug would."""

    async def step(request: BuildRequest, log: Log) -> BuildOutcome:
        raise error

    return ScriptedBuild(step)


def running_until(release: asyncio.Event, outcome: BuildOutcome) -> ScriptedBuild:
    """A build that works until ``release`` is set, then succeeds with ``outcome``: for what
    happens while a build runs (a cancellation, the time limit, a lapsed lease)."""

    async def step(request: BuildRequest, log: Log) -> BuildOutcome:
        log("working")
        await release.wait()
        return outcome

    return ScriptedBuild(step)
