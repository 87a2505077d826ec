"""``FeedRepository`` in memory: a repository's tags read as Octopus versions."""

from __future__ import annotations

from shared.metadata.feed import VersionRecord, feed_fields
from tests.support.fakes.metadata.documents import Collections, link_id


class InMemoryFeed:
    """``FeedRepository.newest_versions``: the tags whose ``feed_key`` (``feed_fields`` of the
    tag and its push time, as a push writes it) is below the cursor, newest first, each with
    its manifest's size and what it references. The real windows and ``feed_top`` only decide
    where reading starts, so they have no counterpart here."""

    def __init__(self, data: Collections) -> None:
        self._data = data

    async def newest_versions(
        self, repository: str, *, include_prerelease: bool, before: str | None, limit: int
    ) -> list[VersionRecord]:
        versions: list[VersionRecord] = []
        for tag in self._data.tags.values():
            fields = feed_fields(tag["tag"], tag["updated_at"])
            key = fields["feed_key"]
            if tag["repository"] != repository or key is None:
                continue
            if (before is not None and key >= before) or (
                fields["prerelease"] and not include_prerelease
            ):
                continue
            manifest = self._data.manifests.get(link_id(repository, tag["digest"]), {})
            size = int(manifest.get("total_size") or manifest.get("size") or 0)
            pushed_at = tag["updated_at"]
            prerelease = bool(fields["prerelease"])
            versions.append(
                VersionRecord(tag["tag"], tag["digest"], size, pushed_at, prerelease, key)
            )
        return sorted(versions, key=lambda v: v.cursor, reverse=True)[:limit]
