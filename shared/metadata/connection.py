"""The connection to MongoDB and its transactions, shared by every repository of the metadata
(one per aggregate: spaces, images, feed, pins, uploads, runs, blobs, builds, accounts).

PyMongo stays in this package: a repository returns typed records, takes a ``Session`` (a
transaction under way) where a caller composes several writes into one transaction, and
raises the errors of ``shared.metadata.errors`` for what a caller must tell apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.metadata.errors import MetadataUnavailable, TransactionsUnsupported

Document = dict[str, Any]
# A transaction under way, handed to the work that runs in it.
Session = AsyncClientSession
T = TypeVar("T")
Transaction = Callable[[Callable[[Session], Awaitable[T]]], Awaitable[T]]
# A condition on a document, checked here rather than by the server (see ``update_if``).
Guard = Callable[[Document], bool]
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
IDLE_CONNECTION_MS = 120_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_millis(moment: dt.datetime) -> dt.datetime:
    """What MongoDB keeps of a moment (milliseconds), so a key made from it matches it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def prefix_range(prefix: str) -> Document:
    """The strings that start with ``prefix``, as a range an index can bound (MongoDB compares
    strings byte by byte, and a prefix's last character here is never the largest one)."""
    return {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


def earlier(moment: object, bound: dt.datetime) -> bool:
    """Whether a stored ``moment`` is before ``bound``, as the filter ``{"$lt": bound}``
    matches it: a missing, null or non-date value never is. Either side without a zone (a
    client not ``tz_aware``) is taken as UTC, which is what MongoDB stores."""
    if not isinstance(moment, dt.datetime):
        return False
    return as_utc(moment) < as_utc(bound)


def same_moment(moment: object, other: dt.datetime) -> bool:
    """Whether a stored ``moment`` is ``other``, as the filter ``{"$eq": other}`` matches it
    (MongoDB keeps milliseconds; a side without a zone is taken as UTC)."""
    if not isinstance(moment, dt.datetime):
        return False
    return as_utc(moment) == as_utc(other)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """A stored time, as the UTC it is (a client that is not ``tz_aware`` reads it naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


# Compare-and-set by ``_id``. A filter of ``_id`` and a guard field is served by the ``_id``
# index on MongoDB, but the embedded server uses an index only when it covers every field of
# the filter, and otherwise reads the whole collection. So the document is read by ``_id``,
# the guard checked here, and the write made by ``_id``, in the caller's transaction: two
# transactions that read the document and both write it conflict, one commits, and the other
# runs again and checks the guard against the winner's write, so exactly one of them wins.


async def update_if(
    collection: AsyncCollection[Document],
    key: object,
    guard: Guard,
    update: Document,
    session: Session,
) -> Document | None:
    """Apply ``update`` to the document of ``_id`` ``key`` when ``guard`` holds for it; the
    document after, or None when it is missing or the guard refused (nothing written)."""
    if await _read_if(collection, key, guard, session) is None:
        return None
    # index: _id_
    return await collection.find_one_and_update(
        {"_id": key}, update, return_document=ReturnDocument.AFTER, session=session
    )


async def delete_if(
    collection: AsyncCollection[Document], key: object, guard: Guard, session: Session
) -> bool:
    """Delete the document of ``_id`` ``key`` when ``guard`` holds for it; whether it did."""
    if await _read_if(collection, key, guard, session) is None:
        return False
    # index: _id_
    result = await collection.delete_one({"_id": key}, session=session)
    return result.deleted_count == 1


async def _read_if(
    collection: AsyncCollection[Document], key: object, guard: Guard, session: Session
) -> Document | None:
    # index: _id_
    doc = await collection.find_one({"_id": key}, session=session)
    return doc if doc is not None and guard(doc) else None


class Connection:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[database]

    @classmethod
    def open(cls, url: str, database: str = "spacedock", timeout_ms: int = 5000) -> Connection:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 4, 20000),
            # A connection idle this long is opened again rather than used: the embedded
            # server drops one idle for 300 s, and a write on it would fail (retryable writes
            # are off there).
            maxIdleTimeMS=IDLE_CONNECTION_MS,
            tz_aware=True,
        )
        return cls(client, client.get_default_database(database).name)

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        """Whether the server answers; ``MetadataUnavailable`` when it does not."""
        try:
            await self.db.command("ping")
        except PyMongoError as exc:
            raise MetadataUnavailable(type(exc).__name__) from exc

    async def check_transactions(self) -> None:
        """Fail with a clear message unless the server can run multi-document transactions,
        which the event outbox needs (a replica set, even of one member, or a sharded
        cluster)."""
        hello = await self.db.command("hello")
        if not hello.get("setName") and hello.get("msg") != "isdbgrid":
            raise TransactionsUnsupported(
                "MongoDB must be a replica set (one member is enough: start mongod with "
                "--replSet rs0 and run rs.initiate()); Spacedock records each change and its "
                "event in one transaction"
            )

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, retried by the driver on transient errors (so
        ``work`` may run more than once, and must start from scratch each time)."""
        async with self.client.start_session() as session:
            return await session.with_transaction(work)
