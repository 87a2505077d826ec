"""The names of each space's repositories, remembered: what ``_catalog`` pages through and
the feed view searches.

Repositories are never removed, and each new one moves its space's ``repositories_stamp`` in
the transaction that lists it (a space made again starts its stamps elsewhere): a list read
after the stamp it is kept under is at least that new, so one read of the spaces' stamps
tells whether what this instance remembers is current, whatever instance listed a
repository. A page or a search is then a bisect and a scan in memory rather than a read of
every name from the database.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
from collections.abc import Iterable

from services.registry.cache import SingleFlight, TtlCache
from shared.metadata.images import RepositoryRecord
from shared.metadata.ports import Metadata

# What the remembered names may take in all, over every space (roughly, in bytes).
BYTES_REMEMBERED = 128 * 1024 * 1024
# Stamps carry freshness; the age limit only bounds what an instance of an older version,
# which does not move stamps, can leave unseen.
REMEMBERED_SECONDS = 300.0


@dataclasses.dataclass(frozen=True, slots=True)
class SpaceRepositories:
    stamp: int
    names: list[str]  # in lexical order
    created: list[dt.datetime]  # of each name
    searched: list[str]  # each name without its space, casefolded: what a search matches

    @classmethod
    def of(cls, space: str, stamp: int, records: list[RepositoryRecord]) -> SpaceRepositories:
        prefix = len(space) + 1
        return cls(
            stamp,
            [r.name for r in records],
            [r.created_at for r in records],
            [r.name[prefix:].casefold() for r in records],
        )

    @property
    def weight(self) -> int:
        return sum(map(len, self.names)) + 64 * len(self.names) + 1

    def after(self, last: str | None) -> int:
        return 0 if last is None else bisect.bisect_right(self.names, last)


class RepositoryNames:
    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata
        self._spaces: TtlCache[str, SpaceRepositories] = TtlCache(
            REMEMBERED_SECONDS, BYTES_REMEMBERED, weigh=lambda listed: listed.weight
        )
        self._loads: SingleFlight[tuple[str, int], SpaceRepositories] = SingleFlight()

    async def catalog(
        self, *, after: str | None, limit: int, spaces: Iterable[str] | None
    ) -> list[str]:
        """Repository names after ``after`` in lexical order, of ``spaces`` (None: every
        space). A space's names all start "<space>/", so the spaces' lists, taken in the order
        of those prefixes, do not overlap and follow each other."""
        stamps = await self.metadata.images.repositories_stamps(spaces)
        names: list[str] = []
        for space in sorted(stamps, key=lambda space: f"{space}/"):
            if len(names) >= limit:
                break
            if after is not None and after >= f"{space}0":
                continue  # all of this space's names are at or before ``after``
            listed = await self._current(space, stamps[space])
            start = listed.after(after)
            names += listed.names[start : start + limit - len(names)]
        return names

    async def search(
        self, space: str, *, query: str | None, after: str | None, limit: int
    ) -> list[RepositoryRecord]:
        """The space's repositories after ``after`` whose name (without the space) contains
        ``query``, case-insensitively (None: all), in lexical order."""
        stamps = await self.metadata.images.repositories_stamps([space])
        if space not in stamps:
            return []
        listed = await self._current(space, stamps[space])
        wanted = None if query is None else query.casefold()
        found: list[RepositoryRecord] = []
        for i in range(listed.after(after), len(listed.names)):
            if wanted is None or wanted in listed.searched[i]:
                found.append(RepositoryRecord(listed.names[i], listed.created[i]))
                if len(found) >= limit:
                    break
        return found

    async def _current(self, space: str, stamp: int) -> SpaceRepositories:
        listed = self._spaces.get(space)
        if listed is not None and listed.stamp == stamp:
            return listed
        return await self._loads.run((space, stamp), lambda: self._load(space, stamp))

    async def _load(self, space: str, stamp: int) -> SpaceRepositories:
        listed = SpaceRepositories.of(
            space, stamp, await self.metadata.images.space_repositories(space)
        )
        self._spaces.put(space, listed)
        return listed
