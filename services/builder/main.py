"""The builder service. Source Docker Image builds arrive with their own issue; until then the
service only starts, says so, and waits to be stopped."""

from __future__ import annotations

import asyncio

import structlog

from shared.settings import Settings

log = structlog.get_logger("spacedock.builder")


async def run_builder(settings: Settings, stop: asyncio.Event) -> None:
    log.info("builder_idle", reason="build requests are not consumed yet")
    await stop.wait()
