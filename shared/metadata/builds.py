"""Builds in MongoDB: status, timestamps, result, logs, and who is working on them.

``builds`` documents: ``{_id: "<space>/<build_id>", space, build_id, status, request,
created_at, started_at, finished_at, result, error, logs, owner, lease_until,
cancel_requested, correlation_id, reply_to, command_id, submitted_by}``, read back as
``BuildRecord``. A build is named by its space and
id together, in every query: the same ``build_id`` in two spaces is two builds, and nothing
done for one space reads or writes another's. ``request`` never holds sensitive values (only
their names); ``command_id`` is the id of the registry's command that queued the build.

A build is worked on by the builder that holds its lease; a redelivered request finds the
document and either waits for that builder, takes a lapsed lease over, or answers with the
result it already has: ``build_id`` makes requests idempotent within a space. Every change of
``status`` is a move the lifecycle allows (``shared.builds.lifecycle``), made by one
compare-and-set in a transaction (``shared.metadata.connection.update_if``: the build read by
``_id``, its conditions checked, then written by ``_id``): of two writers racing to move a
build, one wins and the other is told. Every query names one build by ``_id`` alone and is
served by the ``_id`` index, whichever server runs it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.build_requests import build_key
from shared.builds.lifecycle import (
    UNFINISHED,
    BuildStatus,
    Outcome,
    statuses_before,
)
from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.events.outbox import Outbox
from shared.metadata.connection import Guard, earlier, update_if

Document = dict[str, Any]
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
        "status": BuildStatus.QUEUED.value,
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


@dataclass(frozen=True, slots=True)
class BuildRecord:
    """A build as stored: ``result`` and ``error`` are the lifecycle's renderings."""

    space: str
    build_id: str
    status: BuildStatus
    request: Document | None = None  # without sensitive values
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    result: Document | None = None
    error: Document | None = None
    logs: tuple[str, ...] = ()
    owner: str | None = None  # the builder holding its lease
    lease_until: dt.datetime | None = None
    cancel_requested: bool = False
    correlation_id: str | None = None
    reply_to: str | None = None
    command_id: str | None = None  # the registry's command that queued it
    submitted_by: str | None = None

    @property
    def key(self) -> str:
        return build_key(self.space, self.build_id)

    @classmethod
    def from_document(cls, doc: Document) -> BuildRecord:
        return cls(
            space=doc["space"],
            build_id=doc["build_id"],
            status=BuildStatus(doc["status"]),
            request=doc.get("request"),
            created_at=doc.get("created_at"),
            started_at=doc.get("started_at"),
            finished_at=doc.get("finished_at"),
            result=doc.get("result"),
            error=doc.get("error"),
            logs=tuple(doc.get("logs") or ()),
            owner=doc.get("owner"),
            lease_until=doc.get("lease_until"),
            cancel_requested=bool(doc.get("cancel_requested")),
            correlation_id=doc.get("correlation_id"),
            reply_to=doc.get("reply_to"),
            command_id=doc.get("command_id"),
            submitted_by=doc.get("submitted_by"),
        )


def _record(doc: Document | None) -> BuildRecord | None:
    return None if doc is None else BuildRecord.from_document(doc)


def _running_for(owner: str) -> Guard:
    """The build is running under ``owner``'s lease (lapsed or not: nobody took it over)."""
    return lambda doc: doc.get("status") == BuildStatus.RUNNING.value and doc.get("owner") == owner


def refused_build(outcome: Outcome) -> Document:
    """The document of a request refused before it was a build: born finished, with the
    space and id its result names."""
    return new_build(
        outcome.data["space"],
        outcome.data["build_id"],
        None,
        status=outcome.status.value,
        finished_at=_now(),
        **outcome.fields(),
    )


class BuildRepository(Protocol):
    """The builds aggregate as its users see it (the builder's worker, the management API):
    ``BuildStore`` in MongoDB, an in-memory fake in unit tests. Each method is one atomic
    move of one build, named by its space and id; a move whose conditions do not hold
    changes nothing and answers None or False."""

    async def get(self, space: str, build_id: str) -> BuildRecord | None: ...

    async def create(
        self, doc: Document, events: Sequence[CloudEvent] = (), *, exchange: str = EVENTS_EXCHANGE
    ) -> tuple[BuildRecord, bool]: ...

    async def attach_reply(
        self, space: str, build_id: str, correlation_id: str | None, reply_to: str | None
    ) -> BuildRecord | None: ...

    async def claim(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> BuildRecord | None: ...

    async def renew(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> BuildRecord | None: ...

    async def append_logs(self, space: str, build_id: str, lines: Sequence[str]) -> None: ...

    async def finish(
        self,
        space: str,
        build_id: str,
        owner: str | None,
        outcome: Outcome,
        events: Sequence[CloudEvent],
    ) -> bool: ...

    async def request_cancel(self, space: str, build_id: str) -> BuildRecord | None: ...


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
        # no index: a scan, once per start (and finds nothing once every build is upgraded)
        old = self.collection.find({"build_id": {"$exists": False}}, {"_id": 1, "space": 1})
        for doc in [doc async for doc in old]:

            async def move(session: AsyncClientSession, old_id: Any = doc["_id"]) -> bool:
                # index: _id_ (each query of the move)
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

    async def get(self, space: str, build_id: str) -> BuildRecord | None:
        # index: _id_
        return _record(await self.collection.find_one({"_id": build_key(space, build_id)}))

    async def create(
        self, doc: Document, events: Sequence[CloudEvent] = (), *, exchange: str = EVENTS_EXCHANGE
    ) -> tuple[BuildRecord, bool]:
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
        return BuildRecord.from_document(doc), True

    async def attach_reply(
        self, space: str, build_id: str, correlation_id: str | None, reply_to: str | None
    ) -> BuildRecord | None:
        """Have the build's result also sent to ``reply_to`` when no requester asked yet."""
        return await self._update(
            build_key(space, build_id),
            lambda doc: doc.get("reply_to") is None,
            {"$set": {"correlation_id": correlation_id, "reply_to": reply_to}},
        )

    async def claim(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> BuildRecord | None:
        """Take the build when it is queued, or running under a lease that lapsed."""
        now = _now()

        def claimable(doc: Document) -> bool:
            if doc.get("cancel_requested") is True:
                return False
            status = doc.get("status")
            return status == BuildStatus.QUEUED.value or (
                status == BuildStatus.RUNNING.value and earlier(doc.get("lease_until"), now)
            )

        return await self._update(
            build_key(space, build_id),
            claimable,
            {
                "$set": {
                    "status": BuildStatus.RUNNING.value,
                    "owner": owner,
                    "lease_until": now + lease,
                    "started_at": now,
                }
            },
        )

    async def renew(
        self, space: str, build_id: str, owner: str, lease: dt.timedelta
    ) -> BuildRecord | None:
        """Extend the lease; the build as it stands (None if another owner has it)."""
        return await self._update(
            build_key(space, build_id),
            _running_for(owner),
            {"$set": {"lease_until": _now() + lease}},
        )

    async def append_logs(self, space: str, build_id: str, lines: Sequence[str]) -> None:
        if lines:
            # index: _id_
            await self.collection.update_one(
                {"_id": build_key(space, build_id)},
                {"$push": {"logs": {"$each": list(lines), "$slice": -MAX_LOG_LINES}}},
            )

    async def finish(
        self,
        space: str,
        build_id: str,
        owner: str | None,
        outcome: Outcome,
        events: Sequence[CloudEvent],
    ) -> bool:
        """Record the outcome with its events in one transaction; False when the build is
        no longer this owner's (taken over), or cannot end so (already finished)."""

        before = statuses_before(outcome.status)

        def may_finish(doc: Document) -> bool:
            return doc.get("status") in before and (owner is None or doc.get("owner") == owner)

        async def record(session: AsyncClientSession) -> bool:
            finished = await update_if(
                self.collection,
                build_key(space, build_id),
                may_finish,
                {
                    "$set": {
                        "status": outcome.status.value,
                        "finished_at": _now(),
                        **outcome.fields(),
                    }
                },
                session,
            )
            if finished is None:
                return False
            await self.outbox.add(events, session=session)
            return True

        return bool(await self._transaction(record))

    async def request_cancel(self, space: str, build_id: str) -> BuildRecord | None:
        """Mark the build cancelled when queued, or ask its builder to stop when running."""
        unfinished = {status.value for status in UNFINISHED}
        return await self._update(
            build_key(space, build_id),
            lambda doc: doc.get("status") in unfinished,
            {"$set": {"cancel_requested": True}},
        )

    async def _update(self, key: str, guard: Guard, update: Document) -> BuildRecord | None:
        """The build after ``update``, when ``guard`` held for it (a compare-and-set in a
        transaction of its own)."""

        async def work(session: AsyncClientSession) -> Document | None:
            return await update_if(self.collection, key, guard, update, session)

        return _record(await self._transaction(work))
