"""Compare-and-set writes racing on the real server: of two claims of one document, exactly
one wins, although each reads the document by ``_id`` and checks its guard itself
(``shared.metadata.connection.update_if``): the transactions that both write it conflict,
and the one run again sees the winner's write."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import pytest_asyncio

from shared.metadata.builds import new_build
from shared.metadata.store import MetadataStore

T = TypeVar("T")
LEASE = dt.timedelta(minutes=5)
ROUNDS = 8  # each round a fresh document, raced for again


@pytest_asyncio.fixture
async def store(mongo_url: str) -> AsyncIterator[MetadataStore]:
    store = MetadataStore.connect(mongo_url)
    await store.ensure_indexes()
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
