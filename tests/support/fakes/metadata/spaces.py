"""``SpaceRepository`` in memory."""

from __future__ import annotations

import copy

from shared.metadata.connection import Document
from shared.metadata.errors import AlreadyExists, SpaceNotEmpty
from shared.metadata.spaces import SpaceRecord
from tests.support.fakes.metadata.documents import Clock, Collections, Transactions


class InMemorySpaces:
    """``SpaceRepository``: create refuses an id taken, and starts the space with no members;
    delete refuses a space that still has a repository, and takes its memberships with it.
    Builds are not kept here, so none ever holds a space back."""

    def __init__(self, data: Collections, transaction: Transactions, now: Clock) -> None:
        self._data = data
        self._transaction = transaction
        self._now = now

    async def get(self, space_id: str) -> SpaceRecord | None:
        doc = self._data.spaces.get(space_id)
        return None if doc is None else SpaceRecord.from_document(copy.deepcopy(doc))

    async def all(self) -> list[SpaceRecord]:
        return [
            SpaceRecord.from_document(copy.deepcopy(d))
            for _, d in sorted(self._data.spaces.items())
        ]

    async def ids_starting(self, prefix: str) -> list[str]:
        return [space_id for space_id in self._data.spaces if space_id.startswith(prefix)]

    async def create(self, space_id: str, name: str, anonymous_pull: bool) -> SpaceRecord:
        doc = {
            "_id": space_id,
            "name": name,
            "anonymous_pull": anonymous_pull,
            "created_at": self._now(),
        }

        async def create(_: object) -> None:
            if space_id in self._data.spaces:
                raise AlreadyExists(space_id)
            self._data.spaces[space_id] = copy.deepcopy(doc)
            for key in [k for k, m in self._data.memberships.items() if m["space"] == space_id]:
                del self._data.memberships[key]

        await self._transaction(create)
        return SpaceRecord.from_document(doc)

    async def update(self, space_id: str, changes: Document) -> SpaceRecord | None:
        doc = self._data.spaces.get(space_id)
        if doc is None:
            return None
        doc.update(copy.deepcopy(changes))
        return SpaceRecord.from_document(copy.deepcopy(doc))

    async def set_retention(self, space_id: str, policy: Document) -> bool:
        doc = self._data.spaces.get(space_id)
        if doc is None:
            return False
        doc["retention"] = copy.deepcopy(policy)
        return True

    async def ensure(self, space_id: str, name: str) -> None:
        self._data.spaces.setdefault(
            space_id,
            {"_id": space_id, "name": name, "anonymous_pull": False, "created_at": self._now()},
        )

    async def delete(self, space_id: str) -> list[str] | None:
        if any(doc["space"] == space_id for doc in self._data.repositories.values()):
            raise SpaceNotEmpty(space_id, "it still has repositories")
        if self._data.spaces.pop(space_id, None) is None:
            return None
        members = [k for k, m in self._data.memberships.items() if m["space"] == space_id]
        return [self._data.memberships.pop(key)["username"] for key in members]
