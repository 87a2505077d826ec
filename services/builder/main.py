"""The builder service: consume build requests (RabbitMQ queue ``spacedock.builder.requests``,
or the in-process bus), build, push, and report through the outbox."""

from __future__ import annotations

import asyncio

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.builder.archives import Limits
from services.builder.build import BuildEnvironment, BuildPolicy, registry_host
from services.builder.docker_engine import DockerEngine, DockerLimits
from services.builder.isolation import close_isolated
from services.builder.registry_client import RegistryClient
from services.builder.worker import BuildWorker, Command
from shared.builds import lifecycle
from shared.events.bus import EventBus, InProcessBus, Outgoing, consume_queue
from shared.events.envelope import COMMANDS_EXCHANGE
from shared.runtime import ServiceRuntime
from shared.sealing import Sealer
from shared.settings import Settings

log = structlog.get_logger("spacedock.builder")
QUEUE = "spacedock.builder.requests"
ROUTING_KEY = lifecycle.REQUESTED
BUILDER_ACCOUNT = "spacedock-builder"


async def run_builder(settings: Settings, stop: asyncio.Event, bus: EventBus | None = None) -> None:
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
    async with ServiceRuntime.open("builder", settings, bus=bus) as runtime:
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
        )
        worker = BuildWorker(
            runtime.metadata,
            environment,
            owner=runtime.owner,
            source=f"{settings.public_url}/builder",
            time_limit=settings.build_timeout_seconds,
            notify=runtime.relay.notify,
            sealer=None if settings.sealing_key is None else Sealer(settings.sealing_key),
        )
        runtime.start_relay()
        if settings.amqp_url:
            runtime.spawn(_consume_amqp(settings, worker))
        elif isinstance(runtime.bus, InProcessBus):
            _consume_in_process(runtime.bus, worker, settings.build_concurrency)
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


def _consume_in_process(bus: InProcessBus, worker: BuildWorker, concurrency: int) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def on_message(message: Outgoing) -> None:
        async with slots:
            await worker.handle(Command(message.body, message.correlation_id))

    bus.subscribe(COMMANDS_EXCHANGE, ROUTING_KEY, on_message)
