"""The feed view's repository pages (services/registry/feed.py): a page of ``limit`` and the
name to continue after, which is there only when more follow."""

from __future__ import annotations

import datetime as dt
from typing import cast

import pytest

from services.registry.feed import Feed
from services.registry.repository_names import RepositoryNames
from shared.metadata.images import RepositoryRecord
from shared.metadata.store import MetadataStore

CREATED = dt.datetime(2026, 5, 4, tzinfo=dt.UTC)


class RepositoryListing:
    """A space's repositories in name order, searched as RepositoryNames searches them."""

    def __init__(self, names: list[str]) -> None:
        self.names = sorted(names)

    async def search(
        self, space: str, *, query: str | None, after: str | None, limit: int
    ) -> list[RepositoryRecord]:
        found = [
            n
            for n in self.names
            if n.startswith(f"{space}/")
            and (query is None or query.lower() in n.lower())
            and (after is None or n > after)
        ]
        return [RepositoryRecord(n, CREATED) for n in found[:limit]]


def feed_of(names: list[str]) -> Feed:
    return Feed(cast(MetadataStore, None), cast(RepositoryNames, RepositoryListing(names)))


NAMES = [f"acme/app-{i:02}" for i in range(7)] + ["other/app-00"]


@pytest.mark.parametrize(("limit", "pages"), [(3, [3, 3, 1]), (7, [7]), (1, [1] * 7), (50, [7])])
async def test_pages_cover_every_repository_once(limit: int, pages: list[int]) -> None:
    feed = feed_of(NAMES)
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
    page = await feed_of(NAMES).repositories("acme", query="app-0", after="acme/app-03", limit=3)
    assert [r.name for r in page.repositories] == ["acme/app-04", "acme/app-05", "acme/app-06"]
    assert page.next_after is None


async def test_an_empty_space_has_an_empty_last_page() -> None:
    page = await feed_of(NAMES).repositories("empty", query=None, after=None, limit=10)
    assert page.repositories == [] and page.next_after is None
