"""Run the registry service until told to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import structlog
from aiohttp import web

from services.registry.access_log import RequestLog
from services.registry.app import admin_credentials_key, create_app
from services.registry.bootstrap import AdminCredentials
from services.registry.http_server import RegistryRunner
from shared.events.bus import EventBus
from shared.metrics import ProcessMetrics
from shared.settings import Settings

log = structlog.get_logger("spacedock.registry")
READ_BUFFER_BYTES = 1024 * 1024


async def run_registry(
    settings: Settings,
    stop: asyncio.Event,
    on_ready: Callable[[AdminCredentials | None], None] | None = None,
    bus: EventBus | None = None,
    metrics: ProcessMetrics | None = None,
) -> None:
    app = create_app(settings, bus=bus, metrics=metrics)
    runner = RegistryRunner(
        app,
        access_log=logging.getLogger("spacedock.access"),
        access_log_class=RequestLog,
        handle_signals=False,
        shutdown_timeout=10,
        # Let the socket reader run further ahead of the storage threads before pausing.
        read_bufsize=READ_BUFFER_BYTES,
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, settings.listen_host, settings.listen_port, backlog=1024, reuse_address=True
        )
        await site.start()
        log.info(
            "registry_listening",
            listen=f"{settings.listen_host}:{settings.listen_port}",
            public_url=settings.public_url,
            storage=settings.storage,
        )
        if on_ready is not None:
            on_ready(app.get(admin_credentials_key))
        await stop.wait()
    finally:
        await runner.cleanup()
