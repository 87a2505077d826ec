"""The reaper service. Retention and garbage collection arrive with their own issue; until then
the service only starts, says so, and waits to be stopped."""

from __future__ import annotations

import asyncio

import structlog

from shared.settings import Settings

log = structlog.get_logger("spacedock.reaper")


async def run_reaper(settings: Settings, stop: asyncio.Event) -> None:
    log.info("reaper_idle", reason="retention and garbage collection are not scheduled yet")
    await stop.wait()
