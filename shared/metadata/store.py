"""Metadata documents and every query on them, behind one class.

Accounts (users, memberships, API keys) are in ``accounts``, reached as ``.accounts``.

Collections (``_id`` chosen so that uniqueness and the hot lookups need no extra index):
- ``spaces``       ``{_id: "spaces-1", name, anonymous_pull, created_at}``
- ``repositories`` ``{_id: "<space>/<name>", space, created_at}``
- ``blobs``, ``blob_links``: blobs in storage and what each repository may read, in ``blobs``
                   (reached as ``.blobs``), with the protocol that garbage collection follows
- ``manifests``    ``{_id: "<repo>@<digest>", repository, digest, media_type, size, content,
                   blobs, manifests, subject, artifact_type, config_media_type, annotations,
                   created_at, touched_at}``: ``touched_at`` moves with every push of it
- ``tags``         ``{_id: "<repo>:<tag>", repository, tag, digest, updated_at, feed_key,
                   prerelease}``: ``feed_key`` orders the feed view (the tag read as an Octopus
                   version, then push time, then tag; None when the tag is no version), written
                   with the tag (``shared.versions.order_key``)
- ``uploads``      ``{_id: upload id, repository, offset, storage, lock, created_at, updated_at}``

Every hot query names the index that serves it in a comment beside it; the names are the
default ones MongoDB gives (``field_1_other_1``), and tests/integration/test_metadata_plans.py
checks with ``explain`` that each query uses its index. Prefix matches are written as ranges
(``_prefix_range``), never as regular expressions, so that any server can bound the index scan,
and a filter names only what its index bounds when the rest is cheaper checked here: the
embedded server (SecantusDB) reads every document of the range an index gives before it
filters, sorts and applies a limit, so there the range is what a query costs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bson import Binary
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.events.envelope import CloudEvent
from shared.events.outbox import Outbox
from shared.metadata.accounts import AccountStore
from shared.metadata.blobs import BlobRecords
from shared.metadata.builds import BuildStore
from shared.oci.manifest import ParsedManifest
from shared.versions import order_key, try_parse_docker_tag

Document = dict[str, Any]


_NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LISTED_REPOSITORIES_REMEMBERED = 100_000
_NEVER_RUN = {"last_run_at": _NEVER, "lease_until": _NEVER, "owner": None}
# Where the feed view reads a page: from a key near the top, the keys that share its first
# characters, fewer each time (``order_key`` writes major, minor, patch and revision in 8 hex
# digits each, then the release): the same numbers and release; the same major.minor.patch;
# then patches in blocks of 16 and 256; the same major.minor; minors in blocks of 16 and
# 256; the same major; majors in blocks of 16 and 256; every version.
_FEED_WINDOWS = (33, 24, 23, 22, 16, 15, 14, 8, 7, 6, 0)
# Tags given their feed key per round trip when old tags are upgraded at start-up.
FEED_KEY_BATCH = 1000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _prefix_range(prefix: str) -> Document:
    """The strings that start with ``prefix``, as a range an index can bound (MongoDB compares
    strings byte by byte, and a prefix's last character here is never the largest one)."""
    return {"$gte": prefix, "$lt": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


def _version_fields(tag: str, pushed_at: dt.datetime) -> Document:
    """What the feed view sorts and filters a tag by: its Octopus order, then push time, then
    the tag itself (so the order is total and a cursor is one string)."""
    version = try_parse_docker_tag(tag)
    if version is None:
        return {"feed_key": None, "prerelease": None}
    millis = (pushed_at - _NEVER) // dt.timedelta(milliseconds=1)
    return {
        "feed_key": f"{order_key(version)}|{millis:013d}|{tag}",
        "prerelease": version.is_prerelease,
    }


def _to_millis(moment: dt.datetime) -> dt.datetime:
    """What MongoDB keeps of a moment (milliseconds), so a key made from it matches it."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


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
    collection: AsyncCollection[Document], ids: set[str], session: AsyncClientSession
) -> set[str]:
    """In a transaction: set ``touched_at`` on these documents (the write is the point: a
    concurrent removal of one of them now conflicts with it); the ids of those missing. One
    write when all exist, the usual case."""
    if not ids:
        return set()
    # index: _id_
    result = await collection.update_many(
        {"_id": {"$in": list(ids)}}, {"$set": {"touched_at": utcnow()}}, session=session
    )
    if result.matched_count == len(ids):
        return set()
    # index: _id_
    cursor = collection.find({"_id": {"$in": list(ids)}}, {"_id": 1}, session=session)
    return ids - {doc["_id"] async for doc in cursor}


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
class Upload:
    id: str
    repository: str
    offset: int
    storage: dict[str, Any]
    created_at: dt.datetime

    @classmethod
    def from_document(cls, doc: Document) -> Upload:
        return cls(doc["_id"], doc["repository"], doc["offset"], doc["storage"], doc["created_at"])


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


class TransactionsUnsupported(RuntimeError):
    pass


T = TypeVar("T")


class MetadataStore:
    def __init__(self, client: AsyncMongoClient[Document], database: str = "spacedock") -> None:
        self.client = client
        self.db: AsyncDatabase[Document] = client[database]
        self.accounts = AccountStore(self.db, self.transaction)
        self.outbox = Outbox(self.db)
        self.builds = BuildStore(self.db, self.outbox, self.transaction)
        self.blobs = BlobRecords(self.db, self.transaction)
        self._listed_repositories: set[str] = set()

    @classmethod
    def connect(
        cls, url: str, database: str = "spacedock", timeout_ms: int = 5000
    ) -> MetadataStore:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            socketTimeoutMS=max(timeout_ms * 4, 20000),
            tz_aware=True,
        )
        return cls(client, client.get_default_database("spacedock").name)

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    async def ensure_indexes(self) -> None:
        db = self.db
        await db.repositories.create_index([("space", ASCENDING), ("_id", ASCENDING)])
        await db.manifests.create_index([("repository", ASCENDING), ("subject", ASCENDING)])
        await db.manifests.create_index([("repository", ASCENDING), ("blobs", ASCENDING)])
        # Every index costs each push its entries; this one served no query.
        if "digest_1" in await db.manifests.index_information():
            await db.manifests.drop_index("digest_1")
        await db.manifests.create_index([("blobs", ASCENDING)])
        await db.manifests.create_index([("manifests", ASCENDING)])
        await db.tags.create_index([("repository", ASCENDING), ("tag", ASCENDING)], unique=True)
        await db.tags.create_index([("repository", ASCENDING), ("digest", ASCENDING)])
        await db.tags.create_index([("repository", ASCENDING), ("feed_key", ASCENDING)])
        await db.tags.create_index(
            [("repository", ASCENDING), ("prerelease", ASCENDING), ("feed_key", ASCENDING)]
        )
        await db.uploads.create_index([("updated_at", ASCENDING)])
        await self.accounts.ensure_indexes()
        await self.outbox.ensure_indexes()
        await self.builds.ensure_indexes()
        await self.blobs.ensure_indexes()
        await self.blobs.upgrade()
        await db.pins.create_index([("repository", ASCENDING)])
        await db.pins.create_index([("space", ASCENDING)])
        await self.upgrade_tags()

    async def upgrade_tags(self) -> int:
        """Give tags that have no ``feed_key`` (written before the feed kept its order with
        them, or since by an instance of an older version) theirs: a pass at every start, in
        batches of ``FEED_KEY_BATCH``. Idempotent, and safe beside pushes: a key is written
        only where there still is none, so a push's own key is never overwritten. The number
        of tags upgraded."""
        upgraded = 0
        batch: list[UpdateOne] = []
        # no index: one read-only pass over the tags at start (not a hot query); writes only
        # where a key is missing
        cursor = self.db.tags.find(
            {"feed_key": {"$exists": False}}, {"tag": 1, "updated_at": 1}, batch_size=FEED_KEY_BATCH
        )
        async for doc in cursor:
            fields = _version_fields(doc["tag"], doc["updated_at"])
            batch.append(
                UpdateOne({"_id": doc["_id"], "feed_key": {"$exists": False}}, {"$set": fields})
            )
            if len(batch) == FEED_KEY_BATCH:
                upgraded += await self._write_upgrades(batch)
                batch = []
        upgraded += await self._write_upgrades(batch)
        return upgraded

    async def _write_upgrades(self, batch: list[UpdateOne]) -> int:
        if not batch:
            return 0
        result = await self.db.tags.bulk_write(batch, ordered=False)
        return result.modified_count

    async def check_transactions(self) -> None:
        """Fail with a clear message unless the server can run multi-document transactions,
        which the event outbox needs (a replica set, even of one member, or a sharded
        cluster)."""
        hello = await self.db.command("hello")
        if not hello.get("setName") and hello.get("msg") != "isdbgrid":
            raise TransactionsUnsupported(
                "MongoDB must be a replica set (one member is enough: start mongod with "
                "--replSet rs0 and run rs.initiate()); Spacedock records each change and its "
                "event in one transaction"
            )

    async def transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, retried by the driver on transient errors."""
        async with self.client.start_session() as session:
            return await session.with_transaction(work)

    # spaces ---------------------------------------------------------------------------------

    async def get_space(self, space_id: str) -> Document | None:
        return await self.db.spaces.find_one({"_id": space_id})

    async def list_spaces(self) -> list[Document]:
        return [doc async for doc in self.db.spaces.find({}).sort("_id", ASCENDING)]

    async def create_space(self, space_id: str, name: str, anonymous_pull: bool) -> Document:
        """Insert a space; DuplicateKeyError when the id is taken. A space starts with no
        members, even when one of the same id existed before."""
        doc = {
            "_id": space_id,
            "name": name,
            "anonymous_pull": anonymous_pull,
            "created_at": utcnow(),
        }

        async def create(session: AsyncClientSession) -> None:
            await self.db.spaces.insert_one(doc, session=session)
            await self.db.memberships.delete_many({"space": space_id}, session=session)

        await self.transaction(create)
        return doc

    async def space_ids(self, prefix: str) -> list[str]:
        cursor = self.db.spaces.find({"_id": {"$regex": f"^{re.escape(prefix)}"}}, {"_id": 1})
        return [doc["_id"] async for doc in cursor]

    async def update_space(self, space_id: str, changes: Document) -> Document | None:
        return await self.db.spaces.find_one_and_update(
            {"_id": space_id}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )

    async def delete_space(self, space_id: str) -> list[str] | None:
        """Delete the space and its memberships together; the former members, or None when
        there was no such space."""

        async def delete(session: AsyncClientSession) -> list[str] | None:
            result = await self.db.spaces.delete_one({"_id": space_id}, session=session)
            if result.deleted_count == 0:
                return None
            members = [
                doc["username"]
                async for doc in self.db.memberships.find({"space": space_id}, session=session)
            ]
            await self.db.memberships.delete_many({"space": space_id}, session=session)
            return members

        return await self.transaction(delete)

    async def set_retention(self, space_id: str, policy: Document) -> bool:
        result = await self.db.spaces.update_one({"_id": space_id}, {"$set": {"retention": policy}})
        return result.matched_count == 1

    # pins -------------------------------------------------------------------------------------

    async def pin_tag(self, repository: str, tag: str, by: str | None) -> tuple[Document, bool]:
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
        return pin, before is None

    async def unpin_tag(self, repository: str, tag: str) -> bool:
        result = await self.db.pins.delete_one({"_id": f"{repository}:{tag}"})
        return result.deleted_count == 1

    async def pinned_tags(self, repository: str) -> set[str]:
        # index: pins repository_1
        cursor = self.db.pins.find({"repository": repository}, {"tag": 1})
        return {doc["tag"] async for doc in cursor}

    # what retention looks at ---------------------------------------------------------------

    def _in_space(self, space_id: str) -> Document:
        return {"repository": _prefix_range(f"{space_id}/")}

    async def space_tags(self, space_id: str) -> list[Document]:
        # index: one of tags on repository first (repository_1_tag_1, repository_1_digest_1,
        # ...: a range on their first field)
        cursor = self.db.tags.find(
            self._in_space(space_id),
            {"repository": 1, "tag": 1, "digest": 1, "updated_at": 1},
        )
        return [doc async for doc in cursor]

    async def space_pins(self, space_id: str) -> set[tuple[str, str]]:
        # index: pins space_1
        cursor = self.db.pins.find({"space": space_id}, {"repository": 1, "tag": 1})
        return {(doc["repository"], doc["tag"]) async for doc in cursor}

    async def space_manifests(self, space_id: str) -> list[Document]:
        """Every manifest of the space, without its content."""
        # index: one of manifests on repository first (repository_1_subject_1,
        # repository_1_blobs_1: a range on their first field)
        cursor = self.db.manifests.find(self._in_space(space_id), {"content": 0})
        return [doc async for doc in cursor]

    async def blobs_only_in(self, manifests: list[Document]) -> dict[str, int]:
        """The blobs that only ``manifests`` reference (in any repository) and no other
        repository links, with their sizes: what removing them frees once the grace period
        of their links has passed."""
        if not manifests:
            return {}
        ids = [doc["_id"] for doc in manifests]
        candidates = {blob for doc in manifests for blob in doc.get("blobs") or []}
        if not candidates:
            return {}
        # The filters name only the indexed field; the rest is checked here, so that every
        # server bounds the scan by the index (blobs many manifests share are few).
        going = set(ids)
        # index: manifests blobs_1
        still = {
            blob
            async for doc in self.db.manifests.find(
                {"blobs": {"$in": list(candidates)}}, {"blobs": 1}
            )
            if doc["_id"] not in going
            for blob in doc.get("blobs") or []
        }
        repositories = {doc["repository"] for doc in manifests}
        # index: blob_links digest_1
        elsewhere = {
            doc["digest"]
            async for doc in self.db.blob_links.find(
                {"digest": {"$in": list(candidates)}}, {"digest": 1, "repository": 1}
            )
            if doc["repository"] not in repositories
        }
        orphans = list(candidates - still - elsewhere)
        # index: _id_
        cursor = self.db.blobs.find({"_id": {"$in": orphans}}, {"size": 1})
        return {doc["_id"]: int(doc["size"]) async for doc in cursor}

    async def space_has_repositories(self, space_id: str) -> bool:
        # index: repositories space_1__id_1
        return await self.db.repositories.find_one({"space": space_id}, {"_id": 1}) is not None

    async def newest_versions(
        self,
        repository: str,
        *,
        include_prerelease: bool,
        before: str | None,
        limit: int,
    ) -> list[Document]:
        """The repository's tags read as Octopus versions, newest first (ties: the later push,
        then the greater tag), after the cursor ``before`` (a ``cursor`` this returned): each
        ``{tag, digest, size, pushed_at, prerelease, cursor}``. Tags that are no version are
        left out.

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
            {
                "tag": doc["tag"],
                "digest": doc["digest"],
                "size": sizes.get(doc["digest"], 0),
                "pushed_at": doc["updated_at"],
                "prerelease": bool(doc["prerelease"]),
                "cursor": doc["feed_key"],
            }
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
        # index: _id_
        await self.db.repositories.update_one(
            {"_id": repository, "feed_top": seen}, {"$set": {"feed_top": key}}
        )

    async def _sizes(self, repository: str, digests: set[str]) -> dict[str, int]:
        """The size of each manifest with what it references, by digest."""
        # index: _id_
        cursor = self.db.manifests.find(
            {"_id": {"$in": [f"{repository}@{d}" for d in digests]}},
            {"digest": 1, "size": 1, "total_size": 1},
        )
        return {doc["digest"]: int(doc.get("total_size") or doc["size"]) async for doc in cursor}

    async def ensure_space(self, space_id: str, name: str) -> None:
        await self.db.spaces.update_one(
            {"_id": space_id},
            {"$setOnInsert": {"name": name, "anonymous_pull": False, "created_at": utcnow()}},
            upsert=True,
        )

    # repositories ---------------------------------------------------------------------------

    async def touch_repository(self, repository: str) -> None:
        """Make sure the repository is listed (an upload or a mount into it). Repositories
        are never removed, so one this process has seen listed needs no round trip again."""
        if repository in self._listed_repositories:
            return
        # index: _id_
        result = await self.db.repositories.update_one(
            {"_id": repository},
            {"$setOnInsert": {"space": repository.split("/", 1)[0], "created_at": utcnow()}},
            upsert=True,
        )
        if result.upserted_id is not None:
            await self._repositories_changed(repository)
        if len(self._listed_repositories) >= LISTED_REPOSITORIES_REMEMBERED:
            self._listed_repositories.clear()
        self._listed_repositories.add(repository)

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

    # manifests ------------------------------------------------------------------------------

    async def commit_pushes(self, pushes: Sequence[ManifestPush]) -> list[MissingReferences | None]:
        """Record several manifest PUTs in one transaction (a group commit: the registry
        gathers the PUTs that arrive while a transaction runs into the next one); for each,
        None when it was recorded, else what it references that is missing, and then nothing
        of it was written.

        Every push touches the links of the blobs it references and the manifests it lists
        (chain 1 of shared/metadata/blobs.py: a collector removing one of them writes the same
        document, so only one of the two commits), its manifest (``touched_at`` moves with
        every push) and its tag, bumps its repository's ``tags_stamp`` and raises its
        ``feed_top``, and records its event; pushes to one tag take effect in the order given.
        """
        outcomes: list[MissingReferences | None] = []

        async def work(session: AsyncClientSession) -> None:
            outcomes[:] = await self._missing_references(pushes, session)
            accepted = [
                push for push, missing in zip(pushes, outcomes, strict=True) if missing is None
            ]
            if accepted:
                await self._record_pushes(accepted, session)

        await self.transaction(work)
        return outcomes

    async def _missing_references(
        self, pushes: Sequence[ManifestPush], session: AsyncClientSession
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

    async def _record_pushes(
        self, pushes: Sequence[ManifestPush], session: AsyncClientSession
    ) -> None:
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
        moment = _to_millis(now)
        tops: dict[str, str | None] = {}
        tags: list[UpdateOne] = []
        for p in pushes:
            tops.setdefault(p.repository, None)
            if p.tag is None:
                continue
            fields = _version_fields(p.tag, moment)
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
        self, repository: str, tagged: bool, feed_key: str | None, session: AsyncClientSession
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

    async def _tags_changed(self, repository: str, session: AsyncClientSession) -> None:
        """In the transaction that removes tags: move the repository's ``tags_stamp`` (a
        listing remembered under another stamp is stale)."""
        # index: _id_
        await self.db.repositories.update_one(
            {"_id": repository}, {"$inc": {"tags_stamp": 1}}, session=session
        )

    async def _repositories_changed(
        self, repository: str, session: AsyncClientSession | None = None
    ) -> None:
        """A repository was just listed: move its space's ``repositories_stamp`` (a list of
        the space's repositories remembered under another stamp is stale)."""
        # index: _id_
        await self.db.spaces.update_one(
            {"_id": repository.split("/", 1)[0]},
            {"$inc": {"repositories_stamp": 1}},
            session=session,
        )

    async def get_manifest(
        self, repository: str, digest: str, *, session: AsyncClientSession | None = None
    ) -> StoredManifest | None:
        # index: _id_
        doc = await self.db.manifests.find_one({"_id": f"{repository}@{digest}"}, session=session)
        return None if doc is None else StoredManifest.from_document(doc)

    async def delete_manifest(
        self, repository: str, digest: str, *, session: AsyncClientSession
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
            await self._tags_changed(repository, session)
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

    # tags -----------------------------------------------------------------------------------

    async def get_tag(self, repository: str, tag: str) -> str | None:
        # index: _id_
        doc = await self.db.tags.find_one({"_id": f"{repository}:{tag}"}, {"digest": 1})
        return None if doc is None else str(doc["digest"])

    async def list_tags(self, repository: str, *, after: str | None, limit: int) -> list[str]:
        # Always a range on tag, which only this index of tags has second: any server picks
        # it, and walks it in the order asked for.
        query: Document = {"repository": repository, "tag": {"$gt": after or ""}}
        # index: tags repository_1_tag_1 (in its order, from ``after``)
        cursor = self.db.tags.find(query, {"_id": 0, "tag": 1}).sort("tag", ASCENDING)
        return [doc["tag"] async for doc in cursor.limit(limit)]

    async def delete_tag(
        self, repository: str, tag: str, *, session: AsyncClientSession
    ) -> str | None:
        """Delete the tag; the digest it pointed at, or None when there was no such tag."""
        # index: _id_
        doc = await self.db.tags.find_one_and_delete(
            {"_id": f"{repository}:{tag}"}, {"digest": 1}, session=session
        )
        if doc is None:
            return None
        await self._tags_changed(repository, session)
        return str(doc["digest"])

    async def remove_tag_if_unchanged(
        self,
        repository: str,
        tag: str,
        digest: str,
        pushed_at: dt.datetime,
        session: AsyncClientSession,
    ) -> bool:
        """Delete the tag only if it still points at ``digest`` since ``pushed_at`` (not
        pushed again since whoever looked); whether it did."""
        # index: _id_
        result = await self.db.tags.delete_one(
            {"_id": f"{repository}:{tag}", "digest": digest, "updated_at": pushed_at},
            session=session,
        )
        if result.deleted_count != 1:
            return False
        await self._tags_changed(repository, session)
        return True

    async def tags_stamp(self, repository: str) -> int | None:
        """What changes in every transaction that changes the repository's tags (a listing
        read after it is at least that new); None when there is no such repository."""
        # index: _id_
        doc = await self.db.repositories.find_one({"_id": repository}, {"tags_stamp": 1})
        return None if doc is None else int(doc.get("tags_stamp", 0))

    async def all_tags(self, repository: str) -> list[str]:
        """Every tag of the repository, in lexical order."""
        # index: tags repository_1_tag_1 (in its order)
        cursor = self.db.tags.find(
            {"repository": repository, "tag": {"$gt": ""}}, {"_id": 0, "tag": 1}, batch_size=10_000
        ).sort("tag", ASCENDING)
        return [doc["tag"] async for doc in cursor]

    async def repository_exists(self, repository: str) -> bool:
        # index: _id_
        return await self.db.repositories.find_one({"_id": repository}, {"_id": 1}) is not None

    # upload sessions ------------------------------------------------------------------------

    async def create_upload(self, upload_id: str, repository: str, storage: Document) -> None:
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

    async def get_upload(self, upload_id: str) -> Upload | None:
        doc = await self.db.uploads.find_one({"_id": upload_id})
        return None if doc is None else Upload.from_document(doc)

    async def claim_upload(self, upload_id: str, token: str, lease: dt.timedelta) -> Upload | None:
        """Take the upload for one write; None when it is missing or another write holds it."""
        now = utcnow()
        doc = await self.db.uploads.find_one_and_update(
            {
                "_id": upload_id,
                "$or": [{"lock": None}, {"lock.until": {"$lt": now}}],
            },
            {"$set": {"lock": {"token": token, "until": now + lease}, "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else Upload.from_document(doc)

    async def release_upload(
        self, upload_id: str, token: str, offset: int | None = None, storage: Document | None = None
    ) -> bool:
        changes: Document = {"lock": None, "updated_at": utcnow()}
        if offset is not None:
            changes["offset"] = offset
        if storage is not None:
            changes["storage"] = storage
        result = await self.db.uploads.update_one(
            {"_id": upload_id, "lock.token": token}, {"$set": changes}
        )
        return result.modified_count == 1

    async def renew_upload(self, upload_id: str, token: str, lease: dt.timedelta) -> None:
        await self.db.uploads.update_one(
            {"_id": upload_id, "lock.token": token}, {"$set": {"lock.until": utcnow() + lease}}
        )

    async def delete_upload(self, upload_id: str) -> None:
        await self.db.uploads.delete_one({"_id": upload_id})

    async def claim_abandoned_upload(
        self, cutoff: dt.datetime, token: str, lease: dt.timedelta
    ) -> Upload | None:
        """An upload untouched since ``cutoff`` and not being written, now held by ``token``
        (so a client resuming it at this moment, or another reaper, cannot have it too)."""
        now = utcnow()
        doc = await self.db.uploads.find_one_and_update(
            {
                "updated_at": {"$lt": cutoff},
                "$or": [{"lock": None}, {"lock.until": {"$lt": now}}],
            },
            {"$set": {"lock": {"token": token, "until": now + lease}}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else Upload.from_document(doc)

    async def delete_claimed_upload(self, upload_id: str, token: str) -> bool:
        result = await self.db.uploads.delete_one({"_id": upload_id, "lock.token": token})
        return result.deleted_count == 1

    # reaper runs ----------------------------------------------------------------------------

    async def claim_space_run(
        self,
        space_id: str,
        owner: str,
        every: dt.timedelta,
        debounce: dt.timedelta,
        lease: dt.timedelta,
    ) -> dt.datetime | None:
        """Whether ``owner`` may run retention for the space now, as the moment it claimed
        it (None: not now). It may when no other reaper is running it and either its last run
        is ``every`` ago, or a deployment tag arrived since that run and it is ``debounce``
        ago."""
        now = utcnow()
        await self.db.reaper_runs.update_one(
            {"_id": space_id}, {"$setOnInsert": {**_NEVER_RUN, "due_at": _NEVER}}, upsert=True
        )
        result = await self.db.reaper_runs.update_one(
            {
                "_id": space_id,
                "lease_until": {"$lt": now},
                "$or": [
                    {"last_run_at": {"$lt": now - every}},
                    {
                        "last_run_at": {"$lt": now - debounce},
                        "$expr": {"$gt": ["$due_at", "$last_run_at"]},
                    },
                ],
            },
            {"$set": {"owner": owner, "lease_until": now + lease}},
        )
        return now if result.modified_count == 1 else None

    async def finish_space_run(self, space_id: str, owner: str, started: dt.datetime) -> None:
        """The run that started at ``started`` is over: a tag that arrived during it makes
        the space due again."""
        await self.db.reaper_runs.update_one(
            {"_id": space_id, "owner": owner},
            {"$set": {"last_run_at": started, "lease_until": utcnow()}},
        )

    async def mark_space_due(self, space_id: str) -> None:
        """A deployment tag arrived: the space's retention should run soon."""
        await self.db.reaper_runs.update_one(
            {"_id": space_id},
            {"$max": {"due_at": utcnow()}, "$setOnInsert": _NEVER_RUN},
            upsert=True,
        )
