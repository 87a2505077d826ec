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
- ``tags``         ``{_id: "<repo>:<tag>", repository, tag, digest, updated_at}``
- ``uploads``      ``{_id: upload id, repository, offset, storage, lock, created_at, updated_at}``
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from bson import Binary
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.events.outbox import Outbox
from shared.metadata.accounts import AccountStore
from shared.metadata.blobs import BlobRecords, touch_all
from shared.metadata.builds import BuildStore
from shared.oci.manifest import ParsedManifest

Document = dict[str, Any]


_NEVER = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LISTED_REPOSITORIES_REMEMBERED = 100_000
_NEVER_RUN = {"last_run_at": _NEVER, "lease_until": _NEVER, "owner": None}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
        await db.manifests.create_index([("digest", ASCENDING)])
        await db.manifests.create_index([("blobs", ASCENDING)])
        await db.manifests.create_index([("manifests", ASCENDING)])
        await db.tags.create_index([("repository", ASCENDING), ("tag", ASCENDING)], unique=True)
        await db.tags.create_index([("repository", ASCENDING), ("digest", ASCENDING)])
        await db.uploads.create_index([("updated_at", ASCENDING)])
        await self.accounts.ensure_indexes()
        await self.outbox.ensure_indexes()
        await self.builds.ensure_indexes()
        await self.blobs.ensure_indexes()
        await self.blobs.upgrade()
        await db.pins.create_index([("repository", ASCENDING)])

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
        cursor = self.db.pins.find({"repository": repository}, {"tag": 1})
        return {doc["tag"] async for doc in cursor}

    # what retention looks at ---------------------------------------------------------------

    def _in_space(self, space_id: str) -> Document:
        return {"repository": {"$regex": f"^{re.escape(space_id)}/"}}

    async def space_tags(self, space_id: str) -> list[Document]:
        cursor = self.db.tags.find(self._in_space(space_id))
        return [doc async for doc in cursor]

    async def space_pins(self, space_id: str) -> set[tuple[str, str]]:
        cursor = self.db.pins.find({"space": space_id}, {"repository": 1, "tag": 1})
        return {(doc["repository"], doc["tag"]) async for doc in cursor}

    async def space_manifests(self, space_id: str) -> list[Document]:
        """Every manifest of the space, without its content."""
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
        still = {
            blob
            async for doc in self.db.manifests.find(
                {"blobs": {"$in": list(candidates)}, "_id": {"$nin": ids}}, {"blobs": 1}
            )
            for blob in doc.get("blobs") or []
        }
        repositories = list({doc["repository"] for doc in manifests})
        elsewhere = {
            doc["digest"]
            async for doc in self.db.blob_links.find(
                {"digest": {"$in": list(candidates)}, "repository": {"$nin": repositories}},
                {"digest": 1},
            )
        }
        orphans = list(candidates - still - elsewhere)
        cursor = self.db.blobs.find({"_id": {"$in": orphans}}, {"size": 1})
        return {doc["_id"]: int(doc["size"]) async for doc in cursor}

    async def space_has_repositories(self, space_id: str) -> bool:
        return await self.db.repositories.find_one({"space": space_id}, {"_id": 1}) is not None

    async def search_repositories(
        self, space_id: str, *, query: str | None, after: str | None, limit: int
    ) -> list[Document]:
        """Repositories of a space by name, optionally those whose name contains ``query``
        (case-insensitive), after the name ``after``."""
        conditions: Document = {"space": space_id}
        name_filters: list[Document] = []
        if query:
            pattern = f"^{re.escape(space_id)}/.*{re.escape(query)}"
            name_filters.append({"_id": {"$regex": pattern, "$options": "i"}})
        if after is not None:
            name_filters.append({"_id": {"$gt": after}})
        if name_filters:
            conditions["$and"] = name_filters
        cursor = self.db.repositories.find(conditions).sort("_id", ASCENDING).limit(limit)
        return [doc async for doc in cursor]

    async def tagged_manifests(self, repository: str) -> list[Document]:
        """Every tag of the repository with its manifest's digest, sizes and push time."""
        tags = [doc async for doc in self.db.tags.find({"repository": repository})]
        digests = list({doc["digest"] for doc in tags})
        sizes = {
            doc["digest"]: doc.get("total_size", doc["size"])
            async for doc in self.db.manifests.find(
                {"_id": {"$in": [f"{repository}@{d}" for d in digests]}},
                {"digest": 1, "size": 1, "total_size": 1},
            )
        }
        return [
            {
                "tag": doc["tag"],
                "digest": doc["digest"],
                "size": sizes.get(doc["digest"], 0),
                "pushed_at": doc["updated_at"],
            }
            for doc in tags
        ]

    async def ensure_space(self, space_id: str, name: str) -> None:
        await self.db.spaces.update_one(
            {"_id": space_id},
            {"$setOnInsert": {"name": name, "anonymous_pull": False, "created_at": utcnow()}},
            upsert=True,
        )

    # repositories ---------------------------------------------------------------------------

    async def touch_repository(self, repository: str) -> None:
        """Make sure the repository is listed. Repositories are never removed, so one this
        process has seen listed needs no round trip again."""
        if repository in self._listed_repositories:
            return
        await self.db.repositories.update_one(
            {"_id": repository},
            {"$setOnInsert": {"space": repository.split("/", 1)[0], "created_at": utcnow()}},
            upsert=True,
        )
        if len(self._listed_repositories) >= LISTED_REPOSITORIES_REMEMBERED:
            self._listed_repositories.clear()
        self._listed_repositories.add(repository)

    async def list_repositories(
        self, *, after: str | None, limit: int, spaces: Iterable[str] | None = None
    ) -> list[str]:
        query: Document = {}
        if after is not None:
            query["_id"] = {"$gt": after}
        if spaces is not None:
            query["space"] = {"$in": list(spaces)}
        cursor = self.db.repositories.find(query, {"_id": 1}).sort("_id", ASCENDING).limit(limit)
        return [doc["_id"] async for doc in cursor]

    # manifests ------------------------------------------------------------------------------

    async def put_manifest(
        self,
        repository: str,
        manifest: ParsedManifest,
        content: bytes,
        *,
        session: AsyncClientSession | None = None,
    ) -> None:
        now = utcnow()
        await self.db.manifests.update_one(
            {"_id": f"{repository}@{manifest.digest}"},
            {
                "$set": {"touched_at": now},
                "$setOnInsert": {
                    "repository": repository,
                    "digest": manifest.digest,
                    "media_type": manifest.media_type,
                    "size": manifest.size,
                    "total_size": manifest.size + manifest.referenced_size,
                    "content": Binary(content),
                    "blobs": list(manifest.blobs),
                    "manifests": list(manifest.manifests),
                    "subject": manifest.subject,
                    "artifact_type": manifest.artifact_type,
                    "config_media_type": manifest.config_media_type,
                    "annotations": manifest.annotations,
                    "created_at": now,
                },
            },
            upsert=True,
            session=session,
        )

    async def touch_manifests(
        self, repository: str, digests: Iterable[str], session: AsyncClientSession
    ) -> bool:
        """In an index's transaction: touch the manifests it lists, so that retention cannot
        remove one of them unseen (both write the same document); whether all exist."""
        ids = {f"{repository}@{d}" for d in digests}
        return await touch_all(self.db.manifests, ids, session)

    async def get_manifest(
        self, repository: str, digest: str, *, session: AsyncClientSession | None = None
    ) -> StoredManifest | None:
        doc = await self.db.manifests.find_one({"_id": f"{repository}@{digest}"}, session=session)
        return None if doc is None else StoredManifest.from_document(doc)

    async def existing_manifests(self, repository: str, digests: Iterable[str]) -> set[str]:
        ids = [f"{repository}@{d}" for d in digests]
        cursor = self.db.manifests.find({"_id": {"$in": ids}}, {"digest": 1})
        return {doc["digest"] async for doc in cursor}

    async def delete_manifest(
        self, repository: str, digest: str, *, session: AsyncClientSession | None = None
    ) -> tuple[StoredManifest | None, list[str]]:
        """Delete the manifest and the tags pointing at it; return both.

        Tags go first so that no tag ever points at a missing manifest.
        """
        tags = [
            doc["tag"]
            async for doc in self.db.tags.find(
                {"repository": repository, "digest": digest}, {"tag": 1}, session=session
            )
        ]
        await self.db.tags.delete_many(
            {"repository": repository, "digest": digest}, session=session
        )
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
        cursor = self.db.manifests.find(query).sort("digest", ASCENDING)
        return [StoredManifest.from_document(doc) async for doc in cursor]

    # tags -----------------------------------------------------------------------------------

    async def set_tag(
        self,
        repository: str,
        tag: str,
        digest: str,
        *,
        session: AsyncClientSession | None = None,
    ) -> None:
        await self.db.tags.update_one(
            {"_id": f"{repository}:{tag}"},
            {
                "$set": {"digest": digest, "updated_at": utcnow()},
                "$setOnInsert": {"repository": repository, "tag": tag},
            },
            upsert=True,
            session=session,
        )

    async def get_tag(self, repository: str, tag: str) -> str | None:
        doc = await self.db.tags.find_one({"_id": f"{repository}:{tag}"}, {"digest": 1})
        return None if doc is None else str(doc["digest"])

    async def list_tags(self, repository: str, *, after: str | None, limit: int) -> list[str]:
        query: Document = {"repository": repository}
        if after is not None:
            query["tag"] = {"$gt": after}
        cursor = self.db.tags.find(query, {"tag": 1}).sort("tag", ASCENDING).limit(limit)
        return [doc["tag"] async for doc in cursor]

    async def delete_tag(
        self, repository: str, tag: str, *, session: AsyncClientSession | None = None
    ) -> str | None:
        """Delete the tag; the digest it pointed at, or None when there was no such tag."""
        doc = await self.db.tags.find_one_and_delete(
            {"_id": f"{repository}:{tag}"}, {"digest": 1}, session=session
        )
        return None if doc is None else str(doc["digest"])

    async def repository_exists(self, repository: str) -> bool:
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
