"""The outbox: events written to MongoDB in the same transaction as the change they report,
and handed to the relay, which publishes them and then deletes them.

``outbox`` documents: ``{_id, messages: [{id, exchange, routing_key, type, body,
correlation_id, reply_to}], created_at, claimed_by, claim, claimed_until, attempts}``: one
entry holds the events one ``add`` recorded (a group commit's transaction records the events
of all its pushes as one entry), published in their order; an entry costs its writes (insert,
claim, delete) whatever it holds. An entry of one event keeps the shape earlier versions
wrote and read, its fields at the top of the document (``{_id, id, exchange, ...}``), so that
a relay of an earlier version, still running during an upgrade, publishes those; it cannot
read entries of several events, and holds what it claimed until it stops (README, upgrades).

A relay claims entries for a lease; an entry is claimable when its lease has lapsed, or by
the owner that claimed it before (a restarted instance of the same name resumes its own
entries at once instead of waiting out the lease of its previous life). So two live relays
never hold the same entry at once; an entry published but not yet deleted when its relay
died is published again (at-least-once; consumers deduplicate by ``id``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from bson import Binary
from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.metadata.connection import Transaction, as_utc

log = structlog.get_logger("spacedock.events")

Document = dict[str, Any]
NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _created(doc: Document) -> dt.datetime:
    """When an entry was recorded; NEVER for one without a time (written by hand), so that it
    goes first rather than stopping every claim or sample."""
    created = doc.get("created_at")
    return as_utc(created) if isinstance(created, dt.datetime) else NEVER


def _age_order(doc: Document) -> tuple[dt.datetime, str]:
    """Oldest first."""
    return (_created(doc), str(doc["_id"]))


def _body(value: object) -> bytes:
    """A message's stored body: bytes only (``bytes`` of a number would be that many zeros)."""
    if not isinstance(value, bytes):
        raise TypeError(f"an outbox body is bytes, not {type(value).__name__}")
    return bytes(value)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: str
    exchange: str
    routing_key: str
    type: str
    body: bytes
    correlation_id: str | None
    reply_to: str | None

    @classmethod
    def from_document(cls, doc: Document) -> OutboxMessage:
        return cls(
            doc["id"],
            doc["exchange"],
            doc["routing_key"],
            doc["type"],
            _body(doc["body"]),
            doc.get("correlation_id"),
            doc.get("reply_to"),
        )


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: str
    messages: tuple[OutboxMessage, ...]

    @classmethod
    def from_document(cls, doc: Document) -> OutboxEntry:
        if "messages" not in doc:  # one message (earlier versions named it by ``_id``)
            message = {**doc, "id": doc.get("id", doc["_id"])}
            return cls(doc["_id"], (OutboxMessage.from_document(message),))
        return cls(doc["_id"], tuple(OutboxMessage.from_document(m) for m in doc["messages"]))


class Outbox:
    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.collection = db.outbox
        self._transaction = transaction
        self._resumed: set[str] = set()

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("claimed_until", ASCENDING)])
        await self.collection.create_index([("claimed_by", ASCENDING), ("_id", ASCENDING)])
        await self.collection.create_index([("created_at", ASCENDING)])
        # Served nothing the compound index above does not (its first field).
        if "claimed_by_1" in await self.collection.index_information():
            await self.collection.drop_index("claimed_by_1")

    async def add(
        self,
        events: Sequence[CloudEvent],
        *,
        session: AsyncClientSession | None = None,
        exchange: str = EVENTS_EXCHANGE,
        routing_key: str | None = None,
    ) -> None:
        """Record events to publish on ``exchange``, each under its kind (or
        ``routing_key``), as one entry."""
        if not events:
            return
        messages = [
            {
                "id": event.id,
                "exchange": exchange,
                "routing_key": routing_key or event.kind,
                "type": event.type,
                "body": Binary(event.body()),
                "correlation_id": event.correlation_id,
                "reply_to": event.reply_to,
            }
            for event in events
        ]
        entry = messages[0] if len(messages) == 1 else {"messages": messages}
        await self.collection.insert_one(
            {
                **entry,
                "_id": uuid.uuid4().hex,
                "created_at": _now(),
                "claimed_by": None,
                "claimed_until": NEVER,
                "attempts": 0,
            },
            session=session,
        )

    async def claim(self, owner: str, lease: dt.timedelta, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` entries, oldest first, now held by ``owner`` for ``lease``.

        One transaction reads the claimable entries and writes the oldest: two relays
        claiming one entry both write its document, so only one of them commits and the other
        runs again on what the first left. An owner's own entries are claimable only while it
        resumes: at its first claim through this outbox (a restarted instance takes back what
        its previous life held), after a round of its relay was cut short (``resume``), and on
        until such a claim took back every entry the owner held. Otherwise every entry it
        holds is one its relay is publishing."""
        resuming = owner not in self._resumed

        async def work(session: AsyncClientSession) -> tuple[list[Document], bool]:
            """The entries claimed, and whether they hold every one the owner held."""
            # index: claimed_until_1 (lapsed leases, and entries never claimed: NEVER)
            lapsed = self.collection.find({"claimed_until": {"$lt": _now()}}, session=session).sort(
                "created_at", ASCENDING
            )
            found = {doc["_id"]: doc async for doc in lapsed.limit(limit)}
            own: set[str] = set()
            if resuming:
                # index: claimed_by_1__id_1 (equality on its first field)
                held = self.collection.find({"claimed_by": owner}, session=session)
                found.update({doc["_id"]: doc async for doc in held})
                own = {key for key, doc in found.items() if doc.get("claimed_by") == owner}
            oldest = sorted(found.values(), key=_age_order)
            claimed = oldest[:limit]
            if claimed:
                held_by_owner = {
                    "claimed_by": owner,
                    "claim": uuid.uuid4().hex,
                    "claimed_until": _now() + lease,
                }
                # index: _id_
                await self.collection.update_many(
                    {"_id": {"$in": [doc["_id"] for doc in claimed]}},
                    {"$set": held_by_owner, "$inc": {"attempts": 1}},
                    session=session,
                )
            return claimed, own <= {doc["_id"] for doc in claimed}

        claimed, took_back_all = await self._transaction(work)
        if resuming and took_back_all:  # else the next claim goes on taking them back
            self._resumed.add(owner)
        entries = []
        for doc in claimed:
            try:
                entries.append(OutboxEntry.from_document(doc))
            except (KeyError, TypeError, ValueError) as exc:
                # Left held until its lease lapses (then tried again): the others go on.
                log.error("outbox_entry_unreadable", entry=str(doc.get("_id")), error=repr(exc))
        return entries

    def resume(self, owner: str) -> None:
        """Let ``owner``'s next claim take back what it holds: a round of its relay was cut
        short, and may have left entries claimed."""
        self._resumed.discard(owner)

    async def done(self, owner: str, ids: Sequence[str]) -> None:
        """Delete ``owner``'s entries whose events the bus confirmed."""
        if ids:
            # index: claimed_by_1__id_1
            await self.collection.delete_many({"claimed_by": owner, "_id": {"$in": list(ids)}})

    async def renew(self, owner: str, ids: Sequence[str], lease: dt.timedelta) -> None:
        """Hold ``owner``'s entries for ``lease`` from now (a publish taking long)."""
        if ids:
            # index: claimed_by_1__id_1
            await self.collection.update_many(
                {"claimed_by": owner, "_id": {"$in": list(ids)}},
                {"$set": {"claimed_until": _now() + lease}},
            )

    async def release(self, owner: str, ids: Sequence[str]) -> None:
        """Give entries back at once (their publish failed) rather than at lease end."""
        if ids:
            # index: claimed_by_1__id_1
            await self.collection.update_many(
                {"claimed_by": owner, "_id": {"$in": list(ids)}},
                {"$set": {"claimed_by": None, "claimed_until": NEVER}},
            )

    async def pending(self) -> int:
        """Entries not yet published (each holds one or more events)."""
        # The collection's count, kept by the server, not a scan of it
        return await self.collection.estimated_document_count()

    async def oldest(self) -> dt.datetime | None:
        """When the oldest entry not yet published was recorded; None when there is none."""
        # index: created_at_1
        doc = await self.collection.find_one({}, {"created_at": 1}, sort=[("created_at", 1)])
        if doc is None:
            return None
        return _created(doc)
