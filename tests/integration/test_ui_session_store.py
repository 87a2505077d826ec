"""The sessions repository on a real MongoDB-wire server: records round-trip, expired ones
are cleared by their index, and nothing else is touched."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest_asyncio

from shared.metadata.sessions import CLEAR_BATCH, SessionRecord
from shared.metadata.store import MetadataStore

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest_asyncio.fixture
async def store(mongo_url: str) -> AsyncIterator[MetadataStore]:
    metadata = MetadataStore.connect(mongo_url)
    await metadata.ensure_indexes()
    yield metadata
    await metadata.close()


def record(id_hash: str, expires_at: dt.datetime) -> SessionRecord:
    return SessionRecord(
        id_hash=id_hash,
        username="ada",
        credential="password",
        epoch=2,
        csrf_token="token-" + id_hash,
        created_at=NOW - dt.timedelta(hours=1),
        last_seen=NOW - dt.timedelta(minutes=5),
        absolute_expiry=NOW + dt.timedelta(hours=11),
        expires_at=expires_at,
    )


async def test_a_session_round_trips_and_is_touched_and_deleted(store: MetadataStore) -> None:
    sessions = store.sessions
    added = record("h1", NOW + dt.timedelta(minutes=55))
    await sessions.add(added)
    assert await sessions.get("h1") == added
    later = NOW + dt.timedelta(minutes=1)
    await sessions.touch("h1", later, later + dt.timedelta(hours=1))
    touched = await sessions.get("h1")
    assert touched is not None
    assert (touched.last_seen, touched.expires_at) == (later, later + dt.timedelta(hours=1))
    await sessions.delete("h1")
    assert await sessions.get("h1") is None


async def test_only_expired_sessions_are_cleared_a_batch_at_a_time(store: MetadataStore) -> None:
    sessions = store.sessions
    for n in range(CLEAR_BATCH + 3):
        await sessions.add(record(f"old{n}", NOW - dt.timedelta(seconds=n + 1)))
    await sessions.add(record("live", NOW + dt.timedelta(minutes=1)))
    assert await sessions.clear_expired(NOW) == CLEAR_BATCH
    assert await sessions.clear_expired(NOW) == 3
    assert await sessions.clear_expired(NOW) == 0
    assert await sessions.get("live") is not None


async def test_clearing_reads_the_expiry_index(store: MetadataStore) -> None:
    explained = await store.db.command(
        {
            "explain": {"find": "ui_sessions", "filter": {"expires_at": {"$lt": NOW}}},
            "verbosity": "queryPlanner",
        }
    )
    plan = explained["queryPlanner"]["winningPlan"]
    while plan.get("stage") != "IXSCAN" and "inputStage" in plan:
        plan = plan["inputStage"]
    assert plan.get("indexName") == "expires_at_1"
