"""Upload sessions: where a chunked blob upload stands, and who is writing it.

``uploads`` ``{_id: upload id, repository, offset, storage, lock, created_at, updated_at}``:
``lock`` holds the write under way (its token and lease), so that two requests for the same
upload, on any instances, never write at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from shared.metadata.connection import (
    Document,
    Guard,
    Session,
    Transaction,
    delete_if,
    earlier,
    update_if,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    repository: str
    offset: int
    storage: dict[str, Any]
    created_at: dt.datetime

    @classmethod
    def from_document(cls, doc: Document) -> Upload:
        return cls(doc["_id"], doc["repository"], doc["offset"], doc["storage"], doc["created_at"])


def _free(now: dt.datetime) -> Guard:
    """No write holds the upload: no lock, or one whose lease lapsed by ``now``."""

    def free(doc: Document) -> bool:
        lock = doc.get("lock")
        return lock is None or (isinstance(lock, dict) and earlier(lock.get("until"), now))

    return free


def _held_by(token: str) -> Guard:
    def held(doc: Document) -> bool:
        lock = doc.get("lock")
        return isinstance(lock, dict) and lock.get("token") == token

    return held


def _upload(doc: Document | None) -> Upload | None:
    return None if doc is None else Upload.from_document(doc)


class UploadRepository:
    """Each write that depends on the lock is a compare-and-set by ``_id`` in a transaction
    (``shared.metadata.connection.update_if``): of two racing for one upload, one wins."""

    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.db = db
        self._transaction = transaction

    async def ensure_indexes(self) -> None:
        await self.db.uploads.create_index([("updated_at", ASCENDING)])

    async def create(self, upload_id: str, repository: str, storage: Document) -> None:
        now = utcnow()
        await self.db.uploads.insert_one(
            {
                "_id": upload_id,
                "repository": repository,
                "offset": 0,
                "storage": storage,
                "lock": None,
                "created_at": now,
                "updated_at": now,
            }
        )

    async def get(self, upload_id: str) -> Upload | None:
        # index: _id_
        return _upload(await self.db.uploads.find_one({"_id": upload_id}))

    async def claim(self, upload_id: str, token: str, lease: dt.timedelta) -> Upload | None:
        """Take the upload for one write; None when it is missing or another write holds it."""

        async def claim(session: Session) -> Document | None:
            now = utcnow()
            return await update_if(
                self.db.uploads,
                upload_id,
                _free(now),
                {"$set": {"lock": {"token": token, "until": now + lease}, "updated_at": now}},
                session,
            )

        return _upload(await self._transaction(claim))

    async def release(
        self, upload_id: str, token: str, offset: int | None = None, storage: Document | None = None
    ) -> bool:
        """End the write ``token`` holds, recording where it got to; False when it no longer
        holds the upload (its lease lapsed and another write took it)."""

        async def release(session: Session) -> Document | None:
            changes: Document = {"lock": None, "updated_at": utcnow()}
            if offset is not None:
                changes["offset"] = offset
            if storage is not None:
                changes["storage"] = storage
            return await update_if(
                self.db.uploads, upload_id, _held_by(token), {"$set": changes}, session
            )

        return await self._transaction(release) is not None

    async def renew(self, upload_id: str, token: str, lease: dt.timedelta) -> None:
        async def renew(session: Session) -> Document | None:
            return await update_if(
                self.db.uploads,
                upload_id,
                _held_by(token),
                {"$set": {"lock.until": utcnow() + lease}},
                session,
            )

        await self._transaction(renew)

    async def delete(self, upload_id: str) -> None:
        # index: _id_
        await self.db.uploads.delete_one({"_id": upload_id})

    async def claim_abandoned(
        self, cutoff: dt.datetime, token: str, lease: dt.timedelta
    ) -> Upload | None:
        """An upload untouched since ``cutoff`` and not being written, now held by ``token``
        (so a client resuming it at this moment, or another reaper, cannot have it too)."""
        # index: uploads updated_at_1 (the lock is checked here: a filter on it as well would
        # read every upload on the embedded server)
        async with self.db.uploads.find({"updated_at": {"$lt": cutoff}}, {"lock": 1}) as candidates:
            async for candidate in candidates:
                if not _free(utcnow())(candidate):
                    continue  # being written

                async def claim(
                    session: Session, upload_id: str = candidate["_id"]
                ) -> Document | None:
                    """The candidate held by ``token``, unless it was touched or taken since."""
                    now = utcnow()

                    def abandoned(doc: Document) -> bool:
                        return earlier(doc.get("updated_at"), cutoff) and _free(now)(doc)

                    return await update_if(
                        self.db.uploads,
                        upload_id,
                        abandoned,
                        {"$set": {"lock": {"token": token, "until": now + lease}}},
                        session,
                    )

                claimed = _upload(await self._transaction(claim))
                if claimed is not None:
                    return claimed
        return None

    async def delete_claimed(self, upload_id: str, token: str) -> bool:
        """Delete the upload ``token`` claimed; False when it no longer holds it."""

        async def delete(session: Session) -> bool:
            return await delete_if(self.db.uploads, upload_id, _held_by(token), session)

        return bool(await self._transaction(delete))
