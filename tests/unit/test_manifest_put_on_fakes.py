"""Manifest PUTs (``Registry.put_manifest``, services/registry/registry.py) over the in-memory
metadata: a push is recorded with its tag and event only when every blob and child manifest
it references is linked into its repository, concurrent pushes share group commits yet each
gets its own answer, and tag moves show at once in listings and resolution."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from services.registry.events import ImageEvents
from services.registry.registry import Registry
from services.registry.uploads import Uploads
from shared.metadata.images import ManifestPush, MissingReferences
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.manifest import ParsedManifest
from shared.oci.names import Reference, RepositoryName
from tests.support.fakes.metadata import InMemoryMetadata
from tests.support.fakes.storage import InMemoryBlobStore
from tests.support.oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, canonical, descriptor

SPACE = "spaces-1"
REPO = RepositoryName.parse(f"{SPACE}/lighthouse")
CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYERS = [b"lamp room", b"gallery deck"]


def image(config: bytes = CONFIG, layers: Sequence[bytes] = LAYERS, **fields: Any) -> bytes:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
            **fields,
        }
    )


def index(*children: bytes) -> bytes:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, child) for child in children],
        }
    )


def digest_of(data: bytes) -> str:
    return str(Digest.of(data))


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Site:
    """A registry instance on in-memory metadata and storage, and the space it pushes to."""

    def __init__(self) -> None:
        self.metadata = InMemoryMetadata()
        self.storage = InMemoryBlobStore()
        self.nudges = 0
        events = ImageEvents("https://registry.test", "registry.test", self._nudge)
        self.registry = Registry(self.metadata, self.storage, 30.0, events)
        self.uploads = Uploads(self.metadata, self.storage)

    def _nudge(self) -> None:
        self.nudges += 1

    async def link(self, *blobs: bytes, name: RepositoryName = REPO) -> None:
        for blob in blobs:
            await self.uploads.put_whole(name, Digest.of(blob), body(blob), len(blob))

    async def put(
        self, reference: str, content: bytes, media_type: str = OCI_MANIFEST
    ) -> ParsedManifest:
        return await self.registry.put_manifest(
            REPO, Reference.parse(reference), content, media_type, "ada"
        )

    def pushed(self) -> list[dict[str, Any]]:
        return [event.data for event in self.metadata.outbox.events("image.pushed")]


@pytest.fixture
async def site() -> Site:
    site = Site()
    await site.metadata.spaces.create(SPACE, "Coast", anonymous_pull=False)
    return site


async def test_a_manifest_whose_blobs_are_linked_is_stored_tagged_and_announced(site: Site) -> None:
    await site.link(CONFIG, *LAYERS)
    content = image()

    manifest = await site.put("stable", content)

    assert manifest.digest == digest_of(content)
    assert await site.registry.resolve(REPO, Reference.parse("stable")) == manifest.digest
    stored = await site.registry.manifest(REPO, Reference.parse("stable"))
    assert (stored.content, stored.media_type) == (content, OCI_MANIFEST)
    [event] = site.pushed()
    assert (event["repository"], event["tag"], event["digest"]) == (
        REPO.full,
        "stable",
        manifest.digest,
    )
    assert site.nudges == 1
    assert await site.registry.catalog(None, 10, None) == [REPO.full]


async def test_a_manifest_with_blobs_missing_is_refused_naming_them_and_leaves_nothing(
    site: Site,
) -> None:
    await site.link(CONFIG, LAYERS[1])
    content = image()

    with pytest.raises(errors.ManifestBlobUnknown) as refused:
        await site.put("stable", content)

    assert refused.value.detail == {"blobs": [digest_of(LAYERS[0])]}
    assert await site.metadata.images.get_manifest(REPO.full, digest_of(content)) is None
    assert await site.metadata.images.get_tag(REPO.full, "stable") is None
    assert site.metadata.outbox.events() == []
    assert site.nudges == 0


async def test_a_refused_first_push_does_not_list_its_repository(site: Site) -> None:
    with pytest.raises(errors.ManifestBlobUnknown):
        await site.put("stable", image())

    assert not await site.metadata.images.repository_exists(REPO.full)
    assert await site.registry.catalog(None, 10, None) == []
    with pytest.raises(errors.NameUnknown):
        await site.registry.tags(REPO, None, 10)


async def test_a_blob_linked_in_another_repository_does_not_count(site: Site) -> None:
    await site.link(CONFIG, *LAYERS, name=RepositoryName.parse(f"{SPACE}/elsewhere"))

    with pytest.raises(errors.ManifestBlobUnknown) as refused:
        await site.put("stable", image())

    assert refused.value.detail == {"blobs": [digest_of(CONFIG), *map(digest_of, LAYERS)]}


async def test_an_index_is_stored_only_once_its_children_are(site: Site) -> None:
    await site.link(CONFIG, *LAYERS)
    amd64, arm64 = image(), image(annotations={"platform": "arm64"})
    await site.put(digest_of(amd64), amd64)

    with pytest.raises(errors.ManifestBlobUnknown) as refused:
        await site.put("multi", index(amd64, arm64), OCI_INDEX)

    assert refused.value.detail == {"manifests": [digest_of(arm64)]}
    assert await site.metadata.images.get_tag(REPO.full, "multi") is None
    await site.put(digest_of(arm64), arm64)
    stored = await site.put("multi", index(amd64, arm64), OCI_INDEX)
    assert await site.registry.resolve(REPO, Reference.parse("multi")) == stored.digest


async def test_a_digest_reference_that_does_not_match_the_content_is_refused(
    site: Site,
) -> None:
    await site.link(CONFIG, *LAYERS)
    content, other = image(), image(annotations={"other": "yes"})

    with pytest.raises(errors.DigestInvalid) as refused:
        await site.put(digest_of(other), content)

    assert refused.value.detail == {"reference": digest_of(other), "digest": digest_of(content)}
    assert await site.metadata.images.get_manifest(REPO.full, digest_of(content)) is None
    assert await site.metadata.images.get_manifest(REPO.full, digest_of(other)) is None
    assert site.pushed() == []


async def test_a_push_by_digest_stores_the_manifest_without_a_tag(site: Site) -> None:
    await site.link(CONFIG, *LAYERS)
    content = image()

    await site.put(digest_of(content), content)

    assert (await site.registry.manifest(REPO, Reference.parse(digest_of(content)))).content == (
        content
    )
    assert await site.registry.tags(REPO, None, 10) == []
    [event] = site.pushed()
    assert event["tag"] is None


async def test_concurrent_pushes_share_commits_and_each_gets_its_own_outcome(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    await site.link(CONFIG, *LAYERS)
    batches: list[int] = []
    commit = site.metadata.images.commit_pushes

    async def counted(pushes: Sequence[ManifestPush]) -> list[MissingReferences | None]:
        batches.append(len(pushes))
        return await commit(pushes)

    monkeypatch.setattr(site.metadata.images, "commit_pushes", counted)
    # The registry took its commit function when it was made: a new one takes the counted one.
    site.registry = Registry(site.metadata, site.storage, 30.0, site.registry.events)
    accepted = [image(annotations={"n": str(n)}) for n in range(4)]
    refused = image(layers=[b"never uploaded"])

    outcomes = await asyncio.gather(
        *(site.put(f"v{n}", content) for n, content in enumerate(accepted)),
        site.put("broken", refused),
        return_exceptions=True,
    )

    assert sum(batches) == 5
    assert len(batches) < 5
    assert [o.digest for o in outcomes[:4] if isinstance(o, ParsedManifest)] == [
        digest_of(content) for content in accepted
    ]
    assert isinstance(outcomes[4], errors.ManifestBlobUnknown)
    assert outcomes[4].detail == {"blobs": [digest_of(b"never uploaded")]}
    assert await site.registry.tags(REPO, None, 10) == ["v0", "v1", "v2", "v3"]
    assert sorted(event["tag"] for event in site.pushed()) == ["v0", "v1", "v2", "v3"]


async def test_pushes_to_one_tag_in_one_group_take_effect_in_order(site: Site) -> None:
    await site.link(CONFIG, *LAYERS)
    contents = [image(annotations={"n": str(n)}) for n in range(3)]

    await asyncio.gather(*(site.put("latest", content) for content in contents))

    assert await site.registry.resolve(REPO, Reference.parse("latest")) == digest_of(contents[-1])
    assert await site.registry.tags(REPO, None, 10) == ["latest"]


async def test_a_tag_moved_or_deleted_shows_at_once_in_listing_and_resolution(
    site: Site,
) -> None:
    await site.link(CONFIG, *LAYERS)
    first, second = image(), image(annotations={"build": "2"})
    await site.put("stable", first)
    await site.put("beta", first)
    assert await site.registry.tags(REPO, None, 10) == ["beta", "stable"]
    assert await site.registry.resolve(REPO, Reference.parse("stable")) == digest_of(first)

    await site.put("stable", second)
    await site.put("alpha", second)

    assert await site.registry.resolve(REPO, Reference.parse("stable")) == digest_of(second)
    assert await site.registry.tags(REPO, None, 10) == ["alpha", "beta", "stable"]
    assert await site.registry.tags(REPO, "alpha", 1) == ["beta"]

    await site.registry.delete_manifest(REPO, Reference.parse("beta"), "ada")

    with pytest.raises(errors.ManifestUnknown):
        await site.registry.resolve(REPO, Reference.parse("beta"))
    assert await site.registry.tags(REPO, None, 10) == ["alpha", "stable"]
    [deleted] = site.metadata.outbox.events("image.deleted")
    assert (deleted.data["tag"], deleted.data["digest"]) == ("beta", digest_of(first))


async def test_deleting_a_tag_that_does_not_exist_records_nothing(site: Site) -> None:
    await site.link(CONFIG, *LAYERS)
    await site.put("stable", image())
    stamp = await site.metadata.images.tags_stamp(REPO.full)

    with pytest.raises(errors.ManifestUnknown):
        await site.registry.delete_manifest(REPO, Reference.parse("gone"), "ada")

    assert site.metadata.outbox.events("image.deleted") == []
    assert await site.metadata.images.tags_stamp(REPO.full) == stamp


async def test_a_push_into_a_space_deleted_meanwhile_is_a_name_unknown_and_stores_nothing(
    site: Site,
) -> None:
    """Access was checked while the space was there; by the commit it is gone."""
    elsewhere = RepositoryName.parse("spaces-7/drifter")
    await site.link(CONFIG, *LAYERS, name=REPO)
    with pytest.raises(errors.NameUnknown):
        await site.registry.put_manifest(elsewhere, Reference.parse("1"), index(), OCI_INDEX, "ada")
    with pytest.raises(errors.NameUnknown):
        await site.uploads.put_whole(elsewhere, Digest.of(CONFIG), body(CONFIG), len(CONFIG))
    assert not await site.metadata.images.repository_exists(elsewhere.full)
    assert site.pushed() == []
