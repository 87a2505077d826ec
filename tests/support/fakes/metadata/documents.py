"""What every in-memory repository shares: the collections, the transaction that snapshots
and restores them, the outbox, and the clock."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.metadata.connection import Document
from tests.support.fakes.builds import Recorded

T = TypeVar("T")
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class Collections:
    """Every document the fakes hold, by collection and ``_id`` (as the real ones key them),
    and the outbox's events in order: what a transaction snapshots and restores."""

    spaces: dict[str, Document] = field(default_factory=dict)
    repositories: dict[str, Document] = field(default_factory=dict)
    manifests: dict[str, Document] = field(default_factory=dict)
    tags: dict[str, Document] = field(default_factory=dict)
    uploads: dict[str, Document] = field(default_factory=dict)
    blobs: dict[str, Document] = field(default_factory=dict)
    blob_links: dict[str, Document] = field(default_factory=dict)
    users: dict[str, Document] = field(default_factory=dict)
    memberships: dict[str, Document] = field(default_factory=dict)
    api_keys: dict[str, Document] = field(default_factory=dict)
    events: list[Recorded] = field(default_factory=list)

    def restore(self, snapshot: Collections) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(snapshot, name))


Work = Callable[[Any], Awaitable[T]]


class Transactions:
    """``MetadataStore.transaction``: all of ``work`` or, when it raises, none of it."""

    def __init__(self, data: Collections) -> None:
        self._data = data
        self._lock = asyncio.Lock()

    async def __call__(self, work: Work[T]) -> T:
        async with self._lock:
            snapshot = copy.deepcopy(self._data)
            try:
                return await work(None)
            except BaseException:
                self._data.restore(snapshot)
                raise


class InMemoryEventOutbox:
    """``Outbox.add``: events kept in order with their exchange and routing key, undone with
    the transaction they were added in."""

    def __init__(self, data: Collections) -> None:
        self._data = data

    async def add(
        self,
        events: Sequence[CloudEvent],
        *,
        session: object = None,
        exchange: str = EVENTS_EXCHANGE,
        routing_key: str | None = None,
    ) -> None:
        self._data.events += [Recorded(e, exchange, routing_key or e.kind) for e in events]

    def events(self, kind: str | None = None) -> list[CloudEvent]:
        """The events recorded (of ``kind`` only, when given), in order."""
        return [r.event for r in self._data.events if kind is None or r.event.kind == kind]


def link_id(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"
