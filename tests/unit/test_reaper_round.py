"""A reaper round on in-memory fakes: each space whose run is due and not held by another
reaper gets its policy applied and a ``retention.completed`` event, a run ends even when it
fails, a space with an unreadable policy is skipped, blobs are collected, and upload sessions
abandoned for a day go with their staged bytes. What retention and garbage collection do
inside a space is theirs (tests/integration: test_retention_run, test_garbage_collection);
here they are recorded, to check what the round asks of them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services.reaper import main as reaper_main
from services.reaper.main import ABANDONED_AFTER, Reaper
from shared.garbage import Collected
from shared.retention import RetentionPolicy
from shared.retention_run import RetentionReport
from shared.settings import Settings
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.metadata import InMemoryMetadata, reaper_view
from tests.support.fakes.storage import InMemoryBlobStore

EVERY_SECONDS = 3600
DEBOUNCE_SECONDS = 60
# The round takes "a day ago" from the system clock: the fakes' clock starts there too.
START = dt.datetime.now(dt.UTC)


class Recorded:
    """Stand-ins for run_retention and collect_blobs that say who asked for what."""

    def __init__(self) -> None:
        self.retention: list[tuple[str, RetentionPolicy, bool]] = []
        self.collections = 0
        self.failing: set[str] = set()

    async def run_retention(
        self, metadata: Any, store: Any, space: str, policy: RetentionPolicy, **options: Any
    ) -> RetentionReport:
        self.retention.append((space, policy, options["dry_run"]))
        if space in self.failing:
            raise RuntimeError("the run failed")
        report = RetentionReport(space, options["dry_run"])
        report.removed = [{"repository": f"{space}/app", "tag": "1.0-deployments-1", "digest": "d"}]
        return report

    async def collect_blobs(self, metadata: Any, store: Any) -> Collected:
        self.collections += 1
        return Collected()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    recorded = Recorded()
    monkeypatch.setattr(reaper_main, "run_retention", recorded.run_retention)
    monkeypatch.setattr(reaper_main, "collect_blobs", recorded.collect_blobs)
    return recorded


def reaper_on(metadata: InMemoryMetadata, store: InMemoryBlobStore, owner: str) -> Reaper:
    settings = Settings.from_env(
        {
            "SPACEDOCK_RETENTION_INTERVAL_SECONDS": str(EVERY_SECONDS),
            "SPACEDOCK_RETENTION_DEBOUNCE_SECONDS": str(DEBOUNCE_SECONDS),
        }
    )
    return Reaper(reaper_view(metadata), store, settings, owner)


async def spaces(metadata: InMemoryMetadata, *ids: str) -> None:
    for space in ids:
        await metadata.spaces.create(space, space, anonymous_pull=False)


def completed(metadata: InMemoryMetadata) -> list[str]:
    return [event.subject for event in metadata.outbox.events("retention.completed")]


async def test_every_due_space_is_applied_once_and_reported(
    clock: FakeClock, recorded: Recorded
) -> None:
    metadata = InMemoryMetadata(clock)
    await spaces(metadata, "spaces-1", "team-a")
    await metadata.spaces.set_retention("team-a", {"deployment_tags": {"keep_last": 2}})
    reaper = reaper_on(metadata, InMemoryBlobStore(), "reaper-1")
    await reaper.round()
    assert sorted(space for space, _, _ in recorded.retention) == ["spaces-1", "team-a"]
    assert all(dry_run is False for _, _, dry_run in recorded.retention)
    policies = {space: policy for space, policy, _ in recorded.retention}
    assert policies["team-a"].keep_last == 2
    assert policies["spaces-1"] == RetentionPolicy()
    assert sorted(completed(metadata)) == ["spaces-1", "team-a"]
    assert recorded.collections == 1
    # Not due again until its interval has passed, or a deployment tag arrives
    await reaper.round()
    assert len(recorded.retention) == 2
    clock.advance(dt.timedelta(seconds=1))
    await metadata.runs.mark_due("team-a")  # a deployment tag arrived after the run
    await reaper.round()
    assert len(recorded.retention) == 2  # within the debounce
    clock.advance(dt.timedelta(seconds=DEBOUNCE_SECONDS))
    await reaper.round()
    assert [space for space, _, _ in recorded.retention[2:]] == ["team-a"]
    clock.advance(dt.timedelta(seconds=EVERY_SECONDS))  # an interval after the first runs
    await reaper.round()
    assert [space for space, _, _ in recorded.retention[3:]] == ["spaces-1"]
    clock.advance(dt.timedelta(seconds=DEBOUNCE_SECONDS))  # and after team-a's second
    await reaper.round()
    assert [space for space, _, _ in recorded.retention[4:]] == ["team-a"]


async def test_a_space_another_reaper_holds_is_left_to_it(
    clock: FakeClock, recorded: Recorded
) -> None:
    metadata = InMemoryMetadata(clock)
    await spaces(metadata, "spaces-1")
    minutes = dt.timedelta(minutes=1)
    assert await metadata.runs.claim("spaces-1", "reaper-2", minutes, minutes, minutes * 30)
    await reaper_on(metadata, InMemoryBlobStore(), "reaper-1").round()
    assert recorded.retention == []
    assert completed(metadata) == []


async def test_a_failed_run_still_ends_its_claim_and_the_round_goes_on(
    clock: FakeClock, recorded: Recorded
) -> None:
    metadata = InMemoryMetadata(clock)
    await spaces(metadata, "spaces-1", "team-a")
    recorded.failing = {"spaces-1"}
    reaper = reaper_on(metadata, InMemoryBlobStore(), "reaper-1")
    with pytest.raises(RuntimeError, match="the run failed"):
        await reaper.round()
    run = metadata.runs.runs["spaces-1"]
    assert run["last_run_at"] == START and run["lease_until"] == START  # released, not held
    recorded.failing = set()
    await reaper.round()  # the failed space is not due again before its interval
    assert [space for space, _, _ in recorded.retention] == ["spaces-1", "team-a"]
    assert completed(metadata) == ["team-a"]


async def test_an_unreadable_policy_skips_its_space(clock: FakeClock, recorded: Recorded) -> None:
    metadata = InMemoryMetadata(clock)
    await spaces(metadata, "spaces-1", "team-a")
    await metadata.spaces.set_retention("team-a", {"deployment_tags": {"keep_last": -1}})
    await reaper_on(metadata, InMemoryBlobStore(), "reaper-1").round()
    assert [space for space, _, _ in recorded.retention] == ["spaces-1"]
    assert completed(metadata) == ["spaces-1"]


async def test_uploads_abandoned_for_a_day_go_with_their_bytes(
    clock: FakeClock, recorded: Recorded
) -> None:
    clock.advance(-(ABANDONED_AFTER + dt.timedelta(minutes=1)))
    metadata = InMemoryMetadata(clock)
    store = InMemoryBlobStore()
    for upload_id in ("old", "recent"):
        state = await store.begin_upload(upload_id)
        await metadata.uploads.create(upload_id, "spaces-1/app", state)
        clock.advance(ABANDONED_AFTER + dt.timedelta(minutes=1))
    await reaper_on(metadata, store, "reaper-1").round()
    assert await metadata.uploads.get("old") is None
    assert await metadata.uploads.get("recent") is not None
