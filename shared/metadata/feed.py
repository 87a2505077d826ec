"""The feed view: a repository's tags read as Octopus versions, newest first, a page at a time.

Each tag carries its place in that order (``feed_key``: the tag read as an Octopus version,
then push time, then tag; None when the tag is no version, ``shared.versions.order_key``) and
whether it is a prerelease, written with the tag (``feed_fields``); an index on them serves
the pages, and the repository's ``feed_top`` (the highest key a push recorded) tells the first
page where to start reading.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from shared.metadata.connection import EPOCH, Document, Session, Transaction, update_if
from shared.versions import order_key, try_parse_docker_tag

# Where the feed view reads a page: from a key near the top, the keys that share its first
# characters, fewer each time (``order_key`` writes major, minor, patch and revision in 8 hex
# digits each, then the release): the same numbers and release; the same major.minor.patch;
# then patches in blocks of 16 and 256; the same major.minor; minors in blocks of 16 and
# 256; the same major; majors in blocks of 16 and 256; every version.
_FEED_WINDOWS = (33, 24, 23, 22, 16, 15, 14, 8, 7, 6, 0)
# Tags given their feed key per round trip when old tags are upgraded at start-up.
FEED_KEY_BATCH = 1000


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """A tag read as a version: where it points, how big that is, when it was pushed, and
    the cursor that continues after it."""

    tag: str
    digest: str
    size: int
    pushed_at: dt.datetime
    prerelease: bool
    cursor: str


def feed_fields(tag: str, pushed_at: dt.datetime) -> Document:
    """What the feed view sorts and filters a tag by: its Octopus order, then push time, then
    the tag itself (so the order is total and a cursor is one string)."""
    version = try_parse_docker_tag(tag)
    if version is None:
        return {"feed_key": None, "prerelease": None}
    millis = (pushed_at - EPOCH) // dt.timedelta(milliseconds=1)
    return {
        "feed_key": f"{order_key(version)}|{millis:013d}|{tag}",
        "prerelease": version.is_prerelease,
    }


class FeedRepository:
    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.db = db
        self._transaction = transaction

    async def newest_versions(
        self,
        repository: str,
        *,
        include_prerelease: bool,
        before: str | None,
        limit: int,
    ) -> list[VersionRecord]:
        """The repository's tags read as Octopus versions, newest first (ties: the later push,
        then the greater tag), after the cursor ``before`` (a ``cursor`` this returned). Tags
        that are no version are left out.

        The page is read in windows of keys, from a key near the top down: those with the
        same version numbers as it, then the same major.minor.patch, and so on to every
        version, until the page is full. Each window is one bounded range of the index, so a
        server that reads every key of a range before it applies the limit (SecantusDB) reads
        about a page, not the whole repository. The key it starts from is ``before``, or for
        the first page the highest key a push recorded (``feed_top``); it only decides where
        the reading starts: a missing or stale one costs time, never a version.
        """
        start = before if before is not None else await self._feed_top(repository)
        lowers = list(dict.fromkeys(start[:length] for length in _FEED_WINDOWS)) if start else [""]
        tags: list[Document] = []
        upper = before
        for lower in lowers:
            tags += await self._versions_between(
                repository, lower, upper, include_prerelease, limit - len(tags)
            )
            if len(tags) >= limit:
                break
            upper = lower
        if before is None and include_prerelease:
            newest = tags[0]["feed_key"] if tags else None
            if newest != start:  # raise it, or lower one a deleted or failed push left high
                await self._set_feed_top(repository, start, newest)
        sizes = await self._sizes(repository, {doc["digest"] for doc in tags})
        return [
            VersionRecord(
                doc["tag"],
                doc["digest"],
                sizes.get(doc["digest"], 0),
                doc["updated_at"],
                bool(doc["prerelease"]),
                doc["feed_key"],
            )
            for doc in tags
        ]

    async def _versions_between(
        self,
        repository: str,
        lower: str,
        upper: str | None,
        include_prerelease: bool,
        limit: int,
    ) -> list[Document]:
        """Tags with ``lower <= feed_key < upper``, newest first."""
        # From "" (excluded): only strings, as a tag that is no version has None.
        keys: Document = {"$gte": lower} if lower else {"$gt": ""}
        if upper is not None:
            keys["$lt"] = upper
        query: Document = {"repository": repository}
        if not include_prerelease:
            query["prerelease"] = False
        query["feed_key"] = keys
        # index: tags repository_1_feed_key_1, or with the prerelease filter
        # tags repository_1_prerelease_1_feed_key_1 (walked backwards: newest first)
        cursor = self.db.tags.find(
            query, {"tag": 1, "digest": 1, "updated_at": 1, "prerelease": 1, "feed_key": 1}
        ).sort("feed_key", DESCENDING)
        return [doc async for doc in cursor.limit(limit)]

    async def _feed_top(self, repository: str) -> str | None:
        # index: _id_
        doc = await self.db.repositories.find_one({"_id": repository}, {"feed_top": 1})
        top = None if doc is None else doc.get("feed_top")
        return top if isinstance(top, str) else None

    async def _set_feed_top(self, repository: str, seen: str | None, key: str | None) -> None:
        """Move the hint from ``seen`` to ``key`` (the newest key there is) unless a push
        changed it meanwhile: a hint left too high would make every first page read down
        from it."""

        async def lower(session: Session) -> None:
            await update_if(
                self.db.repositories,
                repository,
                lambda doc: doc.get("feed_top") == seen,
                {"$set": {"feed_top": key}},
                session,
            )

        await self._transaction(lower)

    async def _sizes(self, repository: str, digests: set[str]) -> dict[str, int]:
        """The size of each manifest with what it references, by digest."""
        # index: _id_
        cursor = self.db.manifests.find(
            {"_id": {"$in": [f"{repository}@{d}" for d in digests]}},
            {"digest": 1, "size": 1, "total_size": 1},
        )
        return {doc["digest"]: int(doc.get("total_size") or doc["size"]) async for doc in cursor}

    async def upgrade_tags(self) -> int:
        """Give tags that have no ``feed_key`` (written before the feed kept its order with
        them, or since by an instance of an older version) theirs: a pass at every start, in
        batches of ``FEED_KEY_BATCH``. Idempotent, and safe beside pushes: a key is written
        only where there still is none, so a push's own key is never overwritten. The number
        of tags upgraded."""
        upgraded = 0
        batch: list[str] = []
        # no index: one read-only pass over the tags at start (not a hot query)
        cursor = self.db.tags.find(
            {"feed_key": {"$exists": False}}, {"_id": 1}, batch_size=FEED_KEY_BATCH
        )
        async for doc in cursor:
            batch.append(doc["_id"])
            if len(batch) == FEED_KEY_BATCH:
                upgraded += await self._key(batch)
                batch = []
        if batch:
            upgraded += await self._key(batch)
        return upgraded

    async def _key(self, ids: list[str]) -> int:
        """Key those of these tags that still have no key, in one transaction: a push that
        keys one of them meanwhile writes the same document, so one of the two runs again."""

        async def write(session: Session) -> int:
            # index: _id_
            cursor = self.db.tags.find(
                {"_id": {"$in": ids}}, {"tag": 1, "updated_at": 1, "feed_key": 1}, session=session
            )
            keys = [
                # index: _id_
                UpdateOne({"_id": doc["_id"]}, {"$set": feed_fields(doc["tag"], doc["updated_at"])})
                async for doc in cursor
                if "feed_key" not in doc
            ]
            if not keys:
                return 0
            result = await self.db.tags.bulk_write(keys, ordered=False, session=session)
            return result.modified_count

        upgraded: int = await self._transaction(write)
        return upgraded
