"""Spaces, the unit of tenancy.

``spaces`` ``{_id: "spaces-1", name, anonymous_pull, created_at, retention,
repositories_stamp}``: ``retention`` is the space's policy as the API took it (absent: the
defaults); ``repositories_stamp`` moves whenever a repository of the space is listed
(``shared.metadata.images``).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.builds.lifecycle import UNFINISHED
from shared.metadata.connection import Document, Session, Transaction, prefix_range, utcnow
from shared.metadata.errors import AlreadyExists, SpaceNotEmpty

# A space with builds in these states cannot go: they would run on into a space that is gone.
ACTIVE_BUILD_STATUSES = sorted(status.value for status in UNFINISHED)


@dataclass(frozen=True, slots=True)
class SpaceRecord:
    id: str
    name: str
    anonymous_pull: bool
    created_at: dt.datetime
    # The policy as the API took it; None: the defaults.
    retention: dict[str, Any] | None = None

    @classmethod
    def from_document(cls, doc: Document) -> SpaceRecord:
        return cls(
            doc["_id"],
            doc["name"],
            bool(doc.get("anonymous_pull", False)),
            doc["created_at"],
            doc.get("retention"),
        )


def first_stamp() -> int:
    """Where a space's ``repositories_stamp`` starts: anywhere, so that a space deleted and
    made again does not repeat the stamps its first life had (a list of names an instance
    remembers under one of them would pass for current)."""
    return secrets.randbits(48)


class SpaceRepository:
    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.db = db
        self._transaction = transaction

    async def get(self, space_id: str) -> SpaceRecord | None:
        # index: _id_
        doc = await self.db.spaces.find_one({"_id": space_id})
        return None if doc is None else SpaceRecord.from_document(doc)

    async def all(self) -> list[SpaceRecord]:
        # no index: every space, in id order (a short list)
        cursor = self.db.spaces.find({}).sort("_id", 1)
        return [SpaceRecord.from_document(doc) async for doc in cursor]

    async def ids_starting(self, prefix: str) -> list[str]:
        # index: _id_ (a range)
        cursor = self.db.spaces.find({"_id": prefix_range(prefix)}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def create(self, space_id: str, name: str, anonymous_pull: bool) -> SpaceRecord:
        """Insert a space; ``AlreadyExists`` when the id is taken. A space starts with no
        members, even when one of the same id existed before."""
        doc = {
            "_id": space_id,
            "name": name,
            "anonymous_pull": anonymous_pull,
            "created_at": utcnow(),
            "repositories_stamp": first_stamp(),
        }

        async def create(session: Session) -> None:
            await self.db.spaces.insert_one(doc, session=session)
            await self.db.memberships.delete_many({"space": space_id}, session=session)

        try:
            await self._transaction(create)
        except DuplicateKeyError as exc:
            raise AlreadyExists(space_id) from exc
        return SpaceRecord.from_document(doc)

    async def ensure(self, space_id: str, name: str) -> None:
        """Create the space unless it exists (the default space, at start)."""
        # index: _id_
        await self.db.spaces.update_one(
            {"_id": space_id},
            {
                "$setOnInsert": {
                    "name": name,
                    "anonymous_pull": False,
                    "created_at": utcnow(),
                    "repositories_stamp": first_stamp(),
                }
            },
            upsert=True,
        )

    async def update(self, space_id: str, changes: Document) -> SpaceRecord | None:
        """Change the name or anonymous pull; the space as it is now, or None when there is
        no such space."""
        # index: _id_
        doc = await self.db.spaces.find_one_and_update(
            {"_id": space_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else SpaceRecord.from_document(doc)

    async def set_retention(self, space_id: str, policy: Document) -> bool:
        # index: _id_
        result = await self.db.spaces.update_one({"_id": space_id}, {"$set": {"retention": policy}})
        return result.matched_count == 1

    async def delete(self, space_id: str) -> list[str] | None:
        """Delete the space, its memberships and its finished builds together, only while it
        has no repository and no build queued or running (else ``SpaceNotEmpty``); the former
        members, or None when there was no such space. A build is created only in a space
        whose document it writes (``BuildStore.create``), so none can slip in meanwhile.
        A push listing the space's first repository writes the space's document too
        (``ImageRepository``), so it and this deletion cannot both commit."""

        async def delete(session: Session) -> list[str] | None:
            # index: repositories space_1__id_1
            if await self.db.repositories.find_one(
                {"space": space_id}, {"_id": 1}, session=session
            ):
                raise SpaceNotEmpty(space_id, "it still has repositories")
            # index: builds space_1_status_1_listing_key_1
            if await self.db.builds.find_one(
                {"space": space_id, "status": {"$in": ACTIVE_BUILD_STATUSES}},
                {"_id": 1},
                session=session,
            ):
                raise SpaceNotEmpty(space_id, "builds of it are queued or running")
            result = await self.db.spaces.delete_one({"_id": space_id}, session=session)
            if result.deleted_count == 0:
                return None
            # Its build history goes with it: a space made again under this id starts empty.
            # index: builds space_1
            await self.db.builds.delete_many({"space": space_id}, session=session)
            # index: memberships space_1_username_1
            members = [
                doc["username"]
                async for doc in self.db.memberships.find({"space": space_id}, session=session)
            ]
            await self.db.memberships.delete_many({"space": space_id}, session=session)
            return members

        result: list[str] | None = await self._transaction(delete)
        return result
