"""A real retention run removes in batches, and re-checks each batch in its transaction: what
a push changed between the run's look and its removal stays, the rest of the batch goes, and
only what went has an ``image.deleted`` event."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from pymongo import AsyncMongoClient

from shared.metadata.retention import RetentionRepository
from shared.metadata.store import MetadataStore
from shared.retention import RetentionPolicy
from shared.retention_run import EventSource, RetentionReport, run_retention
from shared.storage.filesystem import FilesystemBlobStore
from tests.support.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    canonical,
    descriptor,
    digest_of,
)
from tests.support.pushes import manifest_push

SPACE = "spaces-1"
REPOSITORY = f"{SPACE}/shop"
CONFIG = descriptor(OCI_CONFIG, b'{"shop":true}')
LAYER = descriptor(OCI_LAYER, b"shop layer")
EVENTS = EventSource("/tests", "registry.test", "reaper")
# Every deployment tag but the newest goes; untagged manifests go at once.
POLICY = RetentionPolicy(retain_days=0, keep_last=1, untagged_retain_hours=0)


class RacedRetention(RetentionRepository):
    """Retention's reads, with pushes landing right after it has looked at the space's tags
    (and before it looks at its manifests), or right after it has looked at both, and before
    it removes anything."""

    def __init__(self, store: RacedStore) -> None:
        super().__init__(store.db, store.images)
        self.store = store
        self.after_tags: list[tuple[bytes, str | None]] = []
        self.after_manifests: list[tuple[bytes, str | None]] = []
        self._tags_seen = asyncio.Event()

    async def space_tags(self, space_id: str) -> list[dict[str, Any]]:
        seen = await super().space_tags(space_id)
        for content, tag in self.after_tags:
            await push(self.store, content, tag)
        self._tags_seen.set()
        return seen

    async def space_manifests(
        self, space_id: str, *, with_event_fields: bool
    ) -> dict[tuple[str, str], dict[str, Any]]:
        await self._tags_seen.wait()
        seen = await super().space_manifests(space_id, with_event_fields=with_event_fields)
        for content, tag in self.after_manifests:
            await push(self.store, content, tag)
        return seen


class RacedStore(MetadataStore):
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        super().__init__(client, database)
        self.raced = self.retention = RacedRetention(self)


@pytest_asyncio.fixture
async def store(mongo_url: str) -> AsyncIterator[RacedStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    metadata = RacedStore(client, client.get_default_database().name)
    await metadata.ensure_indexes()
    await metadata.spaces.ensure(SPACE, "Default")
    for blob, content in ((CONFIG, b'{"shop":true}'), (LAYER, b"shop layer")):
        await metadata.blobs.reserve(blob["digest"], len(content), "seed")
        await metadata.blobs.record_link(REPOSITORY, blob["digest"], len(content), "seed")
    yield metadata
    await metadata.close()


def image(n: int) -> bytes:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": CONFIG,
            "layers": [LAYER],
            "annotations": {"build": str(n)},
        }
    )


def index_of(*children: bytes) -> bytes:
    listed = [descriptor(OCI_MANIFEST, child) for child in children]
    return canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed})


async def push(store: MetadataStore, content: bytes, tag: str | None) -> str:
    push = manifest_push(REPOSITORY, content, tag)
    [missing] = await store.images.commit_pushes([push])
    assert missing is None
    return push.manifest.digest


async def backdate(store: MetadataStore, days: float) -> None:
    """Make every tag and manifest there is look pushed ``days`` ago."""
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    await store.db.tags.update_many({}, {"$set": {"updated_at": then}})
    await store.db.manifests.update_many({}, {"$set": {"created_at": then, "touched_at": then}})


async def run(
    store: MetadataStore, tmp_path: Path, clock_ahead: dt.timedelta = dt.timedelta(0)
) -> RetentionReport:
    return await run_retention(
        store,
        FilesystemBlobStore(tmp_path / "blobs"),
        SPACE,
        POLICY,
        now=dt.datetime.now(dt.UTC) + clock_ahead,
        dry_run=False,
        events=EVENTS,
    )


async def deleted_events(store: MetadataStore) -> list[tuple[str | None, str]]:
    """(tag, digest) of every ``image.deleted`` event recorded."""
    found = []
    async for entry in store.db.outbox.find({}):
        for message in entry.get("messages") or [entry]:
            if message["routing_key"] == "image.deleted":
                data = json.loads(bytes(message["body"]))["data"]
                found.append((data["tag"], data["digest"]))
    return sorted(found, key=lambda item: (item[0] or "", item[1]))


async def tags_left(store: MetadataStore) -> list[str]:
    return sorted(await store.images.all_tags(REPOSITORY))


async def manifests_left(store: MetadataStore) -> set[str]:
    return {doc["digest"] async for doc in store.db.manifests.find({}, {"digest": 1})}


async def test_a_tag_pushed_again_after_the_look_stays_and_its_batch_goes(
    store: RacedStore, tmp_path: Path
) -> None:
    digests = {n: await push(store, image(n), f"1.0.{n}-deployments-{n}") for n in range(1, 6)}
    await backdate(store, 40)
    # Deployment 3 is pushed again (another build) once the run has read the tags.
    store.raced.after_tags = [(image(33), "1.0.3-deployments-3")]

    report = await run(store, tmp_path)

    assert [t["tag"] for t in report.removed] == [
        "1.0.1-deployments-1",
        "1.0.2-deployments-2",
        "1.0.4-deployments-4",
    ]
    assert await tags_left(store) == ["1.0.3-deployments-3", "1.0.5-deployments-5"]
    # The manifests of the removed tags went with them; the re-pushed tag's old one too.
    gone = {digests[n] for n in (1, 2, 3, 4)}
    assert {m["digest"] for m in report.manifests} == gone
    assert not gone & await manifests_left(store)
    assert await deleted_events(store) == sorted(
        [(f"1.0.{n}-deployments-{n}", digests[n]) for n in (1, 2, 4)]
        + [(None, digests[n]) for n in (1, 2, 3, 4)],
        key=lambda item: (item[0] or "", item[1]),
    )


async def test_a_manifest_tagged_after_the_look_stays_with_what_it_lists(
    store: RacedStore, tmp_path: Path
) -> None:
    """Untagged old manifests, among them an index and its two platform images: the run
    looks, then a push tags the index and another pushes a loose manifest again by digest.
    Those stay, with what the index lists; the other untagged manifests of the same batch
    go, each with its event."""
    amd64, arm64 = image(64), image(65)
    platforms = [await push(store, body, None) for body in (amd64, arm64)]
    index = await push(store, index_of(amd64, arm64), None)
    loose = [await push(store, image(n), None) for n in range(1, 4)]
    await backdate(store, 3)
    store.raced.after_manifests = [(index_of(amd64, arm64), "release"), (image(1), None)]

    report = await run(store, tmp_path)

    assert report.removed == []
    assert {m["digest"] for m in report.manifests} == set(loose[1:])
    assert await manifests_left(store) == {index, *platforms, loose[0]}
    assert await tags_left(store) == ["release"]
    assert await deleted_events(store) == sorted((None, digest) for digest in loose[1:])


async def test_an_index_removed_takes_its_children_in_one_batch(
    store: RacedStore, tmp_path: Path
) -> None:
    """Parents go before children inside a batch: an untagged old index and the images it
    lists all go in one run."""
    amd64, arm64 = image(64), image(65)
    platforms = [await push(store, body, None) for body in (amd64, arm64)]
    index = await push(store, index_of(amd64, arm64), None)
    kept = await push(store, image(7), "latest")
    await backdate(store, 3)

    report = await run(store, tmp_path)

    assert {m["digest"] for m in report.manifests} == {index, *platforms}
    assert await manifests_left(store) == {kept}
    assert len(await deleted_events(store)) == 3


async def test_what_the_look_missed_is_checked_again_before_removal(
    store: RacedStore, tmp_path: Path
) -> None:
    """The run's clock is an hour ahead, so what was pushed just now looks old to it. A push
    tags an index of two images between the run's look at the tags and at the manifests:
    the run sees them untagged and unchanged since, and still leaves the tagged index and
    what it lists; a loose manifest in the same batch goes."""
    amd64, arm64 = image(64), image(65)
    platforms = [await push(store, body, None) for body in (amd64, arm64)]
    loose = await push(store, image(9), None)
    store.raced.after_tags = [(index_of(amd64, arm64), "bundle")]

    report = await run(store, tmp_path, clock_ahead=dt.timedelta(hours=1))

    index = digest_of(index_of(amd64, arm64))
    assert [m["digest"] for m in report.manifests] == [loose]
    assert await manifests_left(store) == {index, *platforms}
    assert await tags_left(store) == ["bundle"]
    assert await deleted_events(store) == [(None, loose)]


async def test_a_manifest_without_a_push_time_stays(store: RacedStore, tmp_path: Path) -> None:
    """A manifest whose push time the metadata does not hold (neither touched nor created at
    a time) stays, in a dry run and in a real one, while its old neighbour goes; one written
    before every push touched it is weighed by its creation."""
    unknown = await push(store, image(11), None)
    old = await push(store, image(12), None)
    created_long_ago = await push(store, image(13), None)
    await backdate(store, 3)
    await store.db.manifests.update_one(
        {"digest": unknown}, {"$unset": {"touched_at": "", "created_at": ""}}
    )
    await store.db.manifests.update_one(
        {"digest": created_long_ago}, {"$unset": {"touched_at": ""}}
    )

    dry = await run_retention(
        store,
        FilesystemBlobStore(tmp_path / "blobs"),
        SPACE,
        POLICY,
        now=dt.datetime.now(dt.UTC),
        dry_run=True,
        events=EVENTS,
    )
    report = await run(store, tmp_path)

    going = sorted([old, created_long_ago])
    assert sorted(m["digest"] for m in dry.manifests) == going
    assert sorted(m["digest"] for m in report.manifests) == going
    assert await manifests_left(store) == {unknown}
