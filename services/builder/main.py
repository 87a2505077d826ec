"""The builder service: consume build requests (RabbitMQ queue ``spacedock.builder.requests``,
or the in-process bus), build, push, and report through the outbox."""

from __future__ import annotations

import asyncio
import os
import socket

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.builder.archives import Limits
from services.builder.build import BuildEnvironment, BuildPolicy, registry_host
from services.builder.docker_engine import DockerEngine, DockerLimits
from services.builder.isolation import close_isolated
from services.builder.registry_client import RegistryClient
from services.builder.worker import BuildWorker, Command
from shared.events.bus import (
    AmqpBus,
    EventBus,
    InProcessBus,
    Outgoing,
    consume_queue,
)
from shared.events.envelope import COMMANDS_EXCHANGE
from shared.events.relay import OutboxRelay
from shared.metadata.store import MetadataStore
from shared.sealing import Sealer
from shared.settings import Settings

log = structlog.get_logger("spacedock.builder")
QUEUE = "spacedock.builder.requests"
ROUTING_KEY = "build.request"
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
    metadata = MetadataStore.connect(settings.mongo_url)
    own_bus = bus is None
    if bus is None:
        bus = AmqpBus(settings.amqp_url) if settings.amqp_url else InProcessBus()
    owner = f"builder@{socket.gethostname()}:{os.getpid()}"
    relay = OutboxRelay(metadata.outbox, bus, owner)
    client = RegistryClient(settings.registry_url, BUILDER_ACCOUNT, settings.builder_key)
    async with client:
        environment = BuildEnvironment(
            service=client,
            registry_url=settings.registry_url,
            public_host=settings.public_host,
            registry_host=settings.docker_registry or registry_host(settings.registry_url),
            docker=DockerEngine(settings.docker_host, settings.build_cgroup_parent or None),
            policy=build_policy(settings),
        )
        worker = BuildWorker(
            metadata,
            environment,
            owner=owner,
            source=f"{settings.public_url}/builder",
            time_limit=settings.build_timeout_seconds,
            notify=relay.notify,
            sealer=None if settings.sealing_key is None else Sealer(settings.sealing_key),
        )
        tasks = [asyncio.ensure_future(relay.run())]
        try:
            if settings.amqp_url:
                tasks.append(asyncio.ensure_future(_consume_amqp(settings, worker)))
            elif isinstance(bus, InProcessBus):
                _consume_in_process(bus, worker, settings.build_concurrency)
            log.info("builder_ready", concurrency=settings.build_concurrency)
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if own_bus:
                await bus.close()
            await metadata.close()
            close_isolated()


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
