"""Web UI sessions: who signed in through the browser, until when.

``ui_sessions`` ``{_id: SHA-256 of the session id, username, credential, epoch, csrf_token,
created_at, last_seen, absolute_expiry, expires_at}``: the session id itself (the cookie) is
never stored, so a copy of the database signs nobody in. ``expires_at`` is the earlier of the
absolute expiry and the idle one (last seen + the idle time), so one field says when a session
is over and one index finds those to clear.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.metadata.connection import Document, Session, Transaction, earlier, update_if

# Expired sessions cleared per sign-in: clearing is housekeeping and must stay cheap.
CLEAR_BATCH = 100
# One-time form fields a session remembers as sent (forms that create something once).
FORMS_REMEMBERED = 20


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in browser: the account, the credential it signed in with (``password`` or
    an API key's), the account's password epoch then, and the session's CSRF token."""

    id_hash: str
    username: str
    credential: str
    epoch: int
    csrf_token: str
    created_at: dt.datetime
    last_seen: dt.datetime
    absolute_expiry: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def from_document(cls, doc: Document) -> SessionRecord:
        return cls(
            id_hash=doc["_id"],
            username=doc["username"],
            credential=doc["credential"],
            epoch=int(doc["epoch"]),
            csrf_token=doc["csrf_token"],
            created_at=_utc(doc["created_at"]),
            last_seen=_utc(doc["last_seen"]),
            absolute_expiry=_utc(doc["absolute_expiry"]),
            expires_at=_utc(doc["expires_at"]),
        )

    def document(self) -> Document:
        return {
            "_id": self.id_hash,
            "username": self.username,
            "credential": self.credential,
            "epoch": self.epoch,
            "csrf_token": self.csrf_token,
            "created_at": self.created_at,
            "last_seen": self.last_seen,
            "absolute_expiry": self.absolute_expiry,
            "expires_at": self.expires_at,
        }


class SessionRepository:
    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.db = db
        self._transaction = transaction

    async def ensure_indexes(self) -> None:
        await self.db.ui_sessions.create_index([("expires_at", ASCENDING)])
        await self.db.ui_sessions.create_index([("username", ASCENDING), ("created_at", ASCENDING)])

    async def add(self, record: SessionRecord) -> None:
        await self.db.ui_sessions.insert_one(record.document())

    async def get(self, id_hash: str) -> SessionRecord | None:
        # index: _id_
        doc = await self.db.ui_sessions.find_one({"_id": id_hash})
        return None if doc is None else SessionRecord.from_document(doc)

    async def touch(self, id_hash: str, last_seen: dt.datetime, expires_at: dt.datetime) -> None:
        # index: _id_
        await self.db.ui_sessions.update_one(
            {"_id": id_hash}, {"$set": {"last_seen": last_seen, "expires_at": expires_at}}
        )

    async def delete(self, id_hash: str) -> None:
        # index: _id_
        await self.db.ui_sessions.delete_one({"_id": id_hash})

    async def first_use_of_form(self, id_hash: str, nonce: str) -> bool:
        """Whether this is the first time the session sent the form ``nonce`` names (a page's
        one-time field): it is noted, with the session's last ``FORMS_REMEMBERED``; a form sent
        again (a reload that repeats a POST) finds it there. False for no such session."""

        def fresh(doc: Document) -> bool:
            return nonce not in (doc.get("forms_sent") or [])

        async def note(session: Session) -> bool:
            change = {"$push": {"forms_sent": {"$each": [nonce], "$slice": -FORMS_REMEMBERED}}}
            # index: _id_ (the guard is checked on the document read in the transaction)
            return await update_if(self.db.ui_sessions, id_hash, fresh, change, session) is not None

        return bool(await self._transaction(note))

    async def keep_newest(self, username: str, count: int) -> int:
        """Delete all but the ``count`` newest sessions of ``username``; how many went."""
        # index: ui_sessions username_1_created_at_1
        cursor = self.db.ui_sessions.find({"username": username}, {"_id": 1, "created_at": 1})
        sessions = sorted([doc async for doc in cursor], key=lambda doc: doc["created_at"])
        surplus = [doc["_id"] for doc in sessions[: max(0, len(sessions) - count)]]
        if not surplus:
            return 0
        # index: _id_
        result = await self.db.ui_sessions.delete_many({"_id": {"$in": surplus}})
        return result.deleted_count

    async def clear_expired(self, now: dt.datetime) -> int:
        """Delete up to ``CLEAR_BATCH`` sessions that are over; how many went."""
        # index: ui_sessions expires_at_1
        cursor = self.db.ui_sessions.find(
            {"expires_at": {"$lt": now}}, {"_id": 1, "expires_at": 1}
        ).limit(CLEAR_BATCH)
        ids = [doc["_id"] async for doc in cursor if earlier(doc.get("expires_at"), now)]
        if not ids:
            return 0
        # index: _id_
        result = await self.db.ui_sessions.delete_many({"_id": {"$in": ids}})
        return result.deleted_count


def _utc(moment: dt.datetime) -> dt.datetime:
    """MongoDB keeps UTC; a client that is not ``tz_aware`` reads it back without a zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
