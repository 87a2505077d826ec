"""The feed model: a space's repositories, searched by name, and a repository's tags read as
Octopus versions (``shared.versions``), newest first.

This is how the deployment server lists images and picks versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.registry.management.errors import NotFound
from services.registry.repository_names import RepositoryNames
from shared.metadata.feed import VersionRecord
from shared.metadata.images import RepositoryRecord
from shared.metadata.ports import FeedMetadata
from shared.oci.names import RepositoryName


@dataclass(frozen=True, slots=True)
class VersionPage:
    """Versions newest first, and the cursor to continue after the last (None at the end)."""

    versions: list[VersionRecord]
    next_before: str | None


@dataclass(frozen=True, slots=True)
class RepositoryPage:
    """Repositories in name order, and the name to continue after (None on the last page)."""

    repositories: list[RepositoryRecord]
    next_after: str | None


class Feed:
    def __init__(self, metadata: FeedMetadata, names: RepositoryNames) -> None:
        self.metadata = metadata
        self.names = names

    async def repositories(
        self, space: str, *, query: str | None, after: str | None, limit: int
    ) -> RepositoryPage:
        """Up to ``limit`` repositories of ``space`` after ``after`` whose names hold
        ``query`` (case-insensitive), searched among the names this instance remembers
        (``RepositoryNames``: current, whatever instance listed a repository)."""
        # One more than the page tells whether another page follows without a count.
        found = await self.names.search(space, query=query, after=after, limit=limit + 1)
        page = found[:limit]
        return RepositoryPage(page, page[-1].name if len(found) > limit else None)

    async def versions(
        self,
        name: RepositoryName,
        *,
        include_prerelease: bool,
        limit: int,
        before: str | None = None,
    ) -> VersionPage:
        """The newest ``limit`` tags of ``name`` (after the cursor ``before``, a page's
        ``next_before``) with their order, digest, size and push time."""
        if not await self.metadata.images.repository_exists(name.full):
            raise NotFound(f"repository {name.full} does not exist")
        # The order is kept with each tag (shared.versions.order_key) and served by an index,
        # so a page costs the same at 20 tags and at 20,000, wherever it starts.
        found = await self.metadata.feed.newest_versions(
            name.full, include_prerelease=include_prerelease, before=before, limit=limit + 1
        )
        page = found[:limit]
        return VersionPage(page, page[-1].cursor if len(found) > limit else None)
