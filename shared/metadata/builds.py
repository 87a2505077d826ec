"""Builds in MongoDB: status, timestamps, result, logs, and who is working on them.

``builds`` documents: ``{_id: "<space>/<build_id>", space, build_id, status, request,
created_at, started_at, finished_at, result, error, logs, owner, lease_until,
cancel_requested, correlation_id, reply_to, command_id, submitted_by, listing_key}``, read back
as ``BuildRecord``. A build is named by its space and
id together, in every query: the same ``build_id`` in two spaces is two builds, and nothing
done for one space reads or writes another's. ``request`` never holds sensitive values (only
their names); ``command_id`` is the id of the registry's command that queued the build.

A build is worked on by the builder that holds its lease; a redelivered request finds the
document and either waits for that builder, takes a lapsed lease over, or answers with the
result it already has: ``build_id`` makes requests idempotent within a space. Every change of
``status`` is a move the lifecycle allows (``shared.builds.lifecycle``), made by one
compare-and-set in a transaction (``shared.metadata.connection.update_if``: the build read by
``_id``, its conditions checked, then written by ``_id``): of two writers racing to move a
build, one wins and the other is told. Every move names one build by ``_id`` alone and is
served by the ``_id`` index, whichever server runs it.

A space's builds are listed newest first by ``listing_key`` (``listing_key``: the creation
time in milliseconds, then the build id, so the order is total and a cursor is one string),
through an index on ``space`` and ``listing_key`` (with ``status`` between them when the list
is filtered). A page is read in windows of time, the latest first (``_LISTING_WINDOWS``): the
embedded server (SecantusDB) reads every key of the range an index gives before it applies a
limit, so one open range would read every older build of the space for each page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import DESCENDING, UpdateOne
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
from shared.metadata.connection import EPOCH, Guard, earlier, update_if
from shared.metadata.errors import SpaceMissing

Document = dict[str, Any]
MAX_LOG_LINES = 2000
Transaction = Callable[[Callable[[AsyncClientSession], Awaitable[Any]]], Awaitable[Any]]
# Where a page of the listing is read: from the key it continues after (or now), the keys
# that share its first digits of milliseconds, fewer each time: the same 10 s, 100 s, about
# 17 minutes, 3 hours, 28 hours, 12 days, 4 months, 3 years; then every build.
_LISTING_WINDOWS = (9, 8, 7, 6, 5, 4, 3, 2, 0)
# What a listing leaves out of each build: its log lines are read one build at a time.
_LISTED = {"logs": 0}
# Builds given their listing key per round trip when older ones are upgraded at start-up.
LISTING_KEY_BATCH = 1000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def listing_key(created_at: dt.datetime, build_id: str) -> str:
    """Where a build sorts in its space's listing: its creation in milliseconds since the
    epoch (13 digits, which last until the year 2286), then its id."""
    if created_at.tzinfo is None:  # read by a client that is not tz_aware: MongoDB keeps UTC
        created_at = created_at.replace(tzinfo=dt.UTC)
    millis = (created_at - EPOCH) // dt.timedelta(milliseconds=1)
    return f"{millis:013d}|{build_id}"


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
        "log_lines": 0,
        "cancel_requested": False,
        "listing_key": listing_key(now, build_id),
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
    logs: tuple[str, ...] = ()  # the last MAX_LOG_LINES lines
    log_lines: int = 0  # every line ever appended: the first kept is line log_lines - len(logs)
    owner: str | None = None  # the builder holding its lease
    lease_until: dt.datetime | None = None
    cancel_requested: bool = False
    correlation_id: str | None = None
    reply_to: str | None = None
    command_id: str | None = None  # the registry's command that queued it
    submitted_by: str | None = None
    listing_key: str | None = None  # None only until an older build is upgraded at start

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
            # a build older than the counter, or logged before it, counts what it kept
            log_lines=max(int(doc.get("log_lines") or 0), len(doc.get("logs") or ())),
            owner=doc.get("owner"),
            lease_until=doc.get("lease_until"),
            cancel_requested=bool(doc.get("cancel_requested")),
            correlation_id=doc.get("correlation_id"),
            reply_to=doc.get("reply_to"),
            command_id=doc.get("command_id"),
            submitted_by=doc.get("submitted_by"),
            listing_key=doc.get("listing_key"),
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
        await self.collection.create_index([("space", 1), ("listing_key", 1)])
        await self.collection.create_index([("space", 1), ("status", 1), ("listing_key", 1)])
        await self.upgrade()
        await self.key_for_listing()

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

    async def key_for_listing(self) -> int:
        """Give builds that have no ``listing_key`` (recorded before builds were listed, or
        since by an instance of an older version) theirs: a pass at every start, in batches.
        A key is written only where there still is none; the number of builds keyed."""
        keyed = 0
        # no index: one read-only pass at start, which finds nothing once every build has a key
        cursor = self.collection.find(
            {"listing_key": {"$exists": False}},
            {"build_id": 1, "created_at": 1},
            batch_size=LISTING_KEY_BATCH,
        )
        batch: list[UpdateOne] = []
        async for doc in cursor:
            created_at = doc.get("created_at")
            if not isinstance(created_at, dt.datetime) or not isinstance(doc.get("build_id"), str):
                continue  # not upgraded to space-named builds yet: the next start keys it
            key = listing_key(created_at, doc["build_id"])
            # index: _id_
            batch.append(
                UpdateOne(
                    {"_id": doc["_id"], "listing_key": {"$exists": False}},
                    {"$set": {"listing_key": key}},
                )
            )
            if len(batch) == LISTING_KEY_BATCH:
                keyed += (await self.collection.bulk_write(batch, ordered=False)).modified_count
                batch = []
        if batch:
            keyed += (await self.collection.bulk_write(batch, ordered=False)).modified_count
        return keyed

    async def newest(
        self, space: str, *, status: BuildStatus | None, before: str | None, limit: int
    ) -> list[BuildRecord]:
        """Up to ``limit`` builds of ``space`` (with ``status``, when given), newest first,
        after the one whose ``listing_key`` is ``before``; without their log lines.

        The page is read in windows of time going back from ``before`` (or from now), each one
        bounded range of the index, until it is full. The first page's first window has no
        upper bound: a build stamped by a clock ahead of this one's is still listed."""
        start = before if before is not None else listing_key(_now(), "")
        lowers = list(dict.fromkeys(start[:length] for length in _LISTING_WINDOWS))
        found: list[Document] = []
        upper = before
        for lower in lowers:
            found += await self._listed_between(space, status, lower, upper, limit - len(found))
            if len(found) >= limit:
                break
            upper = lower
        return [BuildRecord.from_document(doc) for doc in found]

    async def _listed_between(
        self, space: str, status: BuildStatus | None, lower: str, upper: str | None, limit: int
    ) -> list[Document]:
        """Builds with ``lower <= listing_key < upper``, newest first."""
        # From "" (excluded): only strings, so a build not yet keyed is never read as a key.
        keys: Document = {"$gte": lower} if lower else {"$gt": ""}
        if upper is not None:
            keys["$lt"] = upper
        query: Document = {"space": space}
        if status is not None:
            query["status"] = status.value
        query["listing_key"] = keys
        # index: builds space_1_listing_key_1, or with the status filter
        # builds space_1_status_1_listing_key_1 (walked backwards: newest first)
        cursor = self.collection.find(query, _LISTED).sort("listing_key", DESCENDING)
        return [doc async for doc in cursor.limit(limit)]

    async def get(self, space: str, build_id: str) -> BuildRecord | None:
        # index: _id_
        return _record(await self.collection.find_one({"_id": build_key(space, build_id)}))

    async def create(
        self, doc: Document, events: Sequence[CloudEvent] = (), *, exchange: str = EVENTS_EXCHANGE
    ) -> tuple[BuildRecord, bool]:
        """Insert the build (with its events, in one transaction) unless one with its id
        exists; the stored build and whether this call created it. SpaceMissing when its
        space does not exist."""

        async def insert(session: AsyncClientSession) -> None:
            # The space's document is written too: of this and the space's deletion (which
            # takes its builds with it), whichever commits second sees the other, so no build
            # is left under the id of a space that is gone (and could be made again).
            # index: _id_
            space = await self.collection.database.spaces.update_one(
                {"_id": doc["space"]}, {"$inc": {"builds_stamp": 1}}, session=session
            )
            if space.matched_count == 0:
                raise SpaceMissing(doc["space"])
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
                {
                    "$push": {"logs": {"$each": list(lines), "$slice": -MAX_LOG_LINES}},
                    "$inc": {"log_lines": len(lines)},
                },
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
