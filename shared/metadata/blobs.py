"""Blobs and the links that let repositories read them, and the protocol that lets garbage
collection delete blobs from storage while pushes go on (PRODUCT.md §9).

- ``blobs``      ``{_id: digest, size, stored, links, touched_at, writers: [{token, until}],
                 deleting_token, deleting_until, created_at}``: a blob is being deleted while
                 ``deleting_until`` is in the future (the epoch when it is not)
- ``blob_links`` ``{_id: "<repo>@<digest>", repository, digest, size, touched_at, created_at}``

The guarantee: a blob leaves storage only when no manifest and no link refers to it, and a
manifest is only ever stored while a link for each of its blobs exists. Two chains of
MongoDB documents carry it, and in each the two sides of a race write the same document in
their transactions, so MongoDB's write-conflict detection lets only one of them commit and the
other re-runs on the state the winner left (snapshot isolation alone would not be enough: it
allows two transactions that each *read* what the other writes to both commit).

1. Manifest → link. A manifest PUT touches (``touched_at``) the link of every blob it
   references in the transaction that stores the manifest (``MetadataStore.commit_pushes``),
   and fails with ``MANIFEST_BLOB_UNKNOWN`` when one is missing. Collection removes a link only in a
   transaction that finds no manifest of its repository referencing the blob and a
   ``touched_at`` older than the space's grace period; that removal writes the same link
   document. So either the manifest is stored and the link stays, or the link went first and
   the push is told to upload the blob again.

2. Link → blob. Every new link (an upload's commit, a mount) writes the blob document in the
   same transaction, and only if it is not being deleted. Collection claims a blob by setting
   ``deleting_until`` in a transaction that finds no link and no manifest for it. So either the
   link exists and the blob is not claimed, or the claim came first and the link is refused (a
   mount becomes a plain upload; an upload waits until the blob is gone and stores it again).

   An upload also *reserves* the blob document (a ``writers`` entry with a lease, renewed while
   it writes) before it writes the blob's bytes to storage, and a blob with a live writer
   cannot be claimed, so bytes are never deleted under the upload writing them. An upload
   links the blob only while its own reservation is still in the document: a claim clears
   lapsed writers, so an upload that stalled past its lease cannot vouch for bytes a
   collector may have deleted meanwhile.

3. The collector deletes from storage, on threads of its own, then deletes the document if its
   claim still holds. A failed delete releases the blob as not stored (its bytes must be
   uploaded again) for the next run to retry. A claim whose collector died lapses after a lease
   far longer than any storage call, and the next collector or upload takes the blob over.

   A claim is known by its deadline, ``deleting_until`` (``deleting_token`` names the collector
   holding it): a blob is claimed again only once its last claim lapsed, so with a later
   deadline, and every write that takes a lapsed claim over (a reservation, a link) resets the
   deadline to the epoch. So forgetting or releasing checks each blob's deadline against the
   claim's, and leaves alone a blob anything took over meanwhile.

``links`` counts a blob's links so that collection finds candidates through an index; the
claim never trusts it and reads the links themselves.

Every query names, beside it, the index that serves it (tests/integration/
test_metadata_plans.py checks them with ``explain``). A filter names only what its index
bounds; the other conditions are checked here, on the documents it returns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.batches import batched
from shared.metadata.connection import (
    Document,
    Transaction,
    earlier,
    same_moment,
    to_millis,
    update_if,
)

# How long a reservation lasts unless its upload renews it (services/registry/uploads.py).
WRITE_LEASE = dt.timedelta(minutes=10)
NOT_DELETING = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Digests per ``$in`` read of blob documents: SecantusDB checks each document it fetches
# against the whole list, so one read costs the square of its length; short lists keep a
# batch's reads linear in its size.
READ_CHUNK = 32
# Blobs per write of a collector's batch: one ``update_many`` or ``delete_many`` by ``_id``
# costs the embedded server far less per blob than a statement per blob (measured: 2,400
# against 1,300 claims a second, 2,200 against 1,550 deletes), while its ``$in`` stays short.
WRITE_CHUNK = 64


class BlobBeingDeleted(Exception):
    """Garbage collection has claimed the blob; it cannot be linked until it is gone."""


class _Refused(Exception):
    pass


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Claim:
    """Blobs one collector holds for deletion until ``until``, with their sizes."""

    token: str
    until: dt.datetime
    sizes: dict[str, int]


def _link_id(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"


_COLLECTABLE_FIELDS = {"links": 1, "writers": 1, "deleting_until": 1}


def _writers_lapsed(doc: Document, now: dt.datetime) -> bool:
    return all(writer["until"] <= now for writer in doc.get("writers") or [])


def _collectable(doc: Document, now: dt.datetime) -> bool:
    """No links counted, no live writer, no live claim."""
    return doc["links"] <= 0 and _writers_lapsed(doc, now) and doc["deleting_until"] < now


class BlobRecords:
    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.db = db
        self._transaction = transaction

    async def ensure_indexes(self) -> None:
        # Each index costs every blob write its entries (SecantusDB rewrites them all on any
        # update): these two served no query, or one that _id_1_deleting_until_1 now serves.
        existing = await self.db.blobs.index_information()
        for unused in ("links_1_touched_at_1", "deleting_token_1__id_1"):
            if unused in existing:
                await self.db.blobs.drop_index(unused)
        await self.db.blobs.create_index([("links", ASCENDING), ("_id", ASCENDING)])
        # Beside _id_ for the writes guarded by a second field: a server whose planner only
        # bounds a filter by an index covering its fields (SecantusDB) would otherwise read
        # every blob for each of them.
        await self.db.blobs.create_index([("_id", ASCENDING), ("deleting_until", ASCENDING)])
        await self.db.blob_links.create_index([("digest", ASCENDING)])
        await self.db.blob_links.create_index([("repository", ASCENDING)])
        await self.db.blob_links.create_index([("touched_at", ASCENDING)])

    async def upgrade(self) -> int:
        """Give documents written before garbage collection existed the fields it relies on:
        old links count as touched now, old blobs as stored and not being deleted, with their
        links counted. A no-op once done; the number of blobs upgraded."""
        now = _now()
        await self.db.blob_links.update_many(
            {"touched_at": {"$exists": False}}, {"$set": {"touched_at": now}}
        )
        cursor = self.db.blobs.find({"deleting_until": {"$exists": False}}, {"_id": 1})
        old = [doc["_id"] async for doc in cursor]
        for batch in batched(old, 1000):
            counting = await self.db.blob_links.aggregate(
                [
                    {"$match": {"digest": {"$in": batch}}},
                    {"$group": {"_id": "$digest", "links": {"$sum": 1}}},
                ]
            )
            links = {doc["_id"]: int(doc["links"]) async for doc in counting}
            await self.db.blobs.bulk_write(
                [
                    UpdateOne(
                        {"_id": digest, "deleting_until": {"$exists": False}},
                        {
                            "$set": {
                                "stored": True,
                                "links": links.get(digest, 0),
                                "writers": [],
                                "deleting_token": None,
                                "deleting_until": NOT_DELETING,
                                "touched_at": now,
                            }
                        },
                    )
                    for digest in batch
                ]
            )
        return len(old)

    # reading --------------------------------------------------------------------------------

    async def get(self, digest: str) -> Document | None:
        return await self.db.blobs.find_one({"_id": digest})

    async def link_size(self, repository: str, digest: str) -> int | None:
        doc = await self.db.blob_links.find_one({"_id": _link_id(repository, digest)}, {"size": 1})
        return None if doc is None else int(doc["size"])

    async def find_link(self, digest: str, spaces: Iterable[str] | None) -> Document | None:
        """A link to ``digest`` in any repository of ``spaces`` (all spaces when None)."""
        query: Document = {"digest": digest}
        if spaces is not None:
            query["repository"] = {"$regex": "^(" + "|".join(re.escape(s) for s in spaces) + ")/"}
        return await self.db.blob_links.find_one(query)

    # what pushes do ---------------------------------------------------------------------------

    async def reserve(self, digest: str, size: int, token: str) -> bool:
        """Announce an upload about to store ``digest`` (chain 2); whether the blob is stored
        already. BlobBeingDeleted when a collector holds it."""
        for _ in range(3):
            now = _now()
            try:
                # index: blobs _id_1_deleting_until_1 (or _id_)
                doc = await self.db.blobs.find_one_and_update(
                    {"_id": digest, "deleting_until": {"$lt": now}},
                    {
                        # A lapsed claim is taken over: its collector may no longer forget it.
                        "$set": {
                            "touched_at": now,
                            "deleting_token": None,
                            "deleting_until": NOT_DELETING,
                        },
                        "$push": {"writers": {"token": token, "until": now + WRITE_LEASE}},
                        "$setOnInsert": {
                            "size": size,
                            "stored": False,
                            "links": 0,
                            "created_at": now,
                        },
                    },
                    projection={"stored": 1},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                # The document exists and did not match: a collector holds the blob, or another
                # first upload of it inserted the document just now (then the next try finds it).
                doc = await self.db.blobs.find_one({"_id": digest}, {"deleting_until": 1})
                if doc is not None and doc["deleting_until"] >= now:
                    break
                continue
            return bool(doc and doc.get("stored"))
        raise BlobBeingDeleted(digest)

    async def renew(self, digest: str, token: str) -> None:
        """Keep a reservation alive while its upload is still writing (a reservation that
        is gone stays gone: the array filter matches no writer)."""
        # index: _id_ (the writer is picked by the array filter, not the query)
        await self.db.blobs.update_one(
            {"_id": digest},
            {"$set": {"writers.$[mine].until": _now() + WRITE_LEASE}},
            array_filters=[{"mine.token": token}],
        )

    async def release(self, digest: str, token: str) -> None:
        """Withdraw a reservation whose upload failed."""
        await self.db.blobs.update_one({"_id": digest}, {"$pull": {"writers": {"token": token}}})

    async def record_link(self, repository: str, digest: str, size: int, token: str) -> None:
        """The reserved blob is in storage: mark it stored, link it into ``repository`` and end
        the reservation, in one step. BlobBeingDeleted when the reservation had lapsed and a
        collector took the blob (the bytes this upload wrote may be gone)."""

        async def work(session: AsyncClientSession) -> None:
            inserted = await self._upsert_link(repository, digest, size, session)
            now = _now()

            # Only while this upload's reservation holds: had it lapsed, a collector may have
            # deleted the bytes and another upload reserved the blob anew.
            def reserved(doc: Document) -> bool:
                writers = doc.get("writers") or []
                return earlier(doc.get("deleting_until"), now) and any(
                    writer.get("token") == token for writer in writers
                )

            updated = await update_if(
                self.db.blobs,
                digest,
                reserved,
                {
                    "$set": {
                        "stored": True,
                        "touched_at": now,
                        "deleting_token": None,
                        "deleting_until": NOT_DELETING,
                    },
                    "$pull": {"writers": {"token": token}},
                    "$inc": {"links": int(inserted)},
                },
                session,
            )
            if updated is None:
                raise BlobBeingDeleted(digest)

        await self._transaction(work)

    async def link(self, repository: str, digest: str, size: int) -> bool:
        """Link a stored blob into ``repository`` (a mount); False when it is not stored or a
        collector holds it."""

        async def work(session: AsyncClientSession) -> None:
            inserted = await self._upsert_link(repository, digest, size, session)
            now = _now()
            updated = await update_if(
                self.db.blobs,
                digest,
                lambda doc: bool(doc.get("stored")) and earlier(doc.get("deleting_until"), now),
                {
                    "$set": {
                        "touched_at": now,
                        "deleting_token": None,
                        "deleting_until": NOT_DELETING,
                    },
                    "$inc": {"links": int(inserted)},
                },
                session,
            )
            if updated is None:
                raise _Refused(digest)

        try:
            await self._transaction(work)
        except _Refused:
            return False
        return True

    async def _upsert_link(
        self, repository: str, digest: str, size: int, session: AsyncClientSession
    ) -> bool:
        """Create or touch the link; whether it is new."""
        now = _now()
        result = await self.db.blob_links.update_one(
            {"_id": _link_id(repository, digest)},
            {
                "$set": {"touched_at": now},
                "$setOnInsert": {
                    "repository": repository,
                    "digest": digest,
                    "size": size,
                    "created_at": now,
                },
            },
            upsert=True,
            session=session,
        )
        return result.upserted_id is not None

    async def unlink(self, repository: str, digest: str) -> bool:
        async def work(session: AsyncClientSession) -> bool:
            result = await self.db.blob_links.delete_one(
                {"_id": _link_id(repository, digest)}, session=session
            )
            if result.deleted_count != 1:
                return False
            await update_if(  # never below 0: the collector reads links == 0
                self.db.blobs,
                digest,
                lambda doc: int(doc.get("links") or 0) > 0,
                {"$inc": {"links": -1}},
                session,
            )
            return True

        return bool(await self._transaction(work))

    # what collection does --------------------------------------------------------------------

    async def stale_links(self, space: str, cutoff: dt.datetime) -> dict[str, list[str]]:
        """Links in the space untouched since ``cutoff``, by repository."""
        found: dict[str, list[str]] = defaultdict(list)
        # index: blob_links repository_1 (a range on it: the space's repositories)
        cursor = self.db.blob_links.find(
            {"repository": {"$gte": f"{space}/", "$lt": f"{space}0"}},
            {"repository": 1, "digest": 1, "touched_at": 1},
        )
        async for doc in cursor:
            if doc["touched_at"] < cutoff:
                found[doc["repository"]].append(doc["digest"])
        return found

    async def expire_links(
        self, repository: str, digests: list[str], cutoff: dt.datetime
    ) -> list[str]:
        """Remove the links among ``digests`` that no manifest of the repository references and
        no push touched since ``cutoff`` (chain 1); the digests unlinked."""

        async def work(session: AsyncClientSession) -> list[str]:
            # index: manifests repository_1_blobs_1
            referenced = {
                digest
                async for doc in self.db.manifests.find(
                    {"repository": repository, "blobs": {"$in": digests}},
                    {"blobs": 1},
                    session=session,
                )
                for digest in doc["blobs"]
            }
            ids = [_link_id(repository, d) for d in digests if d not in referenced]
            # index: _id_
            going = [
                doc["digest"]
                async for doc in self.db.blob_links.find(
                    {"_id": {"$in": ids}}, {"digest": 1, "touched_at": 1}, session=session
                )
                if doc["touched_at"] < cutoff
            ]
            if going:
                await self.db.blob_links.delete_many(
                    {"_id": {"$in": [_link_id(repository, d) for d in going]}}, session=session
                )
                await self.db.blobs.update_many(  # never below 0, as in unlink
                    {"_id": {"$in": going}, "links": {"$gt": 0}},
                    {"$inc": {"links": -1}},
                    session=session,
                )
            return going

        result: list[str] = await self._transaction(work)
        return result

    def unlinked(
        self, batch: int, *, among: Iterable[str] | None = None
    ) -> AsyncGenerator[list[str], None]:
        """Blobs that look collectable (no links counted, no live writer, not held by a live
        claim: a lapsed claim is taken over), in batches of at most ``batch``: all of them in
        digest order, or those of ``among``."""
        if among is not None:
            return self._unlinked_among(batch, sorted(set(among)))
        return self._unlinked_all(batch)

    async def _unlinked_all(self, batch: int) -> AsyncGenerator[list[str], None]:
        # One cursor for the whole pass: SecantusDB reads every candidate of a query before it
        # applies a limit, so paging would read the rest of the collection once per page.
        # index: blobs links_1__id_1 (equality on links, then _id in its order)
        cursor = self.db.blobs.find({"links": 0}, _COLLECTABLE_FIELDS, batch_size=batch)
        found: list[str] = []
        try:
            async for doc in cursor.sort("_id", ASCENDING):
                if _collectable(doc, _now()):
                    found.append(doc["_id"])
                if len(found) == batch:
                    yield found
                    found = []
        finally:
            await cursor.close()
        if found:
            yield found

    async def _unlinked_among(
        self, batch: int, digests: list[str]
    ) -> AsyncGenerator[list[str], None]:
        for piece in batched(digests, batch):
            docs = await self._blob_docs(piece, _COLLECTABLE_FIELDS)
            now = _now()
            found = sorted(doc["_id"] for doc in docs if _collectable(doc, now))
            if found:
                yield found

    async def _blob_docs(
        self, digests: list[str], fields: Document, session: AsyncClientSession | None = None
    ) -> list[Document]:
        """The documents of those of ``digests`` that have one."""
        docs: list[Document] = []
        for chunk in batched(digests, READ_CHUNK):
            # index: _id_
            cursor = self.db.blobs.find({"_id": {"$in": chunk}}, fields, session=session)
            docs += [doc async for doc in cursor]
        return docs

    async def claim(self, digests: list[str], token: str, lease: dt.timedelta) -> Claim:
        """Claim for deletion those of ``digests`` that no link and no manifest refers to and
        no upload is writing (chain 2)."""

        async def work(session: AsyncClientSession) -> Claim:
            now = _now()
            until = to_millis(now + lease)
            # index: blob_links digest_1
            linked = {
                doc["digest"]
                async for doc in self.db.blob_links.find(
                    {"digest": {"$in": digests}}, {"digest": 1}, session=session
                )
            }
            # index: manifests blobs_1
            used = {
                digest
                async for doc in self.db.manifests.find(
                    {"blobs": {"$in": digests}}, {"blobs": 1}, session=session
                )
                for digest in doc["blobs"]
            }
            free = [d for d in digests if d not in linked and d not in used]
            docs = await self._blob_docs(free, {"size": 1, **_COLLECTABLE_FIELDS}, session)
            sizes = {
                doc["_id"]: int(doc.get("size") or 0)
                for doc in docs
                if _writers_lapsed(doc, now) and doc["deleting_until"] < now
            }
            if sizes:
                # What this transaction read stays true until it commits: a push that changed
                # one of these documents meanwhile makes this write conflict. So the write
                # needs no guard of its own, and finds each blob by _id alone.
                for chunk in batched(list(sizes), WRITE_CHUNK):
                    # index: _id_
                    await self.db.blobs.update_many(
                        {"_id": {"$in": chunk}},
                        # Every writer had lapsed: none of them may link the blob any more.
                        {"$set": {"deleting_token": token, "deleting_until": until, "writers": []}},
                        session=session,
                    )
            return Claim(token, until, sizes)

        claimed: Claim = await self._transaction(work)
        return claimed

    async def unclaim(self, claim: Claim, digests: list[str]) -> None:
        """Give up the claim on blobs whose storage delete failed: pushes may use them again,
        but as blobs whose bytes must be uploaded again (whether storage still holds them is
        unknown), and the next collection retries."""
        if not digests:
            return
        # index: blobs _id_1_deleting_until_1 (the claim's deadline: see forget)
        await self.db.blobs.bulk_write(
            [
                UpdateOne(
                    {"_id": digest, "deleting_until": claim.until},
                    {
                        "$set": {
                            "deleting_until": NOT_DELETING,
                            "deleting_token": None,
                            "stored": False,
                        }
                    },
                )
                for digest in digests
            ],
            ordered=False,
        )

    async def forget(self, claim: Claim, digests: list[str]) -> int:
        """Delete the documents of blobs this claim removed from storage, where it still holds;
        how many.

        A claim's deadline is its own: a blob is claimed again only once the last claim
        lapsed, later, and whatever takes a lapsed claim over resets it. So a blob whose
        document still holds the claim's deadline is still this claim's. One transaction
        reads them by ``_id`` and deletes those: whatever takes one over meanwhile writes its
        document, and then one of the two runs again on what the other left."""
        if not digests:
            return 0

        async def work(session: AsyncClientSession) -> int:
            docs = await self._blob_docs(digests, {"deleting_until": 1}, session)
            held = [
                doc["_id"] for doc in docs if same_moment(doc.get("deleting_until"), claim.until)
            ]
            deleted = 0
            for chunk in batched(held, WRITE_CHUNK):
                # index: _id_
                result = await self.db.blobs.delete_many({"_id": {"$in": chunk}}, session=session)
                deleted += result.deleted_count
            return deleted

        forgotten: int = await self._transaction(work)
        return forgotten
