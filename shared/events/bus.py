"""Where events go: RabbitMQ with publisher confirms, or an in-process bus when
``SPACEDOCK_AMQP_URL`` is unset (``make run``). Both take the same messages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from shared.events.envelope import COMMANDS_EXCHANGE, CONTENT_TYPE, EVENTS_EXCHANGE

log = structlog.get_logger("spacedock.events")
PUBLISH_TIMEOUT_SECONDS = 10.0


class BusUnavailable(Exception):
    """The message was not confirmed; it must be published again later."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    exchange: str
    routing_key: str
    body: bytes
    message_id: str
    type: str
    correlation_id: str | None = None
    content_type: str = CONTENT_TYPE


class EventBus(Protocol):
    async def publish(self, message: Outgoing) -> None:
        """Return once the message is safely with the bus; raise BusUnavailable otherwise."""

    async def close(self) -> None: ...


class AmqpBus:
    """RabbitMQ: durable exchanges, persistent messages, each publish confirmed."""

    def __init__(self, url: str, timeout: float = PUBLISH_TIMEOUT_SECONDS) -> None:
        self._url = url
        self._timeout = timeout
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connecting = asyncio.Lock()

    async def _exchange(self, name: str) -> AbstractExchange:
        async with self._connecting:
            if self._channel is None or self._channel.is_closed:
                if self._connection is None or self._connection.is_closed:
                    self._connection = await aio_pika.connect_robust(
                        self._url, timeout=self._timeout
                    )
                self._channel = await self._connection.channel(publisher_confirms=True)
                self._exchanges = {}
                await declare_topology(self._channel)
            exchange = self._exchanges.get(name)
            if exchange is None:
                if name == "":  # the default exchange: routing key = queue name
                    exchange = self._channel.default_exchange
                else:
                    exchange = await self._channel.get_exchange(name, ensure=False)
                self._exchanges[name] = exchange
            return exchange

    async def publish(self, message: Outgoing) -> None:
        try:
            exchange = await asyncio.wait_for(self._exchange(message.exchange), self._timeout)
            await exchange.publish(
                aio_pika.Message(
                    message.body,
                    content_type=message.content_type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=message.message_id,
                    type=message.type,
                    correlation_id=message.correlation_id,
                ),
                routing_key=message.routing_key,
                timeout=self._timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure means "not confirmed": publish again later
            raise BusUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()


async def consume_queue(
    url: str,
    queue_name: str,
    exchange: str,
    routing_key: str,
    prefetch: int,
    handle: Callable[[AbstractIncomingMessage], Awaitable[None]],
) -> None:
    """Consume a durable queue bound to ``exchange`` until cancelled, waiting for the broker
    as long as it takes. A message is acknowledged once ``handle`` returns, and requeued when
    it raises, so a consumer that dies mid-message leaves it to another."""
    while True:
        try:
            connection = await aio_pika.connect_robust(url)
            break
        except Exception as exc:  # connect_robust only reconnects once it has connected
            log.warning("amqp_unreachable", error=str(exc)[:200])
            await asyncio.sleep(2)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        await declare_topology(channel)
        queue = await channel.declare_queue(queue_name, durable=True)
        await queue.bind(exchange, routing_key)

        async def on_message(message: AbstractIncomingMessage) -> None:
            async with message.process(requeue=True, ignore_processed=True):
                await handle(message)

        await queue.consume(on_message)
        await asyncio.Future()


async def declare_topology(channel: aio_pika.abc.AbstractChannel) -> None:
    """The exchanges of PRODUCT.md §7, declared by whoever connects first."""
    await channel.declare_exchange(EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    await channel.declare_exchange(COMMANDS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)


Handler = Callable[[Outgoing], Awaitable[None]]


class InProcessBus:
    """Topic routing inside one process, for ``spacedock serve`` without RabbitMQ. A
    subscriber's handler runs in its own task; the bus keeps nothing once delivered."""

    def __init__(self) -> None:
        self._subscriptions: list[tuple[str, str, Handler]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, exchange: str, binding_key: str, handler: Handler) -> None:
        self._subscriptions.append((exchange, binding_key, handler))

    async def publish(self, message: Outgoing) -> None:
        for exchange, binding_key, handler in self._subscriptions:
            if exchange == message.exchange and topic_matches(binding_key, message.routing_key):
                task = asyncio.ensure_future(self._deliver(handler, message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _deliver(handler: Handler, message: Outgoing) -> None:
        try:
            await handler(message)
        except Exception:
            log.exception("in_process_handler_failed", routing_key=message.routing_key)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def topic_matches(binding_key: str, routing_key: str) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` is zero or more words."""
    return _matches(binding_key.split("."), routing_key.split("."))


def _matches(binding: list[str], words: list[str]) -> bool:
    if not binding:
        return not words
    head, rest = binding[0], binding[1:]
    if head == "#":
        return any(_matches(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return head in ("*", words[0]) and _matches(rest, words[1:])
