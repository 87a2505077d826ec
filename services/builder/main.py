"""The builder service: consume build requests (RabbitMQ queue ``spacedock.builder.requests``,
or the in-process bus), build, push, and report through the outbox."""

from __future__ import annotations

import asyncio
import os
import socket

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.builder.build import BuildEnvironment, registry_host
from services.builder.docker_engine import DockerEngine
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
    metadata = MetadataStore.connect(settings.mongo_url)
    own_bus = bus is None
    if bus is None:
        bus = AmqpBus(settings.amqp_url) if settings.amqp_url else InProcessBus()
    owner = f"builder@{socket.gethostname()}:{os.getpid()}"
    relay = OutboxRelay(metadata.outbox, bus, owner)
    client = RegistryClient(settings.registry_url, BUILDER_ACCOUNT, settings.builder_key)
    async with client:
        environment = BuildEnvironment(
            client=client,
            public_host=settings.public_host,
            registry_host=settings.docker_registry or registry_host(settings.registry_url),
            docker=DockerEngine(settings.docker_host),
            credentials=(BUILDER_ACCOUNT, settings.builder_key),
        )
        worker = BuildWorker(
            metadata,
            environment,
            owner=owner,
            source=f"{settings.public_url}/builder",
            time_limit=settings.build_timeout_seconds,
            notify=relay.notify,
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
