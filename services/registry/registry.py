"""The registry model: what the OCI endpoints do, between the handlers and the two stores."""

from __future__ import annotations

import dataclasses

from pymongo.asynchronous.client_session import AsyncClientSession

from services.registry.cache import TtlCache
from services.registry.events import ImageEvents
from services.registry.identity.access import SpaceAccess
from shared.metadata.store import MetadataStore, StoredManifest
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.manifest import ParsedManifest, parse_manifest
from shared.oci.names import Reference, RepositoryName
from shared.storage.port import BlobLocation, BlobStore

MANIFEST_CACHE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class BlobHandle:
    digest: str
    size: int
    location: BlobLocation


class Registry:
    def __init__(
        self, metadata: MetadataStore, store: BlobStore, cache_ttl: float, events: ImageEvents
    ) -> None:
        self.metadata = metadata
        self.store = store
        self.events = events
        # Tags move, so other instances may serve a moved or deleted tag for up to `cache_ttl`
        # seconds; this instance forgets its own changes at once. Manifests never change.
        self._tags: TtlCache[tuple[str, str], str] = TtlCache(cache_ttl, 100_000)
        self._manifests: TtlCache[tuple[str, str], StoredManifest] = TtlCache(
            cache_ttl, MANIFEST_CACHE_BYTES, weigh=lambda m: m.size + 512
        )
        self._spaces: TtlCache[str, SpaceAccess] = TtlCache(cache_ttl, 10_000)

    async def space(self, space_id: str) -> SpaceAccess | None:
        """The space, or None when it does not exist."""
        # Only spaces that exist are remembered, so a new space can be used at once.
        cached = self._spaces.get(space_id)
        if cached is not None:
            return cached
        doc = await self.metadata.get_space(space_id)
        if doc is None:
            return None
        space = SpaceAccess(doc["_id"], bool(doc.get("anonymous_pull", False)))
        self._spaces.put(space_id, space)
        return space

    def forget_space(self, space_id: str) -> None:
        self._spaces.discard(space_id)

    def forget(self, repository: str, *, tag: str | None = None, digest: str | None = None) -> None:
        """Drop what this instance cached of a tag or manifest removed behind its back."""
        if tag is not None:
            self._tags.discard((repository, tag))
        if digest is not None:
            self._manifests.discard((repository, digest))

    # blobs ----------------------------------------------------------------------------------

    async def blob(self, name: RepositoryName, digest: Digest) -> BlobHandle:
        size = await self.metadata.blobs.link_size(name.full, str(digest))
        if size is None:
            raise errors.BlobUnknown(detail={"digest": str(digest)})
        location = await self.store.locate(str(digest))
        if location is None:
            raise errors.BlobUnknown(detail={"digest": str(digest)})
        return BlobHandle(str(digest), location.size, location)

    async def mount(
        self,
        name: RepositoryName,
        digest: Digest,
        source: RepositoryName | None,
        readable_spaces: frozenset[str] | None,
    ) -> bool:
        """Link a blob another repository holds into ``name``; False when there is none.

        The caller must be allowed to read ``source``. Without a source, a copy in any
        repository of ``readable_spaces`` will do (None: every space). A blob that garbage
        collection has claimed is not mounted: the client uploads it instead.
        """
        if source is not None:
            size = await self.metadata.blobs.link_size(source.full, str(digest))
        elif readable_spaces is not None and not readable_spaces:
            size = None
        else:
            link = await self.metadata.blobs.find_link(str(digest), spaces=readable_spaces)
            size = None if link is None else int(link["size"])
        if size is None or await self.store.locate(str(digest)) is None:
            return False
        await self.metadata.touch_repository(name.full)
        return await self.metadata.blobs.link(name.full, str(digest), size)

    async def delete_blob(self, name: RepositoryName, digest: Digest) -> None:
        if not await self.metadata.blobs.unlink(name.full, str(digest)):
            raise errors.BlobUnknown(detail={"digest": str(digest)})

    # manifests ------------------------------------------------------------------------------

    async def resolve(self, name: RepositoryName, reference: Reference) -> str:
        if reference.digest is not None:
            return str(reference.digest)
        assert reference.tag is not None
        key = (name.full, reference.tag)
        digest = self._tags.get(key)
        if digest is None:
            digest = await self.metadata.get_tag(name.full, reference.tag)
            if digest is None:
                raise errors.ManifestUnknown(detail={"tag": reference.tag})
            self._tags.put(key, digest)
        return digest

    async def manifest(self, name: RepositoryName, reference: Reference) -> StoredManifest:
        digest = await self.resolve(name, reference)
        key = (name.full, digest)
        manifest = self._manifests.get(key)
        if manifest is None:
            manifest = await self.metadata.get_manifest(name.full, digest)
            if manifest is None:
                raise errors.ManifestUnknown(detail={"digest": digest})
            self._manifests.put(key, manifest)
        return manifest

    async def put_manifest(
        self,
        name: RepositoryName,
        reference: Reference,
        content: bytes,
        content_type: str | None,
        actor: str | None,
    ) -> ParsedManifest:
        manifest = parse_manifest(content, content_type)
        if reference.digest is not None:
            computed = Digest.of(content, reference.digest.algorithm)
            if computed != reference.digest:
                raise errors.DigestInvalid(
                    "manifest digest does not match the reference",
                    detail={"reference": str(reference.digest), "digest": str(computed)},
                )
            manifest = dataclasses.replace(manifest, digest=str(computed))
        await self._check_references(name, manifest)
        await self.metadata.touch_repository(name.full)
        tag = reference.tag
        event = self.events.image(
            "image.pushed", name, tag, manifest.digest, manifest.media_type, manifest.size, actor
        )

        async def commit(session: AsyncClientSession) -> None:
            # Touching what the manifest references is what keeps garbage collection and
            # retention from removing it meanwhile (shared/metadata/blobs.py).
            if not await self.metadata.blobs.touch_links(name.full, manifest.blobs, session):
                raise errors.ManifestBlobUnknown(
                    "a blob the manifest references was removed meanwhile; push it again",
                    detail={"blobs": list(manifest.blobs)},
                )
            if not await self.metadata.touch_manifests(name.full, manifest.manifests, session):
                raise errors.ManifestBlobUnknown(
                    "a manifest the index lists was removed meanwhile; push it again",
                    detail={"manifests": list(manifest.manifests)},
                )
            if manifest.subject is not None:
                # The subject may be absent (referrers may come first); when it is there,
                # retention must see this referrer before it removes the subject.
                await self.metadata.touch_manifests(name.full, [manifest.subject], session)
            await self.metadata.put_manifest(name.full, manifest, content, session=session)
            if tag is not None:
                await self.metadata.set_tag(name.full, tag, manifest.digest, session=session)
            await self.metadata.outbox.add([event], session=session)

        await self.metadata.transaction(commit)
        if tag is not None:
            self._tags.discard((name.full, tag))
        self.events.notify()
        return manifest

    async def _check_references(self, name: RepositoryName, manifest: ParsedManifest) -> None:
        if manifest.blobs:
            linked = await self.metadata.blobs.linked_digests(name.full, manifest.blobs)
            missing = [d for d in manifest.blobs if d not in linked]
            if missing:
                raise errors.ManifestBlobUnknown(detail={"blobs": missing})
        if manifest.manifests:
            present = await self.metadata.existing_manifests(name.full, manifest.manifests)
            missing = [d for d in manifest.manifests if d not in present]
            if missing:
                raise errors.ManifestBlobUnknown(
                    "index references manifests unknown to this repository",
                    detail={"manifests": missing},
                )

    async def delete_manifest(
        self, name: RepositoryName, reference: Reference, actor: str | None
    ) -> None:
        """A tag reference deletes only the tag; a digest deletes the manifest and its tags.
        Each tag removed, and the manifest itself, is an ``image.deleted`` event."""
        if reference.tag is not None:
            await self._delete_tag(name, reference.tag, actor)
        else:
            await self._delete_digest(name, str(reference.digest), actor)
        self.events.notify()

    async def _delete_tag(self, name: RepositoryName, tag: str, actor: str | None) -> None:
        async def commit(session: AsyncClientSession) -> None:
            digest = await self.metadata.delete_tag(name.full, tag, session=session)
            if digest is None:
                raise errors.ManifestUnknown(detail={"tag": tag})
            manifest = await self.metadata.get_manifest(name.full, digest, session=session)
            media_type = None if manifest is None else manifest.media_type
            size = None if manifest is None else manifest.size
            event = self.events.image("image.deleted", name, tag, digest, media_type, size, actor)
            await self.metadata.outbox.add([event], session=session)

        try:
            await self.metadata.transaction(commit)
        finally:
            self._tags.discard((name.full, tag))

    async def _delete_digest(self, name: RepositoryName, digest: str, actor: str | None) -> None:
        removed_tags: list[str] = []

        async def commit(session: AsyncClientSession) -> None:
            try:
                manifest, tags = await self.metadata.delete_manifest(
                    name.full, digest, session=session
                )
            except LookupError as exc:
                raise errors.ManifestUnknown(detail={"digest": digest}) from exc
            media_type = None if manifest is None else manifest.media_type
            size = None if manifest is None else manifest.size
            events = [
                self.events.image("image.deleted", name, tag, digest, media_type, size, actor)
                for tag in [*tags, None]
            ]
            await self.metadata.outbox.add(events, session=session)
            removed_tags[:] = tags

        await self.metadata.transaction(commit)
        self._manifests.discard((name.full, digest))
        for tag in removed_tags:
            self._tags.discard((name.full, tag))

    # listings -------------------------------------------------------------------------------

    async def tags(self, name: RepositoryName, last: str | None, limit: int) -> list[str]:
        tags = await self.metadata.list_tags(name.full, after=last, limit=limit)
        if not tags and last is None and not await self.metadata.repository_exists(name.full):
            raise errors.NameUnknown(detail={"name": name.full})
        return tags

    async def catalog(
        self, last: str | None, limit: int, spaces: frozenset[str] | None
    ) -> list[str]:
        """Repository names after ``last``, in the given spaces (None: every space)."""
        if spaces is not None and not spaces:
            return []
        return await self.metadata.list_repositories(after=last, limit=limit, spaces=spaces)

    async def referrers(
        self, name: RepositoryName, subject: Digest, artifact_type: str | None
    ) -> list[StoredManifest]:
        return await self.metadata.referrers(name.full, str(subject), artifact_type)
