"""Builds and their outbox in memory, with ``BuildStore``'s semantics (shared/metadata/builds.py).

A build is named by its space and id together; ``create`` inserts only a build whose name is
free, with its events, or answers the stored one; ``claim`` takes a queued build, or a running
one whose lease lapsed, unless a cancellation was asked; ``renew`` keeps only the owner's
running build; ``finish`` moves a build only from the statuses the lifecycle allows the
outcome from (and, given an owner, only that owner's), and records its events with it.
Each method changes one build as one step with no await in between, as each of the store's
conditional updates and transactions is atomic. Documents are copied in and out: a caller
never holds the stored one.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.build_requests import build_key
from shared.builds.lifecycle import UNFINISHED, BuildStatus, Outcome, statuses_before
from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.metadata.builds import MAX_LOG_LINES, BuildRecord, Document
from shared.metadata.errors import SpaceMissing

Clock = Callable[[], dt.datetime]


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as the outbox holds it: where the relay will publish it, under which key."""

    event: CloudEvent
    exchange: str
    routing_key: str


class InMemoryOutbox:
    """``Outbox.add``: events kept in order, each with its exchange and routing key."""

    def __init__(self) -> None:
        self.recorded: list[Recorded] = []

    async def add(
        self,
        events: Sequence[CloudEvent],
        *,
        exchange: str = EVENTS_EXCHANGE,
        routing_key: str | None = None,
    ) -> None:
        self.recorded += [Recorded(e, exchange, routing_key or e.kind) for e in events]

    def events(self, kind: str | None = None) -> list[CloudEvent]:
        """The events recorded (of ``kind`` only, when given), in order."""
        return [r.event for r in self.recorded if kind is None or r.event.kind == kind]


class InMemoryBuildStore:
    def __init__(self, outbox: InMemoryOutbox, now: Clock = _system_clock) -> None:
        self.outbox = outbox
        self.documents: dict[str, Document] = {}
        # Spaces deleted (or never made): a build is created only in a space that exists.
        self.missing_spaces: set[str] = set()
        self._now = now

    async def get(self, space: str, build_id: str) -> BuildRecord | None:
        return self._record(build_key(space, build_id))

    async def create(
        self, doc: Document, events: Sequence[CloudEvent] = (), *, exchange: str = EVENTS_EXCHANGE
    ) -> tuple[BuildRecord, bool]:
        if doc["space"] in self.missing_spaces:
            raise SpaceMissing(doc["space"])
        key = doc["_id"]
        existing = self._record(key)
        if existing is not None:
            return existing, False
        self.documents[key] = copy.deepcopy(doc)
        await self.outbox.add(events, exchange=exchange)
        return BuildRecord.from_document(doc), True

    async def attach_reply(
        self, space: str, build_id: str, correlation_id: str | None, reply_to: str | None
    ) -> BuildRecord | None:
        return self._update(
            build_key(space, build_id),
            lambda doc: doc.get("reply_to") is None,
            correlation_id=correlation_id,
            reply_to=reply_to,
        )

    async def claim(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> BuildRecord | None:
        now = self._now()

        def claimable(doc: Document) -> bool:
            if doc.get("cancel_requested") is True:
                return False
            until = doc.get("lease_until")
            lapsed = until is not None and until < now
            return doc["status"] == BuildStatus.QUEUED or (
                doc["status"] == BuildStatus.RUNNING and lapsed
            )

        return self._update(
            build_key(space, build_id),
            claimable,
            status=BuildStatus.RUNNING.value,
            owner=owner,
            lease_until=now + lease,
            started_at=now,
        )

    async def renew(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> BuildRecord | None:
        return self._update(
            build_key(space, build_id),
            lambda doc: doc.get("owner") == owner and doc["status"] == BuildStatus.RUNNING,
            lease_until=self._now() + lease,
        )

    async def append_logs(self, space: str, build_id: str, lines: Sequence[str]) -> None:
        doc = self.documents.get(build_key(space, build_id))
        if lines and doc is not None:
            doc["logs"] = [*doc.get("logs", []), *lines][-MAX_LOG_LINES:]

    async def finish(
        self,
        space: str,
        build_id: str,
        owner: str | None,
        outcome: Outcome,
        events: Sequence[CloudEvent],
    ) -> bool:
        moved = self._update(
            build_key(space, build_id),
            lambda doc: (
                doc["status"] in statuses_before(outcome.status)
                and (owner is None or doc.get("owner") == owner)
            ),
            status=outcome.status.value,
            finished_at=self._now(),
            **outcome.fields(),
        )
        if moved is None:
            return False
        await self.outbox.add(events)
        return True

    async def request_cancel(self, space: str, build_id: str) -> BuildRecord | None:
        return self._update(
            build_key(space, build_id),
            lambda doc: doc["status"] in UNFINISHED,
            cancel_requested=True,
        )

    def _record(self, key: str) -> BuildRecord | None:
        doc = self.documents.get(key)
        return None if doc is None else BuildRecord.from_document(copy.deepcopy(doc))

    def _update(
        self, key: str, matches: Callable[[Document], bool], **fields: Any
    ) -> BuildRecord | None:
        """The build after ``fields`` are set, when it exists and ``matches``."""
        doc = self.documents.get(key)
        if doc is None or not matches(doc):
            return None
        doc.update(copy.deepcopy(fields))
        return self._record(key)


class InMemoryBuildMetadata:
    """What the builder's worker keeps in metadata: the builds, and the outbox they share."""

    def __init__(self, now: Clock = _system_clock) -> None:
        self.outbox = InMemoryOutbox()
        self.builds = InMemoryBuildStore(self.outbox, now)
