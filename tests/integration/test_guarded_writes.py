"""Compare-and-set writes racing on the real server: of two claims of one document, exactly
one wins, although each reads the document by ``_id`` and checks its guard itself
(``shared.metadata.connection.update_if``): the transactions that both write it conflict,
and the one run again sees the winner's write."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio

from services.registry.bootstrap import BUILDER, first_start
from services.registry.identity import api_keys
from shared.metadata.builds import new_build
from shared.metadata.errors import SpaceMissing, SpaceNotEmpty
from shared.metadata.store import MetadataStore
from shared.settings import Settings
from tests.support.oci import OCI_INDEX, canonical
from tests.support.pushes import manifest_push

T = TypeVar("T")
LEASE = dt.timedelta(minutes=5)
ROUNDS = 8  # each round a fresh document, raced for again


@pytest_asyncio.fixture
async def store(mongo_url: str) -> AsyncIterator[MetadataStore]:
    store = MetadataStore.connect(mongo_url)
    await store.ensure_indexes()
    await store.spaces.ensure("spaces-1", "Default")
    yield store
    await store.close()


async def test_two_writes_claiming_one_upload_one_wins(store: MetadataStore) -> None:
    for n in range(ROUNDS):
        upload_id = f"upload-{n}"
        await store.uploads.create(upload_id, "spaces-1/app", {"parts": []})
        first, second = await asyncio.gather(
            store.uploads.claim(upload_id, "write-a", LEASE),
            store.uploads.claim(upload_id, "write-b", LEASE),
        )
        assert (first is None) != (second is None)
        stored = await store.db.uploads.find_one({"_id": upload_id})
        assert stored is not None
        assert stored["lock"]["token"] == ("write-a" if first else "write-b")


async def test_a_resumed_write_and_the_reaper_never_both_hold_an_upload(
    store: MetadataStore,
) -> None:
    """An upload the reaper finds abandoned, resumed by its client at that moment."""
    for n in range(ROUNDS):
        upload_id = f"upload-{n}"
        await store.uploads.create(upload_id, "spaces-1/app", {"parts": []})
        cutoff = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        resumed, reaped = await asyncio.gather(
            _after(n * 0.001, store.uploads.claim(upload_id, "client", LEASE)),
            store.uploads.claim_abandoned(cutoff, "reaper", LEASE),
        )
        assert (resumed is None) != (reaped is None)
        assert await store.uploads.delete_claimed(upload_id, "client" if resumed else "reaper")


async def _after(delay: float, claim: Awaitable[T]) -> T:
    """``claim``, started ``delay`` seconds late: the reaper reads its candidates first, so
    the client's claim starts later each round, to meet the reaper's claim at some point."""
    await asyncio.sleep(delay)
    return await claim


async def test_two_builders_claiming_one_build_one_wins(store: MetadataStore) -> None:
    for n in range(ROUNDS):
        build_id = f"build-{n}"
        await store.builds.create(new_build("spaces-1", build_id, None))
        first, second = await asyncio.gather(
            store.builds.claim("spaces-1", build_id, "builder-a", LEASE),
            store.builds.claim("spaces-1", build_id, "builder-b", LEASE),
        )
        assert (first is None) != (second is None)
        stored = await store.builds.get("spaces-1", build_id)
        assert stored is not None
        assert stored.owner == ("builder-a" if first else "builder-b")


async def test_two_reapers_claiming_one_space_one_runs_it(store: MetadataStore) -> None:
    every, debounce = dt.timedelta(hours=1), dt.timedelta(minutes=1)
    for n in range(ROUNDS):
        space = f"spaces-{n}"
        await store.runs.mark_due(space)
        first, second = await asyncio.gather(
            store.runs.claim(space, "reaper-a", every, debounce, LEASE),
            store.runs.claim(space, "reaper-b", every, debounce, LEASE),
        )
        assert (first is None) != (second is None)
        stored = await store.db.reaper_runs.find_one({"_id": space})
        assert stored is not None
        assert stored["owner"] == ("reaper-a" if first else "reaper-b")


async def test_a_space_deleted_while_its_first_repository_is_pushed_ends_one_way(
    store: MetadataStore,
) -> None:
    """Either the push lists the repository and the deletion is refused, or the space goes
    and the push fails: never a repository left in a space that is gone."""
    content = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    for n in range(ROUNDS):
        space = f"spaces-{100 + n}"
        await store.spaces.create(space, space, anonymous_pull=False)
        push = store.images.commit_pushes([manifest_push(f"{space}/app", content, "1")])
        # Now one starts first, now the other, now both at once.
        pushed, deleted = await asyncio.gather(
            _after(0.004 * (n % 3 == 1), push),
            _after(0.004 * (n % 3 == 2), store.spaces.delete(space)),
            return_exceptions=True,
        )
        listed = await store.db.repositories.find_one({"_id": f"{space}/app"})
        if isinstance(deleted, SpaceNotEmpty):
            assert pushed == [None] and listed is not None
            assert await store.spaces.get(space) is not None
        else:
            assert deleted == [] and isinstance(pushed, SpaceMissing), (pushed, deleted)
            assert listed is None and await store.spaces.get(space) is None
            assert await store.db.manifests.count_documents({"repository": f"{space}/app"}) == 0


async def test_a_space_with_a_repository_is_not_deleted(store: MetadataStore) -> None:
    await store.spaces.create("spaces-90", "ninety", anonymous_pull=False)
    await store.images.touch_repository("spaces-90/app")
    with pytest.raises(SpaceNotEmpty):
        await store.spaces.delete("spaces-90")
    assert await store.spaces.get("spaces-90") is not None


async def test_nothing_is_listed_in_a_space_that_is_gone(store: MetadataStore) -> None:
    with pytest.raises(SpaceMissing):
        await store.images.touch_repository("spaces-91/app")
    assert await store.db.repositories.find_one({"_id": "spaces-91/app"}) is None


async def test_a_space_deleted_while_a_build_is_asked_for_ends_one_way(
    store: MetadataStore,
) -> None:
    """Either the build is recorded and the deletion refused (a build is queued), or the space
    goes and the build is refused: never a build left under the id of a space that is gone."""
    for n in range(ROUNDS):
        space = f"spaces-{200 + n}"
        await store.spaces.create(space, space, anonymous_pull=False)
        create = store.builds.create(new_build(space, "b1", {"sdi": {"id": "s"}}))
        created, deleted = await asyncio.gather(
            _after(0.004 * (n % 3 == 1), create),
            _after(0.004 * (n % 3 == 2), store.spaces.delete(space)),
            return_exceptions=True,
        )
        stored = await store.builds.get(space, "b1")
        if isinstance(deleted, SpaceNotEmpty):
            assert not isinstance(created, BaseException) and stored is not None
            assert await store.spaces.get(space) is not None
        else:
            assert deleted == [] and isinstance(created, SpaceMissing), (created, deleted)
            assert stored is None and await store.spaces.get(space) is None


async def test_a_rotated_builder_key_stops_working(store: MetadataStore, tmp_path: Path) -> None:
    """At each start the builder's configured key is its only one: the key rotated away (or
    the one an earlier `serve` made for its run) does not stay valid."""
    old, new = api_keys.new_key(), api_keys.new_key()
    for key in (old, new):
        settings = Settings.from_env(
            {"SPACEDOCK_BUILDER_KEY": key.text, "SPACEDOCK_DATA_DIR": str(tmp_path)}
        )
        await first_start(store, settings)
    keys = {doc["_id"] for doc in await store.accounts.list_api_keys(BUILDER)}
    assert keys == {new.id}
