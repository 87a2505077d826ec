"""One process's Prometheus metrics, whichever services it runs.

A process holds one :class:`ProcessMetrics`: a collector registry of its own (no globals) and
the groups of metrics its services record in it. ``spacedock serve`` gives its three services
one, so the registry's ``/metrics`` shows the builder's and the reaper's too; a builder or a
reaper run alone makes its own and serves it with :func:`serve_metrics` on
``SPACEDOCK_METRICS_LISTEN``.

Some values are the state of something shared rather than counts of what this process did
(the outbox's backlog, the broker's queue): those are read when a scrape asks, by samplers,
so they cost nothing between scrapes and are the same whichever instance is asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeVar

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.settings import Settings

log = structlog.get_logger("spacedock.metrics")
# Where a service run alone serves /metrics unless SPACEDOCK_METRICS_LISTEN names a port:
# apart, so a builder and a reaper on one host do not collide.
DEFAULT_PORTS = {"builder": 9102, "reaper": 9103}
SAMPLE_TIMEOUT_SECONDS = 5.0
# Scrapes closer together than this share the last sampling (Prometheus scrapes every 15 s or
# so; anyone may ask /metrics more often).
SAMPLE_INTERVAL_SECONDS = 5.0

Sampler = Callable[[], Awaitable[None]]


class MetricGroup(Protocol):
    """Metrics that belong together, registered in the collector registry they are made with."""

    def __init__(self, registry: CollectorRegistry) -> None: ...


G = TypeVar("G", bound=MetricGroup)


class ProcessMetrics:
    def __init__(self, sample_interval: float = SAMPLE_INTERVAL_SECONDS) -> None:
        self._sample_interval = sample_interval
        self.registry = CollectorRegistry(auto_describe=True)
        self._groups: dict[type[object], object] = {}
        self._samplers: dict[str, list[Sampler]] = {}
        # Scrapes share one sampling at a time, and one at most every SAMPLE_INTERVAL_SECONDS:
        # /metrics is public, and some samples read the database.
        self._sampling = asyncio.Lock()
        self._sampled_at = -sample_interval

    def group(self, kind: type[G]) -> G:
        """The process's one ``kind``: services of one process that record the same metrics
        (each one's outbox relay) share it, as a registry takes each name once."""
        existing = self._groups.get(kind)
        if existing is None:
            existing = self._groups[kind] = kind(self.registry)
        assert isinstance(existing, kind)
        return existing

    def add_sampler(self, name: str, sample: Sampler) -> Callable[[], None]:
        """Run ``sample`` before each scrape until the returned function is called. Of the
        samplers added under one ``name`` only the first still present runs: the services of
        one process that read the same shared state read it once."""
        samplers = self._samplers.setdefault(name, [])
        samplers.append(sample)
        return lambda: samplers.remove(sample)

    async def exposition(self) -> bytes:
        """The text format, after the samplers ran if they had not in the last
        ``sample_interval`` seconds (each within its timeout; one that fails leaves its values
        as they were and is logged)."""
        async with self._sampling:
            if time.monotonic() - self._sampled_at >= self._sample_interval:
                await self._sample()
                self._sampled_at = time.monotonic()
        return generate_latest(self.registry)

    async def _sample(self) -> None:
        current = [(name, samplers[0]) for name, samplers in self._samplers.items() if samplers]
        results = await asyncio.gather(
            *(asyncio.wait_for(sample(), SAMPLE_TIMEOUT_SECONDS) for _, sample in current),
            return_exceptions=True,
        )
        for (name, _), result in zip(current, results, strict=True):
            if isinstance(result, Exception):
                log.warning("metrics_sample_failed", sampler=name, error=repr(result)[:200])


async def metrics_response(metrics: ProcessMetrics) -> web.Response:
    body = await metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def metrics_address(settings: Settings, service: str) -> tuple[str, int] | None:
    """Where ``service`` run alone serves /metrics; None when the operator turned it off."""
    if settings.metrics_host is None:
        return None
    port = settings.metrics_port
    return settings.metrics_host, DEFAULT_PORTS[service] if port is None else port


@contextlib.asynccontextmanager
async def serve_metrics(
    metrics: ProcessMetrics, address: tuple[str, int] | None
) -> AsyncIterator[int | None]:
    """Serve ``GET /metrics`` on ``address`` while the block runs; yields the port bound.

    A port that cannot be bound is logged and the service goes on without it (yielding
    None): metrics are not worth stopping builds or retention for, and a second instance
    on one host started with the defaults would otherwise not start at all."""
    if address is None:
        yield None
        return
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return await metrics_response(metrics)

    app.router.add_get("/metrics", handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        host, port = address
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            log.error(
                "metrics_unavailable",
                listen=f"{host}:{port}",
                error=str(exc),
                reason="set SPACEDOCK_METRICS_LISTEN to a free host:port, or none",
            )
            yield None
            return
        bound = int(runner.addresses[0][1])  # the system's choice when port is 0
        log.info("metrics_listening", listen=f"{host}:{bound}")
        yield bound
    finally:
        await runner.cleanup()
