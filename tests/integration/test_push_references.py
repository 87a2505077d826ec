"""A push's references on the real server: many of them (more than one ``$in`` holds) are all
checked, and a refusal names exactly those missing, whatever their number."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from shared.metadata.images import IN_CHUNK, ManifestPush
from shared.metadata.store import MetadataStore
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical, descriptor
from tests.support.pushes import manifest_push

REPOSITORY = "spaces-1/layered"
LAYERS = IN_CHUNK * 2 + 7


@pytest.fixture
async def metadata(mongo_url: str) -> AsyncIterator[MetadataStore]:
    store = MetadataStore.connect(mongo_url)
    await store.ensure_indexes()
    await store.spaces.ensure("spaces-1", "Default")
    yield store
    await store.close()


def layers() -> list[dict[str, object]]:
    return [descriptor(OCI_LAYER, f"layer {n}".encode()) for n in range(LAYERS)]


async def link(metadata: MetadataStore, digest: str) -> None:
    await metadata.blobs.reserve(digest, 7, "writer")
    await metadata.blobs.record_link(REPOSITORY, digest, 7, "writer")


def push_of(layers: list[dict[str, object]], config: dict[str, object]) -> ManifestPush:
    content = canonical(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}
    )
    return manifest_push(REPOSITORY, content, "1")


async def test_every_reference_of_a_many_layered_image_is_checked(
    metadata: MetadataStore,
) -> None:
    config = descriptor(OCI_CONFIG, b"{}")
    every = layers()
    for layer in every:
        await link(metadata, str(layer["digest"]))
    await link(metadata, str(config["digest"]))
    missing_one = str(every[IN_CHUNK + 3]["digest"])
    await metadata.blobs.unlink(REPOSITORY, missing_one)
    [refused] = await metadata.images.commit_pushes([push_of(every, config)])
    assert refused is not None and refused.blobs == [missing_one]
    assert await metadata.images.get_tag(REPOSITORY, "1") is None
    await link(metadata, missing_one)
    assert await metadata.images.commit_pushes([push_of(every, config)]) == [None]
    assert await metadata.images.get_tag(REPOSITORY, "1") is not None
    digest = hashlib.sha256(b"never uploaded").hexdigest()
    ghost = {**every[0], "digest": f"sha256:{digest}"}
    [refused] = await metadata.images.commit_pushes([push_of([*every, ghost], config)])
    assert refused is not None and refused.blobs == [f"sha256:{digest}"]
