"""Repositories, manifests and tags: what the OCI API reads and writes.

Collections (``_id`` chosen so that uniqueness and the hot lookups need no extra index):
- ``repositories`` ``{_id: "<space>/<name>", space, created_at, tags_stamp, feed_top}``:
                   ``tags_stamp`` moves in every transaction that changes the repository's
                   tags, so a list of them read after it is at least that new; ``feed_top``
                   is the feed's hint (``shared.metadata.feed``)
- ``manifests``    ``{_id: "<repo>@<digest>", repository, digest, media_type, size, total_size,
                   content, blobs, manifests, subject, artifact_type, config_media_type,
                   annotations, created_at, touched_at}``: ``touched_at`` moves with every
                   push of it
- ``tags``         ``{_id: "<repo>:<tag>", repository, tag, digest, updated_at, feed_key,
                   prerelease}`` (``feed_key``, ``prerelease``: ``shared.metadata.feed``)

A space's ``repositories_stamp`` (in ``spaces``) moves whenever one of its repositories is
listed. Repositories are never removed.

Every hot query names the index that serves it in a comment beside it; the names are the
default ones MongoDB gives (``field_1_other_1``), and tests/integration/test_metadata_plans.py
checks with ``explain`` that each query uses its index. Prefix matches are written as ranges
(``prefix_range``), never as regular expressions, so that any server can bound the index scan,
and a filter names only what its index bounds when the rest is cheaper checked here: the
embedded server (SecantusDB) reads every document of the range an index gives before it
filters, sorts and applies a limit, so there the range is what a query costs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bson import Binary
from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.batches import batched
from shared.events.envelope import CloudEvent
from shared.events.outbox import Outbox
from shared.metadata.connection import Document, Session, Transaction, to_millis, utcnow
from shared.metadata.errors import SpaceMissing
from shared.metadata.feed import feed_fields
from shared.oci.manifest import ParsedManifest

LISTED_REPOSITORIES_REMEMBERED = 100_000
# Ids per ``$in``: the embedded server checks each document it fetches against the whole list,
# so a list costs the square of its length there.
IN_CHUNK = 100


@dataclass(frozen=True, slots=True)
class StoredManifest:
    repository: str
    digest: str
    media_type: str
    size: int
    content: bytes
    subject: str | None
    artifact_type: str | None
    config_media_type: str | None
    annotations: dict[str, str]

    @classmethod
    def from_document(cls, doc: Document) -> StoredManifest:
        return cls(
            repository=doc["repository"],
            digest=doc["digest"],
            media_type=doc["media_type"],
            size=doc["size"],
            content=bytes(doc["content"]),
            subject=doc.get("subject"),
            artifact_type=doc.get("artifact_type"),
            config_media_type=doc.get("config_media_type"),
            annotations=doc.get("annotations") or {},
        )


@dataclass(frozen=True, slots=True)
class RepositoryRecord:
    name: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ManifestPush:
    """One manifest PUT to record: the manifest and its bytes, the tag it moves (None: a
    push by digest) and its ``image.pushed`` event."""

    repository: str
    manifest: ParsedManifest
    content: bytes
    tag: str | None
    event: CloudEvent


@dataclass(frozen=True, slots=True)
class MissingReferences:
    """Why a push was refused: what it references that its repository does not hold."""

    blobs: list[str]
    manifests: list[str]


def _manifest_fields(push: ManifestPush, now: dt.datetime) -> Document:
    manifest = push.manifest
    return {
        "repository": push.repository,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "size": manifest.size,
        "total_size": manifest.size + manifest.referenced_size,
        "content": Binary(push.content),
        "blobs": list(manifest.blobs),
        "manifests": list(manifest.manifests),
        "subject": manifest.subject,
        "artifact_type": manifest.artifact_type,
        "config_media_type": manifest.config_media_type,
        "annotations": manifest.annotations,
        "created_at": now,
    }


async def _touch_existing(
    collection: AsyncCollection[Document], ids: set[str], session: Session
) -> set[str]:
    """In a transaction: set ``touched_at`` on these documents (the write is the point: a
    concurrent removal of one of them now conflicts with it); the ids of those missing. One
    write per ``IN_CHUNK`` ids when all exist, the usual case."""
    missing: set[str] = set()
    now = utcnow()
    for chunk in batched(sorted(ids), IN_CHUNK):
        # index: _id_
        result = await collection.update_many(
            {"_id": {"$in": chunk}}, {"$set": {"touched_at": now}}, session=session
        )
        if result.matched_count == len(chunk):
            continue
        # index: _id_
        cursor = collection.find({"_id": {"$in": chunk}}, {"_id": 1}, session=session)
        missing |= set(chunk) - {doc["_id"] async for doc in cursor}
    return missing


class ImageRepository:
    def __init__(
        self, db: AsyncDatabase[Document], transaction: Transaction[Any], outbox: Outbox
    ) -> None:
        self.db = db
        self._transaction = transaction
        self.outbox = outbox
        self._listed_repositories: set[str] = set()

    async def ensure_indexes(self) -> None:
        db = self.db
        await db.repositories.create_index([("space", ASCENDING), ("_id", ASCENDING)])
        await db.manifests.create_index([("repository", ASCENDING), ("subject", ASCENDING)])
        await db.manifests.create_index([("repository", ASCENDING), ("blobs", ASCENDING)])
        await db.manifests.create_index([("blobs", ASCENDING)])
        await db.manifests.create_index([("manifests", ASCENDING)])
        # Every index costs each push its entries; this one served no query.
        if "digest_1" in await db.manifests.index_information():
            await db.manifests.drop_index("digest_1")
        await db.tags.create_index([("repository", ASCENDING), ("tag", ASCENDING)], unique=True)
        await db.tags.create_index([("repository", ASCENDING), ("digest", ASCENDING)])
        await db.tags.create_index([("repository", ASCENDING), ("feed_key", ASCENDING)])
        await db.tags.create_index(
            [("repository", ASCENDING), ("prerelease", ASCENDING), ("feed_key", ASCENDING)]
        )

    async def touch_repository(self, repository: str) -> None:
        """Make sure the repository is listed (an upload or a mount into it). Repositories
        are never removed, so one this process has seen listed needs no round trip again."""
        if repository in self._listed_repositories:
            return

        async def touch(session: Session) -> None:
            # index: _id_
            result = await self.db.repositories.update_one(
                {"_id": repository},
                {"$setOnInsert": {"space": repository.split("/", 1)[0], "created_at": utcnow()}},
                upsert=True,
                session=session,
            )
            if result.upserted_id is not None:  # listed with its space's stamp, or not at all
                await self._repositories_changed(repository, session)

        await self._transaction(touch)
        if len(self._listed_repositories) >= LISTED_REPOSITORIES_REMEMBERED:
            self._listed_repositories.clear()
        self._listed_repositories.add(repository)

    async def repository_exists(self, repository: str) -> bool:
        # index: _id_
        return await self.db.repositories.find_one({"_id": repository}, {"_id": 1}) is not None

    async def repositories_stamps(self, spaces: Iterable[str] | None) -> dict[str, int]:
        """Each space's ``repositories_stamp``, which moves whenever a repository of it is
        listed (a list of its repositories read after it is at least that new), of
        ``spaces`` that exist (None: every space)."""
        if spaces is None:
            # no index: every space (a short list)
            cursor = self.db.spaces.find({}, {"repositories_stamp": 1})
        else:
            # index: _id_
            cursor = self.db.spaces.find({"_id": {"$in": list(spaces)}}, {"repositories_stamp": 1})
        return {doc["_id"]: int(doc.get("repositories_stamp", 0)) async for doc in cursor}

    async def space_repositories(self, space: str) -> list[RepositoryRecord]:
        """Every repository of the space, in the order of their names."""
        # index: repositories space_1__id_1 (equality on space, _id in its order)
        cursor = self.db.repositories.find(
            {"space": space, "_id": {"$gt": ""}}, {"created_at": 1}, batch_size=10_000
        ).sort("_id", ASCENDING)
        return [RepositoryRecord(doc["_id"], doc["created_at"]) async for doc in cursor]

    async def commit_pushes(self, pushes: Sequence[ManifestPush]) -> list[MissingReferences | None]:
        """Record several manifest PUTs in one transaction (a group commit: the registry
        gathers the PUTs that arrive while a transaction runs into the next one); for each,
        None when it was recorded, else what it references that is missing, and then nothing
        of its own was written (its manifest, tag, repository and event; the references it
        does hold are touched like every push's, as a use of them).

        Every push touches the links of the blobs it references and the manifests it lists
        (chain 1 of shared/metadata/blobs.py: a collector removing one of them writes the same
        document, so only one of the two commits), its manifest (``touched_at`` moves with
        every push) and its tag, bumps its repository's ``tags_stamp`` and raises its
        ``feed_top``, and records its event; pushes to one tag take effect in the order given.
        """
        outcomes: list[MissingReferences | None] = []

        async def work(session: Session) -> None:
            outcomes[:] = await self._missing_references(pushes, session)
            accepted = [
                push for push, missing in zip(pushes, outcomes, strict=True) if missing is None
            ]
            if accepted:
                await self._record_pushes(accepted, session)

        await self._transaction(work)
        return outcomes

    async def _missing_references(
        self, pushes: Sequence[ManifestPush], session: Session
    ) -> list[MissingReferences | None]:
        links = {f"{p.repository}@{d}" for p in pushes for d in p.manifest.blobs}
        children = {f"{p.repository}@{d}" for p in pushes for d in p.manifest.manifests}
        subjects = {f"{p.repository}@{p.manifest.subject}" for p in pushes if p.manifest.subject}
        missing_links = await _touch_existing(self.db.blob_links, links, session)
        missing_children = await _touch_existing(self.db.manifests, children, session)
        # A subject may be absent (referrers may come first); when it is there, retention
        # must see the referrer before it removes the subject.
        await _touch_existing(self.db.manifests, subjects - children, session)
        outcomes: list[MissingReferences | None] = []
        for p in pushes:
            blobs = [d for d in p.manifest.blobs if f"{p.repository}@{d}" in missing_links]
            listed = [d for d in p.manifest.manifests if f"{p.repository}@{d}" in missing_children]
            outcomes.append(MissingReferences(blobs, listed) if blobs or listed else None)
        return outcomes

    async def _record_pushes(self, pushes: Sequence[ManifestPush], session: Session) -> None:
        now = utcnow()
        manifests = [
            # index: _id_
            UpdateOne(
                {"_id": f"{p.repository}@{p.manifest.digest}"},
                {"$set": {"touched_at": now}, "$setOnInsert": _manifest_fields(p, now)},
                upsert=True,
            )
            for p in pushes
        ]
        await self.db.manifests.bulk_write(manifests, session=session)
        moment = to_millis(now)
        tops: dict[str, str | None] = {}
        tags: list[UpdateOne] = []
        for p in pushes:
            tops.setdefault(p.repository, None)
            if p.tag is None:
                continue
            fields = feed_fields(p.tag, moment)
            # index: _id_
            tags.append(
                UpdateOne(
                    {"_id": f"{p.repository}:{p.tag}"},
                    {
                        "$set": {"digest": p.manifest.digest, "updated_at": moment, **fields},
                        "$setOnInsert": {"repository": p.repository, "tag": p.tag},
                    },
                    upsert=True,
                )
            )
            key, top = fields["feed_key"], tops[p.repository]
            tops[p.repository] = key if top is None or (key is not None and key > top) else top
        if tags:
            await self.db.tags.bulk_write(tags, session=session)
        tagged = {p.repository for p in pushes if p.tag is not None}
        for repository, top in tops.items():
            await self._repository_pushed(repository, repository in tagged, top, session)
        await self.outbox.add([p.event for p in pushes], session=session)

    async def _repository_pushed(
        self, repository: str, tagged: bool, feed_key: str | None, session: Session
    ) -> None:
        """In a push's transaction: list the repository (a push that fails lists nothing), and
        when tags moved, move its ``tags_stamp`` and raise its ``feed_top``."""
        change: Document = {
            "$setOnInsert": {"space": repository.split("/", 1)[0], "created_at": utcnow()}
        }
        if tagged:
            change["$inc"] = {"tags_stamp": 1}
        if feed_key is not None:
            change["$max"] = {"feed_top": feed_key}
        # index: _id_
        result = await self.db.repositories.update_one(
            {"_id": repository}, change, upsert=True, session=session
        )
        if result.upserted_id is not None:
            await self._repositories_changed(repository, session)

    async def tags_changed(self, repository: str, session: Session) -> None:
        """In the transaction that removes tags: move the repository's ``tags_stamp`` (a
        listing remembered under another stamp is stale)."""
        # index: _id_
        await self.db.repositories.update_one(
            {"_id": repository}, {"$inc": {"tags_stamp": 1}}, session=session
        )

    async def _repositories_changed(self, repository: str, session: Session) -> None:
        """A repository was just listed: move its space's ``repositories_stamp`` (a list of
        the space's repositories remembered under another stamp is stale). The space must
        still be there: its deletion writes the same document, so of a push listing its
        first repository and the deletion, the second to commit sees the first."""
        space = repository.split("/", 1)[0]
        # index: _id_
        result = await self.db.spaces.update_one(
            {"_id": space}, {"$inc": {"repositories_stamp": 1}}, session=session
        )
        if result.matched_count == 0:
            raise SpaceMissing(space)

    async def get_manifest(
        self, repository: str, digest: str, *, session: Session | None = None
    ) -> StoredManifest | None:
        # index: _id_
        doc = await self.db.manifests.find_one({"_id": f"{repository}@{digest}"}, session=session)
        return None if doc is None else StoredManifest.from_document(doc)

    async def delete_manifest(
        self, repository: str, digest: str, *, session: Session
    ) -> tuple[StoredManifest | None, list[str]]:
        """Delete the manifest and the tags pointing at it; return both.

        Tags go first so that no tag ever points at a missing manifest.
        """
        # index: tags repository_1_digest_1
        tags = [
            doc["tag"]
            async for doc in self.db.tags.find(
                {"repository": repository, "digest": digest}, {"tag": 1}, session=session
            )
        ]
        if tags:
            await self.db.tags.delete_many(
                {"repository": repository, "digest": digest}, session=session
            )
            await self.tags_changed(repository, session)
        doc = await self.db.manifests.find_one_and_delete(
            {"_id": f"{repository}@{digest}"}, session=session
        )
        if doc is None and not tags:
            raise LookupError(digest)
        return (None if doc is None else StoredManifest.from_document(doc)), tags

    async def referrers(
        self, repository: str, subject: str, artifact_type: str | None
    ) -> list[StoredManifest]:
        query: Document = {"repository": repository, "subject": subject}
        if artifact_type is not None:
            # A manifest's artifact type is its artifactType, else its config's media type.
            query["$or"] = [
                {"artifact_type": artifact_type},
                {"artifact_type": None, "config_media_type": artifact_type},
            ]
        # index: manifests repository_1_subject_1
        cursor = self.db.manifests.find(query).sort("digest", ASCENDING)
        return [StoredManifest.from_document(doc) async for doc in cursor]

    async def get_tag(self, repository: str, tag: str) -> str | None:
        # index: _id_
        doc = await self.db.tags.find_one({"_id": f"{repository}:{tag}"}, {"digest": 1})
        return None if doc is None else str(doc["digest"])

    async def all_tags(self, repository: str) -> list[str]:
        """Every tag of the repository, in lexical order."""
        # index: tags repository_1_tag_1 (in its order)
        cursor = self.db.tags.find(
            {"repository": repository, "tag": {"$gt": ""}}, {"_id": 0, "tag": 1}, batch_size=10_000
        ).sort("tag", ASCENDING)
        return [doc["tag"] async for doc in cursor]

    async def tags_stamp(self, repository: str) -> int | None:
        """What changes in every transaction that changes the repository's tags (a listing
        read after it is at least that new); None when there is no such repository."""
        # index: _id_
        doc = await self.db.repositories.find_one({"_id": repository}, {"tags_stamp": 1})
        return None if doc is None else int(doc.get("tags_stamp", 0))

    async def delete_tag(self, repository: str, tag: str, *, session: Session) -> str | None:
        """Delete the tag; the digest it pointed at, or None when there was no such tag."""
        # index: _id_
        doc = await self.db.tags.find_one_and_delete(
            {"_id": f"{repository}:{tag}"}, {"digest": 1}, session=session
        )
        if doc is None:
            return None
        await self.tags_changed(repository, session)
        return str(doc["digest"])
