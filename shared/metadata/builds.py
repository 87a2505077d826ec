"""Builds in MongoDB: status, timestamps, result, logs, and who is working on them.

``builds`` documents: ``{_id: build_id, space, status, request, created_at, started_at,
finished_at, result, error, logs, owner, lease_until, cancel_requested, correlation_id,
reply_to}``. ``request`` never holds sensitive values (only their names).

A build is worked on by the builder that holds its lease; a redelivered request finds the
document and either waits for that builder, takes a lapsed lease over, or answers with the
result it already has: ``build_id`` makes requests idempotent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.events.outbox import Outbox

Document = dict[str, Any]
TERMINAL = ("succeeded", "failed", "cancelled")
MAX_LOG_LINES = 2000
Transaction = Callable[[Callable[[AsyncClientSession], Awaitable[Any]]], Awaitable[Any]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_build(build_id: str, space: str, request: Document | None, **fields: Any) -> Document:
    """A build document as it starts (queued), with ``fields`` set over the defaults.
    ``request`` is the request as it may be shown: never with sensitive values."""
    now = _now()
    return {
        "_id": build_id,
        "space": space,
        "status": "queued",
        "request": request,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "result": None,
        "error": None,
        "logs": [],
        "cancel_requested": False,
        **fields,
    }


class BuildStore:
    def __init__(
        self, db: AsyncDatabase[Document], outbox: Outbox, transaction: Transaction
    ) -> None:
        self.collection = db.builds
        self.outbox = outbox
        self._transaction = transaction

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("space")
        await self.collection.create_index("status")

    async def get(self, build_id: str) -> Document | None:
        return await self.collection.find_one({"_id": build_id})

    async def create(
        self, doc: Document, events: Sequence[CloudEvent] = (), *, exchange: str = EVENTS_EXCHANGE
    ) -> tuple[Document, bool]:
        """Insert the build (with its events, in one transaction) unless one with its id
        exists; the stored build and whether this call created it."""

        async def insert(session: AsyncClientSession) -> None:
            await self.collection.insert_one(doc, session=session)
            await self.outbox.add(events, session=session, exchange=exchange)

        try:
            await self._transaction(insert)
        except DuplicateKeyError:
            existing = await self.get(doc["_id"])
            assert existing is not None
            return existing, False
        return doc, True

    async def claim(self, build_id: str, owner: str, lease: dt.timedelta) -> Document | None:
        """Take the build when it is queued, or running under a lease that lapsed."""
        now = _now()
        return await self.collection.find_one_and_update(
            {
                "_id": build_id,
                "$or": [
                    {"status": "queued"},
                    {"status": "running", "lease_until": {"$lt": now}},
                ],
                "cancel_requested": {"$ne": True},
            },
            {
                "$set": {
                    "status": "running",
                    "owner": owner,
                    "lease_until": now + lease,
                    "started_at": now,
                }
            },
            return_document=ReturnDocument.AFTER,
        )

    async def renew(self, build_id: str, owner: str, lease: dt.timedelta) -> Document | None:
        """Extend the lease; the build as it stands (None if another owner has it)."""
        return await self.collection.find_one_and_update(
            {"_id": build_id, "owner": owner, "status": "running"},
            {"$set": {"lease_until": _now() + lease}},
            return_document=ReturnDocument.AFTER,
        )

    async def append_logs(self, build_id: str, lines: Sequence[str]) -> None:
        if lines:
            await self.collection.update_one(
                {"_id": build_id},
                {"$push": {"logs": {"$each": list(lines), "$slice": -MAX_LOG_LINES}}},
            )

    async def finish(
        self,
        build_id: str,
        owner: str | None,
        status: str,
        fields: Document,
        events: Sequence[CloudEvent],
    ) -> bool:
        """Record the outcome with its events in one transaction; False when the build is
        no longer this owner's (taken over, or already finished)."""

        async def record(session: AsyncClientSession) -> bool:
            query: Document = {"_id": build_id, "status": {"$nin": list(TERMINAL)}}
            if owner is not None:
                query["owner"] = owner
            result = await self.collection.update_one(
                query,
                {"$set": {"status": status, "finished_at": _now(), **fields}},
                session=session,
            )
            if result.modified_count != 1:
                return False
            await self.outbox.add(events, session=session)
            return True

        return bool(await self._transaction(record))

    async def request_cancel(self, build_id: str) -> Document | None:
        """Mark the build cancelled when queued, or ask its builder to stop when running."""
        return await self.collection.find_one_and_update(
            {"_id": build_id, "status": {"$in": ["queued", "running"]}},
            {"$set": {"cancel_requested": True}},
            return_document=ReturnDocument.AFTER,
        )
