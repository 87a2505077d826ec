"""Space id allocation (services/registry/spaces.py): the next free ``spaces-N``, and what
happens when another instance creates the same id between the read and the insert."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import cast

import pytest

from services.registry.identity.access import AccessControl
from services.registry.management.errors import Conflict
from services.registry.registry import Registry
from services.registry.spaces import ALLOCATION_ATTEMPTS, Spaces, next_generated_id
from shared.metadata.errors import AlreadyExists
from shared.metadata.spaces import SpaceRecord
from shared.metadata.store import MetadataStore


class RacingSpaceStore:
    """Space ids in memory, where a rival instance wins the next ``lost_races`` inserts: it
    creates the very id we are about to insert just before we do."""

    def __init__(self, ids: set[str], lost_races: int = 0) -> None:
        self.ids = set(ids)
        self.lost_races = lost_races
        self.attempts: list[str] = []

    async def ids_starting(self, prefix: str) -> list[str]:
        return sorted(i for i in self.ids if i.startswith(prefix))

    async def create(self, space_id: str, name: str, anonymous_pull: bool) -> SpaceRecord:
        self.attempts.append(space_id)
        if self.lost_races > 0:
            self.lost_races -= 1
            self.ids.add(space_id)
        if space_id in self.ids:
            raise AlreadyExists(space_id)
        self.ids.add(space_id)
        return SpaceRecord(space_id, name, anonymous_pull, dt.datetime(2026, 3, 1, tzinfo=dt.UTC))


@dataclass
class Metadata:
    spaces: RacingSpaceStore


def spaces_over(store: RacingSpaceStore) -> Spaces:
    # Allocation touches neither caches nor grants: nothing stands in for them.
    metadata = cast(MetadataStore, Metadata(store))
    return Spaces(metadata, cast(Registry, None), cast(AccessControl, None))


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ([], "spaces-1"),
        (["spaces-1", "spaces-2"], "spaces-3"),
        (["spaces-1", "spaces-7"], "spaces-8"),  # gaps stay gaps: a deleted id is not reused
        (["spaces-2", "spaces-10", "spaces-9"], "spaces-11"),  # by number, not by text
        (["spaces-3", "spaces-4-old", "spaces-x", "spaces-"], "spaces-4"),
        (["spaces-5", "spaces-1234567890"], "spaces-6"),  # longer than any generated number
    ],
)
def test_next_generated_id_follows_the_highest_number(taken: list[str], expected: str) -> None:
    assert next_generated_id(taken) == expected


async def test_numbered_space_takes_the_next_free_id() -> None:
    store = RacingSpaceStore({"spaces-1", "spaces-2", "team-a"})
    space = await spaces_over(store).create(None, "Builds", anonymous_pull=True)
    assert space.id == "spaces-3" and space.name == "Builds" and space.anonymous_pull
    assert store.attempts == ["spaces-3"]


async def test_a_lost_race_moves_on_to_the_next_number() -> None:
    store = RacingSpaceStore({"spaces-1"}, lost_races=3)
    space = await spaces_over(store).create(None, "Late", anonymous_pull=False)
    assert store.attempts == ["spaces-2", "spaces-3", "spaces-4", "spaces-5"]
    assert space.id == "spaces-5"


async def test_allocation_gives_up_after_its_attempts() -> None:
    store = RacingSpaceStore(set(), lost_races=ALLOCATION_ATTEMPTS)
    with pytest.raises(Conflict, match="could not allocate a space id"):
        await spaces_over(store).create(None, "Never", anonymous_pull=False)
    assert len(store.attempts) == ALLOCATION_ATTEMPTS


async def test_the_last_attempt_can_still_succeed() -> None:
    store = RacingSpaceStore(set(), lost_races=ALLOCATION_ATTEMPTS - 1)
    space = await spaces_over(store).create(None, "Just", anonymous_pull=False)
    assert space.id == f"spaces-{ALLOCATION_ATTEMPTS}"


async def test_a_requested_id_that_is_taken_is_a_conflict_without_retrying() -> None:
    store = RacingSpaceStore({"team-a"})
    with pytest.raises(Conflict, match="space team-a already exists"):
        await spaces_over(store).create("team-a", "Team A", anonymous_pull=False)
    assert store.attempts == ["team-a"]
