"""The spaces model (services/registry/spaces.py) on in-memory metadata: the next free
``spaces-N``, what happens when another instance creates the same id between the read and the
insert, and which spaces may be changed or deleted."""

from __future__ import annotations

import pytest

from services.registry.events import ImageEvents
from services.registry.identity.access import AccessControl
from services.registry.identity.tokens import TokenSigner
from services.registry.management.errors import Conflict, NotFound
from services.registry.registry import Registry
from services.registry.spaces import ALLOCATION_ATTEMPTS, Spaces, next_generated_id
from shared.metadata.spaces import SpaceRecord
from tests.support.fakes.metadata import InMemoryMetadata
from tests.support.fakes.metadata.documents import system_clock
from tests.support.fakes.metadata.spaces import InMemorySpaces
from tests.support.fakes.storage import InMemoryBlobStore


class RacingSpaces(InMemorySpaces):
    """Spaces in memory, where a rival instance wins the next ``lost_races`` inserts: it
    creates the very id we are about to insert just before we do."""

    def __init__(self, metadata: InMemoryMetadata, lost_races: int) -> None:
        super().__init__(metadata.data, metadata.transaction, system_clock)
        self.lost_races = lost_races
        self.attempts: list[str] = []

    async def create(self, space_id: str, name: str, anonymous_pull: bool) -> SpaceRecord:
        self.attempts.append(space_id)
        if self.lost_races > 0:
            self.lost_races -= 1
            await super().create(space_id, "the rival's", anonymous_pull=False)
        return await super().create(space_id, name, anonymous_pull)


class Site:
    """The spaces model over in-memory metadata holding ``ids``, with the registry and access
    control whose caches it keeps current."""

    def __init__(self, ids: set[str], lost_races: int = 0) -> None:
        self.metadata = InMemoryMetadata()
        for space_id in ids:
            self.metadata.add_space(space_id)
        self.store = self.metadata.spaces = RacingSpaces(self.metadata, lost_races)
        events = ImageEvents("https://registry.test", "registry.test", lambda: None)
        registry = Registry(self.metadata, InMemoryBlobStore(), 30.0, events)
        access = AccessControl(
            self.metadata.accounts,
            TokenSigner(b"s" * 32),
            public_url="https://registry.test",
            cache_ttl=300.0,
            token_ttl=300,
        )
        self.spaces = Spaces(self.metadata, registry, access)


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
    site = Site({"spaces-1", "spaces-2", "team-a"})
    space = await site.spaces.create(None, "Builds", anonymous_pull=True)
    assert space.id == "spaces-3" and space.name == "Builds" and space.anonymous_pull
    assert site.store.attempts == ["spaces-3"]


async def test_a_lost_race_moves_on_to_the_next_number() -> None:
    site = Site({"spaces-1"}, lost_races=3)
    space = await site.spaces.create(None, "Late", anonymous_pull=False)
    assert site.store.attempts == ["spaces-2", "spaces-3", "spaces-4", "spaces-5"]
    assert space.id == "spaces-5"


async def test_allocation_gives_up_after_its_attempts() -> None:
    site = Site(set(), lost_races=ALLOCATION_ATTEMPTS)
    with pytest.raises(Conflict, match="could not allocate a space id"):
        await site.spaces.create(None, "Never", anonymous_pull=False)
    assert len(site.store.attempts) == ALLOCATION_ATTEMPTS


async def test_the_last_attempt_can_still_succeed() -> None:
    site = Site(set(), lost_races=ALLOCATION_ATTEMPTS - 1)
    space = await site.spaces.create(None, "Just", anonymous_pull=False)
    assert space.id == f"spaces-{ALLOCATION_ATTEMPTS}"


async def test_a_requested_id_that_is_taken_is_a_conflict_without_retrying() -> None:
    site = Site({"team-a"})
    with pytest.raises(Conflict, match="space team-a already exists"):
        await site.spaces.create("team-a", "Team A", anonymous_pull=False)
    assert site.store.attempts == ["team-a"]


async def test_an_update_is_seen_at_once_and_an_unknown_space_is_not_found() -> None:
    site = Site({"team-a"})
    assert (await site.spaces.update("team-a", {"name": "Team A"})).name == "Team A"
    found = await site.spaces.find("team-a")
    assert found is not None and found.name == "Team A"
    with pytest.raises(NotFound):
        await site.spaces.update("team-b", {"name": "Team B"})


async def test_only_an_empty_space_other_than_the_default_is_deleted() -> None:
    site = Site({"spaces-1", "team-a", "team-b"})
    await site.metadata.images.touch_repository("team-a/app")
    with pytest.raises(Conflict, match="it still has repositories"):
        await site.spaces.delete("team-a")
    with pytest.raises(Conflict, match="the default space cannot be deleted"):
        await site.spaces.delete("spaces-1")
    await site.metadata.accounts.set_membership("team-b", "rhea", "reader")
    await site.spaces.delete("team-b")
    assert [s.id for s in await site.metadata.spaces.all()] == ["spaces-1", "team-a"]
    assert await site.metadata.accounts.list_memberships("team-b") == []
    with pytest.raises(NotFound):
        await site.spaces.delete("team-b")
