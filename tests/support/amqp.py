"""RabbitMQ from the tests' side: a durable queue bound to the events exchange, drained into
decoded CloudEvents, and the broker stopped and started like an outage."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aio_pika

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
EVENTS_EXCHANGE = "spacedock.events"


@dataclass
class Received:
    routing_key: str
    properties: dict[str, Any]
    event: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.event["data"])


class EventQueue:
    """A durable queue bound to ``spacedock.events`` before anything is pushed, so it
    keeps every event through broker restarts until read."""

    def __init__(self, binding: str = "#", url: str = AMQP_URL) -> None:
        self.url = url
        self.name = f"test-events-{uuid.uuid4().hex[:10]}"
        self.binding = binding
        asyncio.run(self._declare())

    async def _declare(self) -> None:
        connection = await aio_pika.connect(self.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.name, durable=True)
            await queue.bind(exchange, self.binding)

    def drain(
        self,
        until: Callable[[list[Received]], bool],
        timeout: float = 60,
        received: list[Received] | None = None,
    ) -> list[Received]:
        """Read events (reconnecting as needed) until ``until`` holds or time is up."""
        return asyncio.run(self._drain(until, timeout, received if received is not None else []))

    async def _drain(
        self, until: Callable[[list[Received]], bool], seconds: float, received: list[Received]
    ) -> list[Received]:
        deadline = time.monotonic() + seconds
        while not until(received) and time.monotonic() < deadline:
            try:
                connection = await aio_pika.connect(self.url, timeout=5)
            except Exception:
                await asyncio.sleep(0.5)
                continue
            async with connection:
                channel = await connection.channel()
                queue = await channel.get_queue(self.name, ensure=True)
                while not until(received) and time.monotonic() < deadline:
                    message = await queue.get(no_ack=False, fail=False, timeout=5)
                    if message is None:
                        await asyncio.sleep(0.1)
                        continue
                    received.append(
                        Received(
                            message.routing_key or "",
                            {
                                "content_type": message.content_type,
                                "delivery_mode": int(message.delivery_mode or 0),
                                "message_id": message.message_id,
                                "type": message.type,
                                "correlation_id": message.correlation_id,
                            },
                            json.loads(message.body),
                        )
                    )
                    await message.ack()
        return received

    def delete(self) -> None:
        async def remove() -> None:
            connection = await aio_pika.connect(self.url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(self.name)

        asyncio.run(remove())


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def stop_broker() -> None:
    rabbitmqctl("stop_app")


def start_broker() -> None:
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")


@contextmanager
def fresh_vhost() -> Iterator[str]:
    """The URL of a new, empty virtual host: a stack of its own, whose builders consume only
    its requests (the queue name is fixed by the contract). It is deleted afterwards: a
    broker recovers every virtual host it holds at each start."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"{AMQP_URL.rstrip('/')}/{name}"
    finally:
        with suppress(subprocess.SubprocessError):
            rabbitmqctl("delete_vhost", name)
