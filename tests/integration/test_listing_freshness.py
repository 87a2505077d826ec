"""Listings an instance remembers are never stale: two registry instances on one real
MongoDB-wire server, and what one writes, the other lists at once (tags list, catalog, the
feed's search), although each answers repeated listings from memory."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from services.registry.events import ImageEvents
from services.registry.registry import Registry
from shared.metadata.store import MetadataStore
from shared.oci import errors
from shared.oci.names import RepositoryName
from tests.support.fakes.storage import InMemoryBlobStore
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical, descriptor
from tests.support.pushes import manifest_push

SPACE = "spaces-1"
LAYER = descriptor(OCI_LAYER, b"a layer")
CONFIG = descriptor(OCI_CONFIG, b"{}")


class Instance:
    """One registry instance: its own connection, its own memory."""

    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata
        events = ImageEvents("http://registry.test", "registry.test", lambda: None)
        self.registry = Registry(metadata, InMemoryBlobStore(), 5.0, events)

    async def push(self, repository: str, tag: str, n: int = 0) -> None:
        """Link the image's blobs into ``repository`` and record a PUT of it as ``tag``."""
        for digest in (LAYER["digest"], CONFIG["digest"]):
            await self.metadata.blobs.reserve(digest, 5, "writer")
            await self.metadata.blobs.record_link(repository, digest, 5, "writer")
        content = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": CONFIG,
                "layers": [LAYER],
                "annotations": {"n": str(n)},
            }
        )
        push = manifest_push(repository, content, tag)
        assert await self.metadata.images.commit_pushes([push]) == [None]

    async def tags(self, repository: str, last: str | None = None, n: int = 100) -> list[str]:
        return await self.registry.tags(RepositoryName.parse(repository), last, n)


@pytest.fixture
async def instances(mongo_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    first, second = MetadataStore.connect(mongo_url), MetadataStore.connect(mongo_url)
    await first.ensure_indexes()
    await first.spaces.ensure(SPACE, "Default")
    await first.spaces.ensure("spaces-2", "Other")
    yield Instance(first), Instance(second)
    await first.close()
    await second.close()


async def test_a_tag_another_instance_pushes_or_deletes_is_listed_at_once(
    instances: tuple[Instance, Instance],
) -> None:
    one, other = instances
    repository = f"{SPACE}/app"
    loads = 0
    read_all = one.metadata.images.all_tags

    async def counted(name: str) -> list[str]:
        nonlocal loads
        loads += 1
        return await read_all(name)

    one.metadata.images.all_tags = counted  # type: ignore[method-assign,assignment]
    await one.push(repository, "1.0")
    assert await one.tags(repository) == ["1.0"]
    assert await one.tags(repository) == ["1.0"]
    assert loads == 1  # the second came from memory
    await other.push(repository, "2.0", n=2)
    assert await one.tags(repository) == ["1.0", "2.0"]
    # A tag deleted, and a manifest deleted with its tags, by the other instance
    await other.metadata.transaction(
        lambda session: other.metadata.images.delete_tag(repository, "1.0", session=session)
    )
    assert await one.tags(repository) == ["2.0"]
    digest = await other.metadata.images.get_tag(repository, "2.0")
    assert digest is not None
    await other.metadata.transaction(
        lambda session: other.metadata.images.delete_manifest(repository, digest, session=session)
    )
    assert await one.tags(repository) == []


async def test_tag_pages_from_memory_follow_last_and_n(
    instances: tuple[Instance, Instance],
) -> None:
    one, _ = instances
    repository = f"{SPACE}/pages"
    for n, tag in enumerate(["b", "a", "d", "c", "e"]):
        await one.push(repository, tag, n)
    assert await one.tags(repository, n=2) == ["a", "b"]
    assert await one.tags(repository, last="b", n=2) == ["c", "d"]
    assert await one.tags(repository, last="bb", n=10) == ["c", "d", "e"]
    assert await one.tags(repository, last="e", n=10) == []


async def test_an_unknown_repository_is_name_unknown(instances: tuple[Instance, Instance]) -> None:
    one, _ = instances
    with pytest.raises(errors.NameUnknown):
        await one.tags(f"{SPACE}/never")


async def test_a_repository_another_instance_creates_is_in_catalog_and_search_at_once(
    instances: tuple[Instance, Instance],
) -> None:
    one, other = instances
    await one.push(f"{SPACE}/web", "1")
    await one.push("spaces-2/tool", "1")
    names = one.registry.names
    assert await names.catalog(after=None, limit=10, spaces=None) == [
        f"{SPACE}/web",
        "spaces-2/tool",
    ]
    await other.push(f"{SPACE}/api", "1")  # listed in the push's own transaction
    await other.metadata.images.touch_repository(f"{SPACE}/web-admin")  # listed by an upload
    assert await names.catalog(after=None, limit=10, spaces=None) == [
        f"{SPACE}/api",
        f"{SPACE}/web",
        f"{SPACE}/web-admin",
        "spaces-2/tool",
    ]
    assert await names.catalog(after=f"{SPACE}/web", limit=2, spaces=[SPACE, "spaces-2"]) == [
        f"{SPACE}/web-admin",
        "spaces-2/tool",
    ]
    assert await names.catalog(after=None, limit=10, spaces=["spaces-2"]) == ["spaces-2/tool"]
    found = await names.search(SPACE, query="WEB", after=None, limit=10)
    assert [r.name for r in found] == [f"{SPACE}/web", f"{SPACE}/web-admin"]
    assert all(isinstance(r.created_at, dt.datetime) for r in found)
    found = await names.search(SPACE, query="web", after=f"{SPACE}/web", limit=10)
    assert [r.name for r in found] == [f"{SPACE}/web-admin"]
    # the space's name is not searched, only the repository's own
    assert await names.search(SPACE, query="spaces", after=None, limit=10) == []
    assert await names.search("spaces-9", query=None, after=None, limit=10) == []


async def test_a_refused_push_lists_no_repository(instances: tuple[Instance, Instance]) -> None:
    """A PUT whose blobs the repository does not hold changes nothing, not even the list."""
    one, _ = instances
    content = canonical(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": CONFIG, "layers": [LAYER]}
    )
    [missing] = await one.metadata.images.commit_pushes(
        [manifest_push(f"{SPACE}/ghost", content, "1")]
    )
    assert missing is not None
    assert sorted(missing.blobs) == sorted([LAYER["digest"], CONFIG["digest"]])
    assert await one.registry.names.catalog(after=None, limit=10, spaces=None) == []
    assert await one.metadata.outbox.pending() == 0
