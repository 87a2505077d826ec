"""The metadata repositories in memory, with the semantics the registry's domain relies on.

``InMemoryMetadata`` stands where ``MetadataStore`` does for uploads, manifest PUTs and access
control: ``spaces``, ``images``, ``uploads``, ``blobs`` (the link side only: garbage
collection's claim is not faked), ``accounts``, an ``outbox`` and ``transaction(work)``. Each
method copies the conditions of the real query it stands for (its filter, the fields it sets,
what it answers), as one step with no await in between, as each real conditional update is
atomic. Documents are copied in and out: a caller never holds a stored one.

``transaction`` runs ``work`` alone (transactions are serialised, where MongoDB would make one
of two conflicting ones retry) and, when it raises, puts every collection and the outbox back
as they were: nothing of a failed transaction is seen. Writes outside a transaction that run
while one is under way and then fails would be undone with it; the tests never do that.

Times come from ``now`` (a ``tests.support.fakes.clock.FakeClock`` lets a lease lapse
without waiting).

The product types its metadata as the concrete ``MetadataStore`` (and ``AccountStore``), so a
test hands the fakes over with ``store()`` and ``account_store()``, casts in one place.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from pymongo.errors import DuplicateKeyError

from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.metadata.accounts import Account, AccountStore
from shared.metadata.blobs import NOT_DELETING, WRITE_LEASE, BlobBeingDeleted
from shared.metadata.connection import EPOCH, Document
from shared.metadata.errors import AlreadyExists, SpaceMissing
from shared.metadata.images import (
    ManifestPush,
    MissingReferences,
    RepositoryRecord,
    StoredManifest,
)
from shared.metadata.spaces import SpaceRecord
from shared.metadata.store import MetadataStore
from shared.metadata.uploads import Upload
from tests.support.fakes.builds import Recorded

T = TypeVar("T")
Clock = Callable[[], dt.datetime]


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class Collections:
    """Every document the fakes hold, by collection and ``_id`` (as the real ones key them),
    and the outbox's events in order: what a transaction snapshots and restores."""

    spaces: dict[str, Document] = field(default_factory=dict)
    repositories: dict[str, Document] = field(default_factory=dict)
    manifests: dict[str, Document] = field(default_factory=dict)
    tags: dict[str, Document] = field(default_factory=dict)
    uploads: dict[str, Document] = field(default_factory=dict)
    blobs: dict[str, Document] = field(default_factory=dict)
    blob_links: dict[str, Document] = field(default_factory=dict)
    users: dict[str, Document] = field(default_factory=dict)
    memberships: dict[str, Document] = field(default_factory=dict)
    api_keys: dict[str, Document] = field(default_factory=dict)
    events: list[Recorded] = field(default_factory=list)

    def restore(self, snapshot: Collections) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(snapshot, name))


Work = Callable[[Any], Awaitable[T]]


class Transactions:
    """``MetadataStore.transaction``: all of ``work`` or, when it raises, none of it."""

    def __init__(self, data: Collections) -> None:
        self._data = data
        self._lock = asyncio.Lock()

    async def __call__(self, work: Work[T]) -> T:
        async with self._lock:
            snapshot = copy.deepcopy(self._data)
            try:
                return await work(None)
            except BaseException:
                self._data.restore(snapshot)
                raise


class InMemoryEventOutbox:
    """``Outbox.add``: events kept in order with their exchange and routing key, undone with
    the transaction they were added in."""

    def __init__(self, data: Collections) -> None:
        self._data = data

    async def add(
        self,
        events: Sequence[CloudEvent],
        *,
        session: object = None,
        exchange: str = EVENTS_EXCHANGE,
        routing_key: str | None = None,
    ) -> None:
        self._data.events += [Recorded(e, exchange, routing_key or e.kind) for e in events]

    def events(self, kind: str | None = None) -> list[CloudEvent]:
        """The events recorded (of ``kind`` only, when given), in order."""
        return [r.event for r in self._data.events if kind is None or r.event.kind == kind]


# spaces ---------------------------------------------------------------------------------------


class InMemorySpaces:
    """``SpaceRepository``: create refuses an id taken, and starts the space with no members."""

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


# uploads --------------------------------------------------------------------------------------


def _free(doc: Document, now: dt.datetime) -> bool:
    """No write holds the upload: no lock, or one whose lease lapsed."""
    return doc["lock"] is None or doc["lock"]["until"] < now


def _held_by(doc: Document | None, token: str) -> bool:
    return doc is not None and doc["lock"] is not None and doc["lock"]["token"] == token


class InMemoryUploads:
    """``UploadRepository``: a write claims an upload that no live lease holds; only the
    holder of the lock releases (with the offset reached) or renews it."""

    def __init__(self, data: Collections, now: Clock) -> None:
        self._data = data
        self._now = now

    def _upload(self, doc: Document) -> Upload:
        return Upload.from_document(copy.deepcopy(doc))

    async def create(self, upload_id: str, repository: str, storage: Document) -> None:
        if upload_id in self._data.uploads:
            raise DuplicateKeyError(upload_id)  # as the real insert does
        now = self._now()
        self._data.uploads[upload_id] = {
            "_id": upload_id,
            "repository": repository,
            "offset": 0,
            "storage": copy.deepcopy(storage),
            "lock": None,
            "created_at": now,
            "updated_at": now,
        }

    async def get(self, upload_id: str) -> Upload | None:
        doc = self._data.uploads.get(upload_id)
        return None if doc is None else self._upload(doc)

    async def claim(self, upload_id: str, token: str, lease: dt.timedelta) -> Upload | None:
        now = self._now()
        doc = self._data.uploads.get(upload_id)
        if doc is None or not _free(doc, now):
            return None
        doc["lock"] = {"token": token, "until": now + lease}
        doc["updated_at"] = now
        return self._upload(doc)

    async def release(
        self, upload_id: str, token: str, offset: int | None = None, storage: Document | None = None
    ) -> bool:
        doc = self._data.uploads.get(upload_id)
        if not _held_by(doc, token):
            return False
        assert doc is not None
        doc["lock"], doc["updated_at"] = None, self._now()
        if offset is not None:
            doc["offset"] = offset
        if storage is not None:
            doc["storage"] = copy.deepcopy(storage)
        return True

    async def renew(self, upload_id: str, token: str, lease: dt.timedelta) -> None:
        doc = self._data.uploads.get(upload_id)
        if _held_by(doc, token):
            assert doc is not None
            doc["lock"]["until"] = self._now() + lease

    async def delete(self, upload_id: str) -> None:
        self._data.uploads.pop(upload_id, None)

    async def claim_abandoned(
        self, cutoff: dt.datetime, token: str, lease: dt.timedelta
    ) -> Upload | None:
        now = self._now()
        for doc in self._data.uploads.values():
            if doc["updated_at"] < cutoff and _free(doc, now):
                doc["lock"] = {"token": token, "until": now + lease}
                return self._upload(doc)
        return None

    async def delete_claimed(self, upload_id: str, token: str) -> bool:
        if not _held_by(self._data.uploads.get(upload_id), token):
            return False
        del self._data.uploads[upload_id]
        return True


# blobs: what pushes do ------------------------------------------------------------------------


def _link_id(repository: str, digest: str) -> str:
    return f"{repository}@{digest}"


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
        doc = self._data.blob_links.get(_link_id(repository, digest))
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
        key = _link_id(repository, digest)
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
        if self._data.blob_links.pop(_link_id(repository, digest), None) is None:
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


# images ---------------------------------------------------------------------------------------


def _touch_existing(collection: dict[str, Document], ids: set[str], now: dt.datetime) -> set[str]:
    """Touch those of ``ids`` that exist; the ids of those missing."""
    for key in ids & collection.keys():
        collection[key]["touched_at"] = now
    return ids - collection.keys()


class InMemoryImages:
    """``ImageRepository``: pushes recorded as a group in one transaction, each refused (and
    then nothing of it written) when a blob link or a listed manifest of its repository is
    missing; tags moved in the order given; each repository's ``tags_stamp`` moving with its
    tags and its space's ``repositories_stamp`` with each repository listed. The feed's
    fields (``feed_key``, ``feed_top``) are not kept."""

    def __init__(
        self,
        data: Collections,
        transaction: Transactions,
        outbox: InMemoryEventOutbox,
        now: Clock,
    ) -> None:
        self._data = data
        self._transaction = transaction
        self.outbox = outbox
        self._now = now

    async def touch_repository(self, repository: str) -> None:
        self._list(repository)

    def _list(self, repository: str) -> Document:
        doc = self._data.repositories.get(repository)
        if doc is None:
            space = repository.split("/", 1)[0]
            stamps = self._data.spaces.get(space)
            if stamps is None:
                raise SpaceMissing(space)
            stamps["repositories_stamp"] = stamps.get("repositories_stamp", 0) + 1
            doc = self._data.repositories[repository] = {
                "_id": repository,
                "space": space,
                "created_at": self._now(),
            }
        return doc

    async def repository_exists(self, repository: str) -> bool:
        return repository in self._data.repositories

    async def repositories_stamps(self, spaces: Iterable[str] | None) -> dict[str, int]:
        wanted = self._data.spaces.keys() if spaces is None else set(spaces)
        return {
            space: int(doc.get("repositories_stamp", 0))
            for space, doc in self._data.spaces.items()
            if space in wanted
        }

    async def space_repositories(self, space: str) -> list[RepositoryRecord]:
        return [
            RepositoryRecord(name, doc["created_at"])
            for name, doc in sorted(self._data.repositories.items())
            if doc["space"] == space
        ]

    async def commit_pushes(self, pushes: Sequence[ManifestPush]) -> list[MissingReferences | None]:
        outcomes: list[MissingReferences | None] = []

        async def work(session: object) -> None:
            outcomes[:] = self._missing_references(pushes)
            accepted = [p for p, missing in zip(pushes, outcomes, strict=True) if missing is None]
            if accepted:
                await self._record_pushes(accepted, session)

        await self._transaction(work)
        return outcomes

    def _missing_references(self, pushes: Sequence[ManifestPush]) -> list[MissingReferences | None]:
        now = self._now()
        links = {_link_id(p.repository, d) for p in pushes for d in p.manifest.blobs}
        children = {_link_id(p.repository, d) for p in pushes for d in p.manifest.manifests}
        subjects = {
            _link_id(p.repository, p.manifest.subject) for p in pushes if p.manifest.subject
        }
        missing_links = _touch_existing(self._data.blob_links, links, now)
        missing_children = _touch_existing(self._data.manifests, children, now)
        _touch_existing(self._data.manifests, subjects - children, now)
        outcomes: list[MissingReferences | None] = []
        for p in pushes:
            blobs = [d for d in p.manifest.blobs if _link_id(p.repository, d) in missing_links]
            listed = [
                d for d in p.manifest.manifests if _link_id(p.repository, d) in missing_children
            ]
            outcomes.append(MissingReferences(blobs, listed) if blobs or listed else None)
        return outcomes

    async def _record_pushes(self, pushes: Sequence[ManifestPush], session: object) -> None:
        now = self._now()
        for p in pushes:  # nothing is written for a batch that fails (as a transaction)
            space = p.repository.split("/", 1)[0]
            if p.repository not in self._data.repositories and space not in self._data.spaces:
                raise SpaceMissing(space)
        for p in pushes:
            key = _link_id(p.repository, p.manifest.digest)
            doc = self._data.manifests.setdefault(key, _manifest_document(p, now))
            doc["touched_at"] = now
            self._list(p.repository)
        for p in pushes:
            if p.tag is None:
                continue
            tag = self._data.tags.setdefault(
                f"{p.repository}:{p.tag}",
                {"_id": f"{p.repository}:{p.tag}", "repository": p.repository, "tag": p.tag},
            )
            tag.update(digest=p.manifest.digest, updated_at=now)
        for repository in {p.repository for p in pushes if p.tag is not None}:
            self._tags_changed(repository)
        await self.outbox.add([p.event for p in pushes], session=session)

    def _tags_changed(self, repository: str) -> None:
        doc = self._data.repositories.get(repository)
        if doc is not None:
            doc["tags_stamp"] = doc.get("tags_stamp", 0) + 1

    async def tags_changed(self, repository: str, session: object = None) -> None:
        self._tags_changed(repository)

    async def get_manifest(
        self, repository: str, digest: str, *, session: object = None
    ) -> StoredManifest | None:
        doc = self._data.manifests.get(_link_id(repository, digest))
        return None if doc is None else StoredManifest.from_document(copy.deepcopy(doc))

    async def delete_manifest(
        self, repository: str, digest: str, *, session: object = None
    ) -> tuple[StoredManifest | None, list[str]]:
        tags = [t for t in self._tags_of(repository) if t["digest"] == digest]
        for tag in tags:
            del self._data.tags[tag["_id"]]
        if tags:
            self._tags_changed(repository)
        doc = self._data.manifests.pop(_link_id(repository, digest), None)
        if doc is None and not tags:
            raise LookupError(digest)
        return (None if doc is None else StoredManifest.from_document(doc)), [
            t["tag"] for t in tags
        ]

    async def referrers(
        self, repository: str, subject: str, artifact_type: str | None
    ) -> list[StoredManifest]:
        def of_type(doc: Document) -> bool:
            if artifact_type is None:
                return True
            own = doc.get("artifact_type")
            return own == artifact_type or (
                own is None and doc["config_media_type"] == artifact_type
            )

        found = [
            doc
            for doc in self._data.manifests.values()
            if doc["repository"] == repository and doc["subject"] == subject and of_type(doc)
        ]
        return [
            StoredManifest.from_document(copy.deepcopy(d))
            for d in sorted(found, key=lambda d: d["digest"])
        ]

    def _tags_of(self, repository: str) -> list[Document]:
        return sorted(
            (t for t in self._data.tags.values() if t["repository"] == repository),
            key=lambda t: t["tag"],
        )

    async def get_tag(self, repository: str, tag: str) -> str | None:
        doc = self._data.tags.get(f"{repository}:{tag}")
        return None if doc is None else str(doc["digest"])

    async def all_tags(self, repository: str) -> list[str]:
        return [t["tag"] for t in self._tags_of(repository)]

    async def tags_stamp(self, repository: str) -> int | None:
        doc = self._data.repositories.get(repository)
        return None if doc is None else int(doc.get("tags_stamp", 0))

    async def delete_tag(self, repository: str, tag: str, *, session: object = None) -> str | None:
        doc = self._data.tags.pop(f"{repository}:{tag}", None)
        if doc is None:
            return None
        self._tags_changed(repository)
        return str(doc["digest"])


def _manifest_document(push: ManifestPush, now: dt.datetime) -> Document:
    manifest = push.manifest
    return {
        "_id": _link_id(push.repository, manifest.digest),
        "repository": push.repository,
        "digest": manifest.digest,
        "media_type": manifest.media_type,
        "size": manifest.size,
        "total_size": manifest.size + manifest.referenced_size,
        "content": bytes(push.content),
        "blobs": list(manifest.blobs),
        "manifests": list(manifest.manifests),
        "subject": manifest.subject,
        "artifact_type": manifest.artifact_type,
        "config_media_type": manifest.config_media_type,
        "annotations": dict(manifest.annotations),
        "created_at": now,
    }


# accounts -------------------------------------------------------------------------------------


class InMemoryAccounts:
    """``AccountStore``: users, memberships by ``<space>/<username>``, API keys by id; a
    password change moves the user's epoch."""

    def __init__(self, data: Collections, now: Clock) -> None:
        self._data = data
        self._now = now
        self._epochs = 0

    async def get_user(self, username: str) -> Document | None:
        return copy.deepcopy(self._data.users.get(username))

    async def get_account(self, username: str) -> Account | None:
        user = await self.get_user(username)
        if user is None:
            return None
        memberships = {
            m["space"]: m["role"]
            for m in self._data.memberships.values()
            if m["username"] == username
        }
        keys = frozenset(k for k, doc in self._data.api_keys.items() if doc["username"] == username)
        return Account(user, memberships, keys)

    async def create_user(
        self,
        username: str,
        password_hash: str | None,
        *,
        superuser: bool = False,
        service: str | None = None,
        global_role: str | None = None,
    ) -> bool:
        if username in self._data.users:
            return False
        # Distinct per user, as the real random epochs are: a token of a deleted user never
        # fits a new one of the same name.
        self._epochs += 1_000
        user: Document = {
            "_id": username,
            "superuser": superuser,
            "epoch": self._epochs,
            "created_at": self._now(),
        }
        if password_hash is not None:
            user["password_hash"] = password_hash
        if service is not None:
            user["service"] = service
        if global_role is not None:
            user["global_role"] = global_role
        self._data.users[username] = user
        return True

    async def set_password(self, username: str, password_hash: str) -> bool:
        user = self._data.users.get(username)
        if user is None:
            return False
        user["password_hash"] = password_hash
        user["epoch"] = user["epoch"] + 1
        return True

    async def set_membership(self, space: str, username: str, role: str) -> bool:
        key = f"{space}/{username}"
        before = self._data.memberships.get(key)
        self._data.memberships[key] = {
            "_id": key,
            "space": space,
            "username": username,
            "role": role,
            "created_at": self._now() if before is None else before["created_at"],
        }
        return before is None

    async def delete_membership(self, space: str, username: str) -> bool:
        return self._data.memberships.pop(f"{space}/{username}", None) is not None

    async def create_api_key(
        self, key_id: str, username: str, name: str, secret_hash: str
    ) -> Document:
        if key_id in self._data.api_keys:
            raise DuplicateKeyError(key_id)  # as the real insert does
        doc = {
            "_id": key_id,
            "username": username,
            "name": name,
            "hash": secret_hash,
            "created_at": self._now(),
        }
        self._data.api_keys[key_id] = doc
        return copy.deepcopy(doc)

    async def get_api_key(self, key_id: str) -> Document | None:
        return copy.deepcopy(self._data.api_keys.get(key_id))

    async def delete_api_key(self, username: str, key_id: str) -> bool:
        doc = self._data.api_keys.get(key_id)
        if doc is None or doc["username"] != username:
            return False
        del self._data.api_keys[key_id]
        return True


# reaper runs ----------------------------------------------------------------------------------


class InMemoryRuns:
    """``RunRepository``: a space's run is claimed when its lease lapsed and it is due (its
    last run ``every`` ago, or a deployment tag since that run and ``debounce`` ago)."""

    def __init__(self, now: Clock) -> None:
        self.runs: dict[str, Document] = {}
        self._now = now

    async def claim(
        self,
        space_id: str,
        owner: str,
        every: dt.timedelta,
        debounce: dt.timedelta,
        lease: dt.timedelta,
    ) -> dt.datetime | None:
        run = self.runs.setdefault(
            space_id, {"last_run_at": EPOCH, "lease_until": EPOCH, "owner": None, "due_at": EPOCH}
        )
        now = self._now()
        last = run["last_run_at"]
        tagged_since = run["due_at"] > last
        due = last < now - every or (tagged_since and last < now - debounce)
        if run["lease_until"] >= now or not due:
            return None
        run.update(owner=owner, lease_until=now + lease)
        return now

    async def finish(self, space_id: str, owner: str, started: dt.datetime) -> None:
        run = self.runs.get(space_id)
        if run is not None and run["owner"] == owner:
            run.update(last_run_at=started, lease_until=self._now())

    async def mark_due(self, space_id: str) -> None:
        run = self.runs.setdefault(
            space_id, {"last_run_at": EPOCH, "lease_until": EPOCH, "owner": None, "due_at": EPOCH}
        )
        run["due_at"] = max(run["due_at"], self._now())


# the composition ------------------------------------------------------------------------------


class InMemoryMetadata:
    """What ``MetadataStore`` composes, for the parts the registry's uploads, manifests and
    access control use."""

    def __init__(self, now: Clock = _system_clock) -> None:
        self.data = Collections()
        self.transaction = Transactions(self.data)
        self.outbox = InMemoryEventOutbox(self.data)
        self.spaces = InMemorySpaces(self.data, self.transaction, now)
        self.images = InMemoryImages(self.data, self.transaction, self.outbox, now)
        self.uploads = InMemoryUploads(self.data, now)
        self.blobs = InMemoryBlobs(self.data, self.transaction, now)
        self.accounts = InMemoryAccounts(self.data, now)
        self.runs = InMemoryRuns(now)

    def add_space(self, space_id: str) -> None:
        """A space to push into, as the registry's start makes its default one."""
        self.data.spaces.setdefault(
            space_id,
            {"_id": space_id, "name": space_id, "anonymous_pull": False, "created_at": EPOCH},
        )

    def store(self) -> MetadataStore:
        """These fakes where the product asks for a ``MetadataStore``."""
        return cast(MetadataStore, self)

    def account_store(self) -> AccountStore:
        """The accounts fake where the product asks for an ``AccountStore``."""
        return cast(AccountStore, self.accounts)
