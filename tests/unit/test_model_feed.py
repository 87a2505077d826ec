"""The feed view's pages (services/registry/feed.py) of repositories and of versions: a page
of ``limit`` and where to continue after it, which is there only when more follow."""

from __future__ import annotations

import pytest

from services.registry.feed import Feed
from services.registry.management.errors import NotFound
from services.registry.repository_names import RepositoryNames
from shared.oci.names import RepositoryName
from tests.support.fakes.metadata import InMemoryMetadata
from tests.support.oci import OCI_INDEX, canonical
from tests.support.pushes import manifest_push


async def feed_of(names: list[str], tags: tuple[str, ...] = ()) -> Feed:
    """The feed over in-memory metadata holding the repositories ``names``, each with an
    (empty) index pushed as each of ``tags``."""
    metadata = InMemoryMetadata()
    index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    for name in names:
        metadata.add_space(name.split("/", 1)[0])
        await metadata.images.touch_repository(name)
        await metadata.images.commit_pushes([manifest_push(name, index, tag) for tag in tags])
    return Feed(metadata, RepositoryNames(metadata))


NAMES = [f"acme/app-{i:02}" for i in range(7)] + ["other/app-00"]


@pytest.mark.parametrize(("limit", "pages"), [(3, [3, 3, 1]), (7, [7]), (1, [1] * 7), (50, [7])])
async def test_pages_cover_every_repository_once(limit: int, pages: list[int]) -> None:
    feed = await feed_of(NAMES)
    seen: list[str] = []
    sizes: list[int] = []
    after: str | None = None
    while True:
        page = await feed.repositories("acme", query=None, after=after, limit=limit)
        sizes.append(len(page.repositories))
        seen += [r.name for r in page.repositories]
        if page.next_after is None:
            break
        assert page.next_after == seen[-1]
        after = page.next_after
    assert sizes == pages
    assert seen == NAMES[:7]


async def test_a_page_that_ends_exactly_at_the_last_repository_has_no_next() -> None:
    page = await (await feed_of(NAMES)).repositories(
        "acme", query="app-0", after="acme/app-03", limit=3
    )
    assert [r.name for r in page.repositories] == ["acme/app-04", "acme/app-05", "acme/app-06"]
    assert page.next_after is None


async def test_an_empty_space_has_an_empty_last_page() -> None:
    page = await (await feed_of(NAMES)).repositories("empty", query=None, after=None, limit=10)
    assert page.repositories == [] and page.next_after is None


async def test_versions_of_a_repository_that_does_not_exist_are_not_found() -> None:
    feed = await feed_of(NAMES)
    with pytest.raises(NotFound, match="acme/gone"):
        await feed.versions(RepositoryName.parse("acme/gone"), include_prerelease=True, limit=5)


async def test_version_pages_go_newest_first_and_continue_after_their_last() -> None:
    tags = ("1.2.0", "1.10.0", "2.0.0-beta", "1.9.1")
    feed = await feed_of(["acme/app"], tags)
    name = RepositoryName.parse("acme/app")
    first = await feed.versions(name, include_prerelease=True, limit=2)
    assert [v.tag for v in first.versions] == ["2.0.0-beta", "1.10.0"]
    assert first.next_before == first.versions[-1].cursor
    rest = await feed.versions(name, include_prerelease=True, limit=2, before=first.next_before)
    assert [v.tag for v in rest.versions] == ["1.9.1", "1.2.0"] and rest.next_before is None
    released = await feed.versions(name, include_prerelease=False, limit=5)
    assert [v.tag for v in released.versions] == ["1.10.0", "1.9.1", "1.2.0"]
