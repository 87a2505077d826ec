"""The in-memory metadata fakes (tests/support/fakes/metadata/) behave as the real
repositories where the behaviour is subtle: each test body runs once on the fakes and once on
the repositories over a real MongoDB-wire server (SecantusDB), and must pass on both. The unit
tests on the fakes lean on exactly these behaviours: a lease that lapses, a refused push that
writes nothing, a group whose pushes are judged before any of them is recorded, and a blob a
collector holds."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from shared.metadata.blobs import BlobBeingDeleted
from shared.metadata.errors import SpaceMissing
from shared.metadata.images import ManifestPush, MissingReferences
from shared.metadata.ports import BlobLinks, ImageRecords, UploadSessions, VersionFeed
from shared.metadata.store import MetadataStore
from tests.support.fakes.metadata import InMemoryMetadata
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
REPO = f"{SPACE}/quay"
OTHER = f"{SPACE}/pier"
CONFIG, LAYER, ABSENT = b"{}", b"a linked layer", b"a layer nobody uploaded"
LEASE = dt.timedelta(milliseconds=300)
FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


@dataclass
class Backend:
    """The repositories under test, real or fake, and the means to look past them."""

    uploads: UploadSessions
    blobs: BlobLinks
    images: ImageRecords
    feed: VersionFeed
    # The ids of the events recorded, in order.
    event_ids: Callable[[], Awaitable[list[str]]]
    # Put the blob in the state a collector's claim leaves it in, until the given moment.
    collector_holds: Callable[[str, dt.datetime], Awaitable[None]]


def fake_backend() -> Backend:
    metadata = InMemoryMetadata()
    metadata.add_space(SPACE)

    async def event_ids() -> list[str]:
        return [event.id for event in metadata.outbox.events()]

    async def collector_holds(digest: str, until: dt.datetime) -> None:
        metadata.blobs.collector_holds(digest, until)

    return Backend(
        metadata.uploads, metadata.blobs, metadata.images, metadata.feed, event_ids, collector_holds
    )


def real_backend(store: MetadataStore) -> Backend:
    async def event_ids() -> list[str]:
        return [
            m["id"] async for doc in store.db.outbox.find() for m in doc.get("messages") or [doc]
        ]

    async def collector_holds(digest: str, until: dt.datetime) -> None:
        await store.db.blobs.update_one(
            {"_id": digest},
            {"$set": {"deleting_token": "collector", "deleting_until": until, "writers": []}},
        )

    return Backend(store.uploads, store.blobs, store.images, store.feed, event_ids, collector_holds)


@pytest.fixture(params=["fake", "real"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "fake":
        yield fake_backend()
        return
    store = MetadataStore.connect(request.getfixturevalue("mongo_url"))
    await store.ensure_indexes()
    await store.spaces.ensure(SPACE, "Docks")
    yield real_backend(store)
    await store.close()


def image(layer: bytes, note: str = "") -> bytes:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, CONFIG),
            "layers": [descriptor(OCI_LAYER, layer)],
            "annotations": {"note": note},
        }
    )


def index(*children: bytes) -> bytes:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, child) for child in children],
        }
    )


def push(repository: str, content: bytes, tag: str | None) -> ManifestPush:
    return manifest_push(repository, content, tag)


async def link(backend: Backend, repository: str, *blobs: bytes) -> None:
    for blob in blobs:
        await backend.blobs.reserve(digest_of(blob), len(blob), "uploader")
        await backend.blobs.record_link(repository, digest_of(blob), len(blob), "uploader")


async def test_an_upload_lease_holds_until_it_lapses_and_only_its_holder_releases(
    backend: Backend,
) -> None:
    await backend.uploads.create("u-1", REPO, {"part": 1})
    assert await backend.uploads.claim("u-1", "first", LEASE) is not None

    assert await backend.uploads.claim("u-1", "second", LEASE) is None
    assert not await backend.uploads.release("u-1", "second", offset=99)
    await backend.uploads.renew("u-1", "second", dt.timedelta(hours=1))
    await asyncio.sleep(LEASE.total_seconds() + 0.2)

    taken = await backend.uploads.claim("u-1", "second", LEASE)
    assert taken is not None
    assert (taken.offset, taken.storage) == (0, {"part": 1})
    assert not await backend.uploads.release("u-1", "first", offset=7)
    assert await backend.uploads.release("u-1", "second", offset=12, storage={"part": 2})
    upload = await backend.uploads.get("u-1")
    assert upload is not None
    assert (upload.offset, upload.storage) == (12, {"part": 2})
    assert await backend.uploads.claim("u-1", "third", LEASE) is not None


async def test_a_renewed_lease_keeps_the_upload(backend: Backend) -> None:
    await backend.uploads.create("u-2", REPO, {})
    await backend.uploads.claim("u-2", "first", LEASE)

    await backend.uploads.renew("u-2", "first", dt.timedelta(hours=1))
    await asyncio.sleep(LEASE.total_seconds() + 0.2)

    assert await backend.uploads.claim("u-2", "second", LEASE) is None


async def test_an_abandoned_upload_is_claimed_once_and_deleted_only_by_its_claimer(
    backend: Backend,
) -> None:
    await backend.uploads.create("u-3", REPO, {})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)

    claimed = await backend.uploads.claim_abandoned(later, "reaper", LEASE)
    assert claimed is not None and claimed.id == "u-3"
    assert await backend.uploads.claim_abandoned(later, "another reaper", LEASE) is None
    assert await backend.uploads.claim("u-3", "client", LEASE) is None
    assert not await backend.uploads.delete_claimed("u-3", "another reaper")
    assert await backend.uploads.delete_claimed("u-3", "reaper")
    assert await backend.uploads.get("u-3") is None


async def test_a_group_records_its_accepted_pushes_and_nothing_of_the_refused(
    backend: Backend,
) -> None:
    await link(backend, REPO, CONFIG, LAYER)
    accepted, missing_blob = image(LAYER), image(ABSENT)
    missing_child = index(image(LAYER, "never pushed"))
    elsewhere = image(LAYER, "in a repository without links")

    outcomes = await backend.images.commit_pushes(
        [
            push(REPO, accepted, "v1"),
            push(REPO, missing_blob, "v2"),
            push(REPO, missing_child, "all"),
            push(OTHER, elsewhere, "v1"),
        ]
    )

    assert outcomes == [
        None,
        MissingReferences([digest_of(ABSENT)], []),
        MissingReferences([], [digest_of(image(LAYER, "never pushed"))]),
        MissingReferences([digest_of(CONFIG), digest_of(LAYER)], []),
    ]
    assert await backend.images.get_tag(REPO, "v1") == digest_of(accepted)
    assert await backend.images.all_tags(REPO) == ["v1"]
    for content in (missing_blob, missing_child):
        assert await backend.images.get_manifest(REPO, digest_of(content)) is None
    assert await backend.images.get_manifest(OTHER, digest_of(elsewhere)) is None
    assert not await backend.images.repository_exists(OTHER)
    assert len(await backend.event_ids()) == 1


async def test_a_wholly_refused_group_moves_nothing(backend: Backend) -> None:
    await link(backend, REPO, CONFIG, LAYER)
    await backend.images.commit_pushes([push(REPO, image(LAYER), "v1")])
    stamp = await backend.images.tags_stamp(REPO)
    events = await backend.event_ids()

    outcomes = await backend.images.commit_pushes([push(REPO, image(ABSENT), "v1")])

    assert outcomes == [MissingReferences([digest_of(ABSENT)], [])]
    assert await backend.images.get_tag(REPO, "v1") == digest_of(image(LAYER))
    assert await backend.images.tags_stamp(REPO) == stamp
    assert await backend.event_ids() == events


async def test_a_group_is_judged_before_any_of_it_is_recorded_and_tags_move_in_order(
    backend: Backend,
) -> None:
    await link(backend, REPO, CONFIG, LAYER)
    first, second = image(LAYER, "first"), image(LAYER, "second")

    outcomes = await backend.images.commit_pushes(
        [push(REPO, first, "latest"), push(REPO, second, "latest"), push(REPO, index(first), "i")]
    )

    # The index lists a manifest only this same group stores: it was missing when judged.
    assert outcomes == [None, None, MissingReferences([], [digest_of(first)])]
    assert await backend.images.get_tag(REPO, "latest") == digest_of(second)
    assert await backend.images.tags_stamp(REPO) == 1


async def test_a_blob_a_collector_holds_is_neither_reserved_nor_linked(backend: Backend) -> None:
    await link(backend, REPO, LAYER)
    assert await backend.blobs.unlink(REPO, digest_of(LAYER))
    assert await backend.blobs.reserve(digest_of(LAYER), len(LAYER), "late upload")
    await backend.collector_holds(digest_of(LAYER), FAR_FUTURE)

    with pytest.raises(BlobBeingDeleted):
        await backend.blobs.record_link(OTHER, digest_of(LAYER), len(LAYER), "late upload")
    with pytest.raises(BlobBeingDeleted):
        await backend.blobs.reserve(digest_of(LAYER), len(LAYER), "next upload")
    assert not await backend.blobs.link(OTHER, digest_of(LAYER), len(LAYER))
    assert await backend.blobs.link_size(OTHER, digest_of(LAYER)) is None
    blob = await backend.blobs.get(digest_of(LAYER))
    assert blob is not None and blob["links"] == 0


async def test_a_link_needs_a_live_reservation_or_a_stored_blob(backend: Backend) -> None:
    assert not await backend.blobs.reserve(digest_of(LAYER), len(LAYER), "upload")
    assert not await backend.blobs.link(REPO, digest_of(LAYER), len(LAYER))  # not stored yet

    await backend.blobs.release(digest_of(LAYER), "upload")
    with pytest.raises(BlobBeingDeleted):  # its reservation is gone: it may not vouch
        await backend.blobs.record_link(REPO, digest_of(LAYER), len(LAYER), "upload")
    assert await backend.blobs.link_size(REPO, digest_of(LAYER)) is None

    await link(backend, OTHER, LAYER)
    assert await backend.blobs.reserve(digest_of(LAYER), len(LAYER), "again")
    assert await backend.blobs.link(REPO, digest_of(LAYER), len(LAYER))
    assert await backend.blobs.link(REPO, digest_of(LAYER), len(LAYER))  # once counted
    blob = await backend.blobs.get(digest_of(LAYER))
    assert blob is not None
    assert (blob["stored"], blob["links"]) == (True, 2)
    assert await backend.blobs.unlink(REPO, digest_of(LAYER))
    assert not await backend.blobs.unlink(REPO, digest_of(LAYER))


async def test_a_push_into_a_space_that_is_gone_fails_and_lists_nothing(backend: Backend) -> None:
    content = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    with pytest.raises(SpaceMissing):
        await backend.images.commit_pushes([push("spaces-404/app", content, "1")])
    assert not await backend.images.repository_exists("spaces-404/app")
    assert await backend.event_ids() == []


async def test_the_feed_pages_versions_newest_first_in_octopus_order(backend: Backend) -> None:
    """Versions in Octopus order (not the order pushed, not lexical; ``latest`` is a version
    below every number), prereleases only when asked for, a tag that is no version (a number
    beyond 32 bits) left out, and a page continuing after its cursor."""
    await link(backend, REPO, CONFIG, LAYER)
    tags = ["1.10.0", "1.2.0", "1.2.0-deployments-7", "latest", "99999999999", "2.0", "1.9.9"]
    for n, tag in enumerate(tags):
        await backend.images.commit_pushes([push(REPO, image(LAYER, str(n)), tag)])

    async def page(prerelease: bool, before: str | None, limit: int) -> list[str]:
        versions = await backend.feed.newest_versions(
            REPO, include_prerelease=prerelease, before=before, limit=limit
        )
        return [version.tag for version in versions]

    every = ["2.0", "1.10.0", "1.9.9", "1.2.0", "1.2.0-deployments-7", "latest"]
    assert await page(True, None, 10) == every
    assert await page(False, None, 10) == ["2.0", "1.10.0", "1.9.9", "1.2.0", "latest"]
    first = await backend.feed.newest_versions(REPO, include_prerelease=True, before=None, limit=2)
    assert [version.tag for version in first] == ["2.0", "1.10.0"]
    assert await page(True, first[-1].cursor, 2) == ["1.9.9", "1.2.0"]
