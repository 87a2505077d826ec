"""The registry model: what the OCI endpoints do, between the handlers and the two stores."""

from __future__ import annotations

import bisect
import dataclasses

from services.registry.cache import SingleFlight, TtlCache
from services.registry.events import ImageEvents
from services.registry.group_commit import GroupCommit
from services.registry.identity.access import SpaceAccess
from services.registry.repository_names import RepositoryNames
from shared.metadata.connection import Session
from shared.metadata.errors import SpaceMissing, unavailable
from shared.metadata.images import ManifestPush, MissingReferences, StoredManifest
from shared.metadata.ports import Metadata
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.manifest import ParsedManifest, parse_manifest
from shared.oci.names import Reference, RepositoryName
from shared.storage.port import BlobLocation, BlobStore

MANIFEST_CACHE_BYTES = 64 * 1024 * 1024
# A reference's share of a group commit's weight (``GroupCommit.max_weight``, in bytes): the
# link or manifest document it touches.
REFERENCE_WEIGHT = 512


@dataclasses.dataclass(frozen=True, slots=True)
class BlobHandle:
    digest: str
    size: int
    location: BlobLocation


# What the remembered tag lists may take in all, over every repository (roughly, in bytes).
TAG_LISTING_BYTES = 128 * 1024 * 1024
# Stamps carry freshness; the age limit only bounds what an instance of an older version,
# which does not move stamps, can leave unseen.
TAG_LISTING_SECONDS = 300.0


@dataclasses.dataclass(frozen=True, slots=True)
class TagListing:
    stamp: int
    tags: list[str]

    @property
    def weight(self) -> int:
        return sum(map(len, self.tags)) + 64 * len(self.tags) + 1


class Registry:
    def __init__(
        self, metadata: Metadata, store: BlobStore, cache_ttl: float, events: ImageEvents
    ) -> None:
        self.metadata = metadata
        self.store = store
        self.events = events
        self.names = RepositoryNames(metadata)
        # Tags move, so other instances may serve a moved or deleted tag for up to `cache_ttl`
        # seconds; this instance forgets its own changes at once. Manifests never change.
        self._tags: TtlCache[tuple[str, str], str] = TtlCache(cache_ttl, 100_000)
        self._manifests: TtlCache[tuple[str, str], StoredManifest] = TtlCache(
            cache_ttl, MANIFEST_CACHE_BYTES, weigh=lambda m: m.size + 512
        )
        self._spaces: TtlCache[str, SpaceAccess] = TtlCache(cache_ttl, 10_000)
        self._tag_listings: TtlCache[str, TagListing] = TtlCache(
            TAG_LISTING_SECONDS, TAG_LISTING_BYTES, weigh=lambda listing: listing.weight
        )
        self._tag_listing_loads: SingleFlight[tuple[str, int], TagListing] = SingleFlight()
        self._pushes: GroupCommit[ManifestPush, MissingReferences | None] = GroupCommit(
            metadata.images.commit_pushes, weigh=_push_weight, shared_failure=unavailable
        )

    async def space(self, space_id: str) -> SpaceAccess | None:
        """The space, or None when it does not exist."""
        # Only spaces that exist are remembered, so a new space can be used at once.
        cached = self._spaces.get(space_id)
        if cached is not None:
            return cached
        record = await self.metadata.spaces.get(space_id)
        if record is None:
            return None
        space = SpaceAccess(record.id, record.anonymous_pull)
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
        try:
            await self.metadata.images.touch_repository(name.full)
        except SpaceMissing as exc:  # deleted since the caller's access was checked
            raise errors.NameUnknown(detail={"name": name.full}) from exc
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
            digest = await self.metadata.images.get_tag(name.full, reference.tag)
            if digest is None:
                raise errors.ManifestUnknown(detail={"tag": reference.tag})
            self._tags.put(key, digest)
        return digest

    async def manifest(self, name: RepositoryName, reference: Reference) -> StoredManifest:
        digest = await self.resolve(name, reference)
        key = (name.full, digest)
        manifest = self._manifests.get(key)
        if manifest is None:
            manifest = await self.metadata.images.get_manifest(name.full, digest)
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
        tag = reference.tag
        event = self.events.image(
            "image.pushed", name, tag, manifest.digest, manifest.media_type, manifest.size, actor
        )
        push = ManifestPush(name.full, manifest, content, tag, event)
        try:
            missing = await self._pushes.submit(push)
        except SpaceMissing as exc:  # deleted since the caller's access was checked
            raise errors.NameUnknown(detail={"name": name.full}) from exc
        if missing is not None:
            raise _refusal(missing)
        if tag is not None:
            self._tags.discard((name.full, tag))
        self.events.notify()
        return manifest

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
        async def commit(session: Session) -> None:
            digest = await self.metadata.images.delete_tag(name.full, tag, session=session)
            if digest is None:
                raise errors.ManifestUnknown(detail={"tag": tag})
            manifest = await self.metadata.images.get_manifest(name.full, digest, session=session)
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

        async def commit(session: Session) -> None:
            try:
                manifest, tags = await self.metadata.images.delete_manifest(
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
        """A page of the repository's tags in lexical order, after ``last``.

        The whole list is remembered with the repository's ``tags_stamp``, which moves in
        every transaction that changes its tags: one read of the stamp tells whether what is
        remembered is current (any instance's change included). A list whose stamp moved is
        read again in full, once for all the requests that want it at that stamp (a page
        read from the database would cost the embedded server the whole range anyway)."""
        stamp = await self.metadata.images.tags_stamp(name.full)
        if stamp is None:
            raise errors.NameUnknown(detail={"name": name.full})
        listing = self._tag_listings.get(name.full)
        if listing is None or listing.stamp != stamp:
            listing = await self._tag_listing_loads.run(
                (name.full, stamp), lambda: self._load_tag_listing(name.full, stamp)
            )
        start = 0 if last is None else bisect.bisect_right(listing.tags, last)
        return listing.tags[start : start + limit]

    async def _load_tag_listing(self, repository: str, stamp: int) -> TagListing:
        listing = TagListing(stamp, await self.metadata.images.all_tags(repository))
        self._tag_listings.put(repository, listing)
        return listing

    async def catalog(
        self, last: str | None, limit: int, spaces: frozenset[str] | None
    ) -> list[str]:
        """Repository names after ``last``, in the given spaces (None: every space)."""
        if spaces is not None and not spaces:
            return []
        return await self.names.catalog(after=last, limit=limit, spaces=spaces)

    async def referrers(
        self, name: RepositoryName, subject: Digest, artifact_type: str | None
    ) -> list[StoredManifest]:
        return await self.metadata.images.referrers(name.full, str(subject), artifact_type)


def _push_weight(push: ManifestPush) -> int:
    """What a push costs its transaction: its bytes, and a document touched per reference."""
    manifest = push.manifest
    return len(push.content) + REFERENCE_WEIGHT * (len(manifest.blobs) + len(manifest.manifests))


def _refusal(missing: MissingReferences) -> errors.ManifestBlobUnknown:
    if missing.blobs:
        return errors.ManifestBlobUnknown(detail={"blobs": missing.blobs})
    return errors.ManifestBlobUnknown(
        "index references manifests unknown to this repository",
        detail={"manifests": missing.manifests},
    )
