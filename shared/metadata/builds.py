"""Builds in MongoDB: status, timestamps, result, logs, and who is working on them.

``builds`` documents: ``{_id: "<space>/<build_id>", space, build_id, status, request,
created_at, started_at, finished_at, result, error, logs, owner, lease_until,
cancel_requested, correlation_id, reply_to, command_id}``. A build is named by its space and
id together, in every query: the same ``build_id`` in two spaces is two builds, and nothing
done for one space reads or writes another's. ``request`` never holds sensitive values (only
their names); ``command_id`` is the id of the registry's command that queued the build.

A build is worked on by the builder that holds its lease; a redelivered request finds the
document and either waits for that builder, takes a lapsed lease over, or answers with the
result it already has: ``build_id`` makes requests idempotent within a space.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.build_requests import build_key
from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.events.outbox import Outbox

Document = dict[str, Any]
TERMINAL = ("succeeded", "failed", "cancelled")
MAX_LOG_LINES = 2000
Transaction = Callable[[Callable[[AsyncClientSession], Awaitable[Any]]], Awaitable[Any]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_build(space: str, build_id: str, request: Document | None, **fields: Any) -> Document:
    """A build document as it starts (queued), with ``fields`` set over the defaults.
    ``request`` is the request as it may be shown: never with sensitive values."""
    now = _now()
    return {
        "_id": build_key(space, build_id),
        "space": space,
        "build_id": build_id,
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
        """Indexes, and documents of an older layout upgraded (at start)."""
        await self.collection.create_index("space")
        await self.collection.create_index("status")
        await self.upgrade()

    async def upgrade(self) -> int:
        """Move documents from before builds were named by space (``_id`` the bare build id,
        no ``build_id`` field) to ``<space>/<build_id>``. Each move is one transaction, and a
        move another process made first is skipped: a no-op once done; the number moved."""
        moved = 0
        old = self.collection.find({"build_id": {"$exists": False}}, {"_id": 1, "space": 1})
        for doc in [doc async for doc in old]:  # a scan, once per start; our own documents

            async def move(session: AsyncClientSession, old_id: Any = doc["_id"]) -> bool:
                current = await self.collection.find_one({"_id": old_id}, session=session)
                if current is None or "build_id" in current:
                    return False
                new_id = build_key(current["space"], old_id)
                await self.collection.delete_one({"_id": old_id}, session=session)
                if await self.collection.find_one({"_id": new_id}, {"_id": 1}, session=session):
                    return True  # a build of that name exists already: it stays, this one goes
                new = {**current, "_id": new_id, "build_id": old_id}
                await self.collection.insert_one(new, session=session)
                return True

            if isinstance(doc.get("space"), str) and isinstance(doc["_id"], str):
                moved += bool(await self._transaction(move))
        return moved

    async def get(self, space: str, build_id: str) -> Document | None:
        return await self.collection.find_one({"_id": build_key(space, build_id)})

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
            existing = await self.get(doc["space"], doc["build_id"])
            assert existing is not None
            return existing, False
        return doc, True

    async def attach_reply(
        self, space: str, build_id: str, correlation_id: str | None, reply_to: str | None
    ) -> Document | None:
        """Have the build's result also sent to ``reply_to`` when no requester asked yet."""
        return await self.collection.find_one_and_update(
            {"_id": build_key(space, build_id), "reply_to": None},
            {"$set": {"correlation_id": correlation_id, "reply_to": reply_to}},
            return_document=ReturnDocument.AFTER,
        )

    async def claim(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> Document | None:
        """Take the build when it is queued, or running under a lease that lapsed."""
        now = _now()
        return await self.collection.find_one_and_update(
            {
                "_id": build_key(space, build_id),
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

    async def renew(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> Document | None:
        """Extend the lease; the build as it stands (None if another owner has it)."""
        return await self.collection.find_one_and_update(
            {"_id": build_key(space, build_id), "owner": owner, "status": "running"},
            {"$set": {"lease_until": _now() + lease}},
            return_document=ReturnDocument.AFTER,
        )

    async def append_logs(self, space: str, build_id: str, lines: Sequence[str]) -> None:
        if lines:
            await self.collection.update_one(
                {"_id": build_key(space, build_id)},
                {"$push": {"logs": {"$each": list(lines), "$slice": -MAX_LOG_LINES}}},
            )

    async def finish(
        self,
        space: str,
        build_id: str,
        owner: str | None,
        status: str,
        fields: Document,
        events: Sequence[CloudEvent],
    ) -> bool:
        """Record the outcome with its events in one transaction; False when the build is
        no longer this owner's (taken over, or already finished)."""

        async def record(session: AsyncClientSession) -> bool:
            query: Document = {
                "_id": build_key(space, build_id),
                "status": {"$nin": list(TERMINAL)},
            }
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

    async def request_cancel(self, space: str, build_id: str) -> Document | None:
        """Mark the build cancelled when queued, or ask its builder to stop when running."""
        return await self.collection.find_one_and_update(
            {"_id": build_key(space, build_id), "status": {"$in": ["queued", "running"]}},
            {"$set": {"cancel_requested": True}},
            return_document=ReturnDocument.AFTER,
        )
