"""``BlobStore`` of metadata in memory: what pushes do (the link side; garbage collection's
claim is not faked)."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable

from shared.metadata.blobs import NOT_DELETING, WRITE_LEASE, BlobBeingDeleted
from shared.metadata.connection import Document
from tests.support.fakes.metadata.documents import Clock, Collections, Transactions, link_id


class _Refused(Exception):
    pass


class InMemoryBlobs:
    """The push side of ``BlobRecords``: reservations, links, and the blob document's guards
    (a blob a collector holds is neither reserved nor linked; an upload links only while its
    own reservation is in the document; a mount links only a stored blob). Garbage
    collection's claim is not faked: ``collector_holds`` and ``collector_forgets`` put a blob
    in the states a collector leaves it in."""

    def __init__(self, data: Collections, transaction: Transactions, now: Clock) -> None:
        self._data = data
        self._transaction = transaction
        self._now = now

    async def get(self, digest: str) -> Document | None:
        doc = self._data.blobs.get(digest)
        return copy.deepcopy(doc)

    async def link_size(self, repository: str, digest: str) -> int | None:
        doc = self._data.blob_links.get(link_id(repository, digest))
        return None if doc is None else int(doc["size"])

    async def find_link(self, digest: str, spaces: Iterable[str] | None) -> Document | None:
        prefixes = None if spaces is None else tuple(f"{space}/" for space in spaces)
        for doc in self._data.blob_links.values():
            if doc["digest"] == digest and (
                prefixes is None or doc["repository"].startswith(prefixes)
            ):
                return copy.deepcopy(doc)
        return None

    async def reserve(self, digest: str, size: int, token: str) -> bool:
        now = self._now()
        doc = self._data.blobs.get(digest)
        if doc is not None and doc["deleting_until"] >= now:
            raise BlobBeingDeleted(digest)
        if doc is None:
            doc = self._data.blobs[digest] = {
                "_id": digest,
                "size": size,
                "stored": False,
                "links": 0,
                "writers": [],
                "created_at": now,
            }
        doc.update(touched_at=now, deleting_token=None, deleting_until=NOT_DELETING)
        doc["writers"].append({"token": token, "until": now + WRITE_LEASE})
        return bool(doc["stored"])

    async def renew(self, digest: str, token: str) -> None:
        for writer in (self._data.blobs.get(digest) or {}).get("writers", []):
            if writer["token"] == token:
                writer["until"] = self._now() + WRITE_LEASE
                return

    async def release(self, digest: str, token: str) -> None:
        doc = self._data.blobs.get(digest)
        if doc is not None:
            doc["writers"] = [w for w in doc["writers"] if w["token"] != token]

    async def record_link(self, repository: str, digest: str, size: int, token: str) -> None:
        async def work(_: object) -> None:
            inserted = self._upsert_link(repository, digest, size)
            now = self._now()
            doc = self._data.blobs.get(digest)
            if (
                doc is None
                or doc["deleting_until"] >= now
                or all(w["token"] != token for w in doc["writers"])
            ):
                raise BlobBeingDeleted(digest)
            doc.update(
                stored=True, touched_at=now, deleting_token=None, deleting_until=NOT_DELETING
            )
            doc["writers"] = [w for w in doc["writers"] if w["token"] != token]
            doc["links"] += int(inserted)

        await self._transaction(work)

    async def link(self, repository: str, digest: str, size: int) -> bool:
        async def work(_: object) -> None:
            inserted = self._upsert_link(repository, digest, size)
            now = self._now()
            doc = self._data.blobs.get(digest)
            if doc is None or doc["deleting_until"] >= now or not doc["stored"]:
                raise _Refused(digest)
            doc.update(touched_at=now, deleting_token=None, deleting_until=NOT_DELETING)
            doc["links"] += int(inserted)

        try:
            await self._transaction(work)
        except _Refused:
            return False
        return True

    def _upsert_link(self, repository: str, digest: str, size: int) -> bool:
        now = self._now()
        key = link_id(repository, digest)
        doc = self._data.blob_links.get(key)
        if doc is not None:
            doc["touched_at"] = now
            return False
        self._data.blob_links[key] = {
            "_id": key,
            "repository": repository,
            "digest": digest,
            "size": size,
            "touched_at": now,
            "created_at": now,
        }
        return True

    async def unlink(self, repository: str, digest: str) -> bool:
        if self._data.blob_links.pop(link_id(repository, digest), None) is None:
            return False
        doc = self._data.blobs.get(digest)
        if doc is not None and doc["links"] > 0:
            doc["links"] -= 1
        return True

    # the states a collector leaves a blob in ---------------------------------------------------

    def collector_holds(self, digest: str, until: dt.datetime, token: str = "collector") -> None:
        """A collector claimed the blob until ``until``: as its claim does, every writer is
        dropped (they had lapsed, or the claim would not have been taken)."""
        doc = self._data.blobs[digest]
        doc.update(deleting_token=token, deleting_until=until, writers=[])

    def collector_forgets(self, digest: str) -> None:
        """The collector deleted the blob from storage and then its document."""
        del self._data.blobs[digest]
