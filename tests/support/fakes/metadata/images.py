"""``ImageRepository`` in memory: repositories, manifests and tags, and group commits."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterable, Sequence

from shared.metadata.connection import Document
from shared.metadata.errors import SpaceMissing
from shared.metadata.images import (
    ManifestPush,
    MissingReferences,
    RepositoryRecord,
    StoredManifest,
)
from tests.support.fakes.metadata.documents import (
    Clock,
    Collections,
    InMemoryEventOutbox,
    Transactions,
    link_id,
)


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
    fields (``feed_key``, ``feed_top``) are not kept: ``InMemoryFeed`` reads the key off the
    tag and its push time."""

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
        links = {link_id(p.repository, d) for p in pushes for d in p.manifest.blobs}
        children = {link_id(p.repository, d) for p in pushes for d in p.manifest.manifests}
        subjects = {link_id(p.repository, p.manifest.subject) for p in pushes if p.manifest.subject}
        missing_links = _touch_existing(self._data.blob_links, links, now)
        missing_children = _touch_existing(self._data.manifests, children, now)
        _touch_existing(self._data.manifests, subjects - children, now)
        outcomes: list[MissingReferences | None] = []
        for p in pushes:
            blobs = [d for d in p.manifest.blobs if link_id(p.repository, d) in missing_links]
            listed = [
                d for d in p.manifest.manifests if link_id(p.repository, d) in missing_children
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
            key = link_id(p.repository, p.manifest.digest)
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
        doc = self._data.manifests.get(link_id(repository, digest))
        return None if doc is None else StoredManifest.from_document(copy.deepcopy(doc))

    async def delete_manifest(
        self, repository: str, digest: str, *, session: object = None
    ) -> tuple[StoredManifest | None, list[str]]:
        tags = [t for t in self._tags_of(repository) if t["digest"] == digest]
        for tag in tags:
            del self._data.tags[tag["_id"]]
        if tags:
            self._tags_changed(repository)
        doc = self._data.manifests.pop(link_id(repository, digest), None)
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
        "_id": link_id(push.repository, manifest.digest),
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
