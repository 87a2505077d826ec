"""The builder service: consume build requests (RabbitMQ queue ``spacedock.builder.requests``,
or the in-process bus), build, push, and report through the outbox.

Its metrics (``BuildMetrics``) are the process's: on the registry's ``/metrics`` under
``spacedock serve``, on ``SPACEDOCK_METRICS_LISTEN`` when it runs alone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from prometheus_client import Gauge

from services.builder.archives import Limits
from services.builder.build import BuildEnvironment, BuildPolicy, registry_host
from services.builder.docker_engine import DockerEngine, DockerLimits
from services.builder.isolation import close_isolated
from services.builder.registry_client import RegistryClient
from services.builder.worker import BuildMetrics, BuildWorker, Command
from shared.builds import lifecycle
from shared.events.bus import EventBus, InProcessBus, Outgoing, consume_queue
from shared.events.envelope import COMMANDS_EXCHANGE
from shared.metrics import ProcessMetrics
from shared.runtime import ServiceRuntime
from shared.sealing import Sealer
from shared.settings import Settings

log = structlog.get_logger("spacedock.builder")
QUEUE = "spacedock.builder.requests"
ROUTING_KEY = lifecycle.REQUESTED
BUILDER_ACCOUNT = "spacedock-builder"
BROKER_TIMEOUT_SECONDS = 5.0


async def run_builder(
    settings: Settings,
    stop: asyncio.Event,
    bus: EventBus | None = None,
    metrics: ProcessMetrics | None = None,
) -> None:
    """Build until ``stop``; ``bus`` and ``metrics`` are those of the process when it runs
    other services too."""
    if settings.builder_key is None or settings.mongo_url is None:
        log.warning(
            "builder_idle",
            reason="set SPACEDOCK_BUILDER_KEY (an API key of spacedock-builder) and "
            "SPACEDOCK_MONGO_URL to build",
        )
        await stop.wait()
        return
    if settings.sealing_key is None:
        log.warning(
            "builder_without_sealing_key",
            reason="set SPACEDOCK_SEALING_KEY (the registry's) to build requests with "
            "sensitive variables from the registry; their sealed values cannot be opened",
        )
    async with ServiceRuntime.open("builder", settings, bus=bus, metrics=metrics) as runtime:
        await runtime.serve_own_metrics(settings)
        build_metrics = runtime.metrics.group(BuildMetrics)
        runtime.on_close(close_isolated)
        client = await runtime.enter(
            RegistryClient(settings.registry_url, BUILDER_ACCOUNT, settings.builder_key)
        )
        environment = BuildEnvironment(
            service=client,
            registry_url=settings.registry_url,
            public_host=settings.public_host,
            registry_host=settings.docker_registry or registry_host(settings.registry_url),
            docker=DockerEngine(settings.docker_host, settings.build_cgroup_parent or None),
            policy=build_policy(settings),
            features_timed=build_metrics.features.observe,
        )
        worker = BuildWorker(
            runtime.metadata,
            environment,
            owner=runtime.owner,
            source=f"{settings.public_url}/builder",
            time_limit=settings.build_timeout_seconds,
            notify=runtime.relay.notify,
            sealer=None if settings.sealing_key is None else Sealer(settings.sealing_key),
            metrics=build_metrics,
        )
        runtime.start_relay()
        if settings.amqp_url:
            await runtime.enter(
                _broker_queue_depth(settings.amqp_url, runtime.metrics, build_metrics.queue_depth)
            )
            runtime.spawn(_consume_amqp(settings, worker))
        elif isinstance(runtime.bus, InProcessBus):
            _consume_in_process(
                runtime.bus, worker, settings.build_concurrency, build_metrics.queue_depth
            )
        log.info("builder_ready", concurrency=settings.build_concurrency)
        await stop.wait()


def build_policy(settings: Settings) -> BuildPolicy:
    return BuildPolicy(
        allowed_registries=settings.build_allowed_registries,
        docker_limits=DockerLimits(
            memory_bytes=settings.build_memory_bytes,
            cpus=settings.build_cpus,
            processes=settings.build_processes,
        ),
        extraction=Limits(
            max_bytes=settings.build_max_extract_bytes, max_files=settings.build_max_files
        ),
        features_seconds=settings.build_features_seconds,
        # The credential outlives the time limit by the push that may end the build.
        credential_seconds=settings.build_timeout_seconds + 600,
    )


async def _consume_amqp(settings: Settings, worker: BuildWorker) -> None:
    """Competing consumers of one durable queue; a message is acknowledged once its build
    has an outcome, so a builder that dies mid-build leaves it to another."""
    assert settings.amqp_url is not None

    async def handle(message: AbstractIncomingMessage) -> None:
        await worker.handle(Command(message.body, message.correlation_id, message.reply_to))

    await consume_queue(
        settings.amqp_url,
        QUEUE,
        COMMANDS_EXCHANGE,
        ROUTING_KEY,
        settings.build_concurrency,
        handle,
    )


@contextlib.asynccontextmanager
async def _broker_queue_depth(
    url: str, metrics: ProcessMetrics, depth: Gauge
) -> AsyncIterator[None]:
    """Set ``depth`` at each scrape to the requests the broker holds for builders and has not
    handed to one yet (a passive declare: one round trip, the same answer on every builder).
    Its own connection, opened at the first scrape: the consumer's is the consumer's."""
    connection: AbstractRobustConnection | None = None

    async def sample() -> None:
        nonlocal connection
        if connection is None or connection.is_closed:
            connection = await aio_pika.connect_robust(url, timeout=BROKER_TIMEOUT_SECONDS)
        # A channel per scrape: a passive declare that fails closes its channel.
        async with connection.channel() as channel:
            queue = await channel.declare_queue(QUEUE, passive=True)
            count = queue.declaration_result.message_count
            depth.set(0 if count is None else count)

    remove = metrics.add_sampler("build_queue", sample)
    try:
        yield
    finally:
        remove()
        if connection is not None:
            await connection.close()


def _consume_in_process(
    bus: InProcessBus, worker: BuildWorker, concurrency: int, waiting: Gauge
) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def on_message(message: Outgoing) -> None:
        with waiting.track_inprogress():
            await slots.acquire()
        try:
            await worker.handle(Command(message.body, message.correlation_id))
        finally:
            slots.release()

    bus.subscribe(COMMANDS_EXCHANGE, ROUTING_KEY, on_message)
