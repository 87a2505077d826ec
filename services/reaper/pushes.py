"""``image.pushed`` events, as the reaper hears them: a deployment tag arriving makes its
space's retention due (``keep_last`` counts it at once).

Over RabbitMQ the reapers share one durable queue, ``spacedock.reaper.pushes``, bound to
``image.pushed`` on ``spacedock.events``; marking a space due is idempotent, so a redelivered
or duplicated event does no harm.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage

from shared.events.bus import EventBus, InProcessBus, Outgoing, consume_queue
from shared.events.envelope import EVENTS_EXCHANGE
from shared.metadata.ports import ReaperMetadata
from shared.retention import PolicyInvalid, RetentionPolicy
from shared.settings import Settings

log = structlog.get_logger("spacedock.reaper")

QUEUE = "spacedock.reaper.pushes"
ROUTING_KEY = "image.pushed"


async def consume_pushes(
    settings: Settings, metadata: ReaperMetadata, bus: EventBus, wake: asyncio.Event
) -> None:
    """Until cancelled."""

    async def heard(body: bytes) -> None:
        if await _deployment_tag_pushed(metadata, body):
            wake.set()

    if settings.amqp_url:

        async def handle(message: AbstractIncomingMessage) -> None:
            await heard(message.body)

        await consume_queue(settings.amqp_url, QUEUE, EVENTS_EXCHANGE, ROUTING_KEY, 32, handle)
    elif isinstance(bus, InProcessBus):

        async def on_event(message: Outgoing) -> None:
            await heard(message.body)

        bus.subscribe(EVENTS_EXCHANGE, ROUTING_KEY, on_event)
        await asyncio.Future()


async def _deployment_tag_pushed(metadata: ReaperMetadata, body: bytes) -> bool:
    """Mark the space due when the event names a tag its policy counts; whether it did."""
    data = _data(body)
    space_id, tag = data.get("space"), data.get("tag")
    if not isinstance(space_id, str) or not isinstance(tag, str):
        return False
    space = await metadata.spaces.get(space_id)
    if space is None:
        return False
    try:
        policy = RetentionPolicy.parse(space.retention or {})
    except PolicyInvalid:
        return False
    if not policy.counts(tag):
        return False
    await metadata.runs.mark_due(space_id)
    log.info("deployment_tag_heard", space=space_id, tag=tag)
    return True


def _data(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    data = event.get("data") if isinstance(event, dict) else None
    return data if isinstance(data, dict) else {}
