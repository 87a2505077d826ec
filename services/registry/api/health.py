"""``/healthz`` (the process answers), ``/readyz`` (storage and metadata answer), ``/metrics``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.registry.keys import metadata_key, metrics_key, store_key
from shared.metadata.errors import MetadataUnavailable
from shared.metrics import metrics_response
from shared.storage.port import StorageError

READY_TIMEOUT_SECONDS = 5.0


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, str] = {}
    for name, probe in (
        ("metadata", request.app[metadata_key].ping()),
        ("storage", request.app[store_key].check()),
    ):
        try:
            await asyncio.wait_for(probe, READY_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except (MetadataUnavailable, StorageError, TimeoutError) as exc:
            checks[name] = f"unavailable: {type(exc.__cause__ or exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    """The process's metrics: the registry's, and those of the services beside it."""
    return await metrics_response(request.app[metrics_key].process)
