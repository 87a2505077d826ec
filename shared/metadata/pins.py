"""Pins: tags retention never removes.

``pins`` ``{_id: "<repo>:<tag>", repository, space, tag, pinned_by, pinned_at}``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from shared.metadata.connection import Document, utcnow


@dataclass(frozen=True, slots=True)
class PinRecord:
    repository: str
    tag: str
    pinned_by: str | None
    pinned_at: dt.datetime

    @classmethod
    def from_document(cls, doc: Document) -> PinRecord:
        return cls(doc["repository"], doc["tag"], doc.get("pinned_by"), doc["pinned_at"])


class PinRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        await self.db.pins.create_index([("repository", ASCENDING)])
        await self.db.pins.create_index([("space", ASCENDING)])

    async def pin(self, repository: str, tag: str, by: str | None) -> tuple[PinRecord, bool]:
        """Pin the tag (retention never removes it); the pin, and whether it is new."""
        now = utcnow()
        before = await self.db.pins.find_one_and_update(
            {"_id": f"{repository}:{tag}"},
            {
                "$setOnInsert": {
                    "repository": repository,
                    "space": repository.split("/", 1)[0],
                    "tag": tag,
                    "pinned_by": by,
                    "pinned_at": now,
                }
            },
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
        pin = await self.db.pins.find_one({"_id": f"{repository}:{tag}"})
        assert pin is not None
        return PinRecord.from_document(pin), before is None

    async def unpin(self, repository: str, tag: str) -> bool:
        result = await self.db.pins.delete_one({"_id": f"{repository}:{tag}"})
        return result.deleted_count == 1

    async def of_repository(self, repository: str) -> set[str]:
        # index: pins repository_1
        cursor = self.db.pins.find({"repository": repository}, {"tag": 1})
        return {doc["tag"] async for doc in cursor}
