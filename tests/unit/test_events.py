"""Event envelopes and topic routing (pure)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from shared.events.bus import InProcessBus, Outgoing, topic_matches
from shared.events.envelope import image_event, image_reference


@pytest.mark.parametrize(
    ("binding", "key", "expected"),
    [
        ("image.pushed", "image.pushed", True),
        ("image.*", "image.pushed", True),
        ("image.*", "image", False),
        ("image.*", "image.pushed.extra", False),
        ("image.#", "image", True),
        ("image.#", "image.pushed.extra", True),
        ("#", "anything.at.all", True),
        ("#.completed", "retention.completed", True),
        ("*.completed", "build.retention.completed", False),
        ("build.*", "image.pushed", False),
    ],
)
def test_topic_matching(binding: str, key: str, expected: bool) -> None:
    assert topic_matches(binding, key) is expected


def test_references_use_the_public_host() -> None:
    assert image_reference("r.example:443", "spaces-1/app", "1.0", "sha256:ab") == (
        "r.example:443/spaces-1/app:1.0@sha256:ab"
    )
    assert image_reference("r.example", "spaces-1/app", None, "sha256:ab") == (
        "r.example/spaces-1/app@sha256:ab"
    )


def test_an_image_event_is_a_cloudevent() -> None:
    moment = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    event = image_event(
        "image.deleted",
        source="https://r.example/v2",
        public_host="r.example",
        repository="spaces-2/web/api",
        tag=None,
        digest="sha256:ab",
        media_type=None,
        size=None,
        actor="spacedock-reaper",
        moment=moment,
    )
    document = json.loads(event.body())
    assert document["type"] == "io.spacedock.image.deleted" and event.kind == "image.deleted"
    assert document["specversion"] == "1.0" and document["id"] == event.id
    assert document["time"] == "2026-11-22T12:00:00Z"
    assert document["data"]["space"] == "spaces-2"
    assert document["data"]["deleted_by"] == "spacedock-reaper"
    assert document["data"]["deleted_at"] == "2026-11-22T12:00:00Z"
    assert document["subject"] == "r.example/spaces-2/web/api@sha256:ab"


async def test_the_in_process_bus_routes_by_exchange_and_topic() -> None:
    bus = InProcessBus()
    got: list[str] = []

    async def handler(message: Outgoing) -> None:
        got.append(message.routing_key)

    bus.subscribe("spacedock.events", "image.*", handler)
    for exchange, key in (
        ("spacedock.events", "image.pushed"),
        ("spacedock.events", "build.started"),
        ("spacedock.commands", "image.pushed"),
    ):
        await bus.publish(Outgoing(exchange, key, b"{}", "id", "t"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert got == ["image.pushed"]
    await bus.close()
