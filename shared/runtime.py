"""What every Spacedock process does around its service, written once.

A service opens a :class:`ServiceRuntime`: it connects to the metadata, opens the blob store
when the service keeps blobs, chooses the event bus (RabbitMQ when ``SPACEDOCK_AMQP_URL`` is
set, else an in-process bus), and holds the outbox relay that publishes what the service
committed. Background work is started on the runtime, which owns it: leaving the ``async with``
cancels that work first and then closes what was opened, newest first, so nothing still running
uses a closed connection. What a caller passes in (a store a test made, the bus that
``spacedock serve`` shares between its services) is used and left open.

The runtime records into the process's metrics (``shared.metrics``): those a caller passes
(the registry's, or those ``spacedock serve`` shares between its services, shown on the
registry's ``/metrics``), or its own, which a service run alone serves with
:meth:`ServiceRuntime.serve_own_metrics`.

A process runs one or more services with :func:`run_until_stopped`: they share one stop event,
set by SIGINT or SIGTERM (:func:`stop_on_signals`) or by the first service that fails;
:func:`metadata_url` starts the embedded MongoDB-wire server for the process when no
``SPACEDOCK_MONGO_URL`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from shared.events.bus import AmqpBus, EventBus, InProcessBus
from shared.events.relay import OutboxMetrics, OutboxRelay
from shared.metadata.embedded import EmbeddedMongo
from shared.metadata.store import MetadataStore
from shared.metrics import ProcessMetrics, metrics_address, serve_metrics
from shared.settings import Settings
from shared.storage.factory import open_blob_store
from shared.storage.port import BlobStore

T = TypeVar("T")
Service = Callable[[asyncio.Event], Awaitable[None]]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RuntimeUnconfigured(RuntimeError):
    """The settings lack what the runtime must connect to."""


def open_bus(amqp_url: str | None) -> EventBus:
    """RabbitMQ when a URL is configured, otherwise the in-process bus."""
    return AmqpBus(amqp_url) if amqp_url else InProcessBus()


def owner_name(service: str, instance: str | int | None = None) -> str:
    """How this process signs its claims (outbox entries, builds, reaper runs):
    ``service@host:instance``, the process id unless the service names a steadier one."""
    return f"{service}@{socket.gethostname()}:{os.getpid() if instance is None else instance}"


class ServiceRuntime:
    """One service's connections, outbox relay and background tasks; see the module docstring.

    Open it with ``async with ServiceRuntime.open(...) as runtime``.
    """

    def __init__(
        self,
        service: str,
        owner: str,
        metadata: MetadataStore,
        bus: EventBus,
        store: BlobStore | None,
        resources: contextlib.AsyncExitStack,
        metrics: ProcessMetrics,
        *,
        own_metrics: bool,
    ) -> None:
        self.service = service
        self.owner = owner
        self.metadata = metadata
        self.bus = bus
        self._store = store
        self._resources = resources
        self.metrics = metrics
        self._own_metrics = own_metrics
        outbox_metrics = metrics.group(OutboxMetrics)
        self.relay = OutboxRelay(metadata.outbox, bus, owner, metrics=outbox_metrics)
        # Removed before the metadata it reads closes (the resources close newest first).
        resources.callback(
            metrics.add_sampler("outbox", lambda: outbox_metrics.sample(metadata.outbox))
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        service: str,
        settings: Settings,
        *,
        instance: str | int | None = None,
        blobs: bool = False,
        metadata: MetadataStore | None = None,
        store: BlobStore | None = None,
        bus: EventBus | None = None,
        metrics: ProcessMetrics | None = None,
    ) -> AsyncIterator[ServiceRuntime]:
        """Connect to the metadata, open the blob store if ``blobs`` (or use ``store``), and
        choose the bus (or use ``bus``); ``settings.mongo_url`` must be set unless
        ``metadata`` is given (the CLI starts the embedded server when needed). Record into
        ``metrics``, or into metrics of the service's own."""
        async with contextlib.AsyncExitStack() as resources:
            if metadata is None:
                if settings.mongo_url is None:
                    raise RuntimeUnconfigured(f"the {service} needs settings.mongo_url")
                metadata = MetadataStore.connect(settings.mongo_url)
                resources.push_async_callback(metadata.close)
            if store is None and blobs:
                store = await open_blob_store(settings)
                resources.push_async_callback(store.close)
            if bus is None:
                bus = open_bus(settings.amqp_url)
                resources.push_async_callback(bus.close)
            yield cls(
                service,
                owner_name(service, instance),
                metadata,
                bus,
                store,
                resources,
                metrics or ProcessMetrics(),
                own_metrics=metrics is None,
            )

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            raise RuntimeUnconfigured(f"the {self.service} was opened without blobs")
        return self._store

    async def serve_own_metrics(self, settings: Settings) -> None:
        """Serve the metrics on ``SPACEDOCK_METRICS_LISTEN`` until the runtime closes, when
        they are this service's own; metrics a caller passed are the caller's to show."""
        if self._own_metrics:
            await self.enter(serve_metrics(self.metrics, metrics_address(settings, self.service)))

    def start_relay(self) -> None:
        """Publish the outbox from now until the runtime closes."""
        self.spawn(self.relay.run())

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` in the background until it ends or the runtime closes. Its outcome is
        the caller's to watch: a closing runtime cancels it and ignores how it ended."""
        task = asyncio.ensure_future(work)
        self._resources.push_async_callback(_cancel, task)
        return task

    async def enter(self, resource: contextlib.AbstractAsyncContextManager[T]) -> T:
        """Enter ``resource`` now and leave it when the runtime closes, after the tasks
        started since and before what was opened earlier."""
        return await self._resources.enter_async_context(resource)

    def on_close(self, close: Callable[[], object]) -> None:
        """Call ``close`` when the runtime closes, in the same newest-first order."""
        self._resources.callback(close)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@contextlib.asynccontextmanager
async def metadata_url(settings: Settings) -> AsyncIterator[Settings]:
    """``settings`` with a MongoDB URL: the configured one, or that of an embedded server
    started under ``SPACEDOCK_DATA_DIR`` for as long as the block runs."""
    if settings.mongo_url is not None:
        yield settings
        return
    embedded = EmbeddedMongo(settings.data_dir / "metadata")
    url = await embedded.start()
    try:
        yield dataclasses.replace(settings, mongo_url=url)
    finally:
        await embedded.stop()


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM while the block runs (in the running loop)."""
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)


async def run_until_stopped(services: Sequence[Service], stop: asyncio.Event) -> None:
    """Run ``services`` side by side until ``stop`` is set or one of them fails; then stop
    them all, wait for each to finish, and raise the first failure."""
    tasks = [asyncio.ensure_future(service(stop)) for service in services]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        if task in done and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
