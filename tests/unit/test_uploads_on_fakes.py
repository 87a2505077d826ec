"""Blob uploads (services/registry/uploads.py) over the in-memory metadata and storage: the
distribution spec's chunked and monolithic pushes, what each refusal leaves behind (nothing
linked, the session where it was), sessions continued by another instance, the write lease,
and uploads that meet garbage collection."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable

import pytest

from services.registry import uploads as uploads_module
from services.registry.uploads import LEASE, Uploads
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.names import RepositoryName
from shared.oci.ranges import ByteRange
from shared.storage.port import UploadState
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.metadata import InMemoryMetadata
from tests.support.fakes.storage import InMemoryBlobStore

REPO = RepositoryName.parse("spaces-1/harbour")
HEAD, TAIL = b"first half of a layer, ", b"and its second half"
WHOLE = HEAD + TAIL
DIGEST = Digest.of(WHOLE)
FAR_FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)


async def body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def span(start: int, data: bytes) -> ByteRange:
    return ByteRange(start, start + len(data) - 1)


class Site:
    """One deployment: metadata and storage shared by every registry instance on them."""

    def __init__(self, store: InMemoryBlobStore | None = None) -> None:
        self.clock = FakeClock()
        self.metadata = InMemoryMetadata(self.clock)
        self.metadata.add_space(REPO.space)
        self.store = store or InMemoryBlobStore()

    def instance(self) -> Uploads:
        return Uploads(self.metadata, self.store)

    async def linked(self, digest: Digest = DIGEST) -> int | None:
        return await self.metadata.blobs.link_size(REPO.full, str(digest))

    async def staged(self) -> list[str]:
        return await self.store.stale_staging(FAR_FUTURE)


async def test_a_chunked_upload_in_order_links_the_blob_and_ends_the_session() -> None:
    site = Site()
    uploads = site.instance()
    upload = await uploads.start(REPO)

    assert await uploads.append(REPO, upload.id, body(HEAD), span(0, HEAD), len(HEAD)) == len(HEAD)
    assert (await uploads.status(REPO, upload.id)).offset == len(HEAD)
    size = await uploads.finish(REPO, upload.id, DIGEST, body(TAIL), span(len(HEAD), TAIL), None)

    assert size == len(WHOLE)
    assert await site.linked() == len(WHOLE)
    assert site.store.blobs[str(DIGEST)] == WHOLE
    blob = await site.metadata.blobs.get(str(DIGEST))
    assert blob is not None
    assert (blob["stored"], blob["links"], blob["writers"]) == (True, 1, [])
    assert await site.metadata.images.repository_exists(REPO.full)
    with pytest.raises(errors.BlobUploadUnknown):
        await uploads.status(REPO, upload.id)
    assert await site.staged() == []


@pytest.mark.parametrize("start", [0, len(HEAD) - 1, len(HEAD) + 1])
async def test_a_chunk_at_another_offset_is_refused_and_changes_nothing(start: int) -> None:
    site = Site()
    uploads = site.instance()
    upload = await uploads.start(REPO)
    await uploads.append(REPO, upload.id, body(HEAD), span(0, HEAD), None)

    with pytest.raises(errors.RangeInvalid) as refused:
        await uploads.append(REPO, upload.id, body(TAIL), span(start, TAIL), None)

    assert refused.value.status == 416
    assert refused.value.detail == {"expected_start": len(HEAD), "got": start}
    assert (await uploads.status(REPO, upload.id)).offset == len(HEAD)
    # The session is free again and its bytes are intact: the right chunk completes it.
    await uploads.finish(REPO, upload.id, DIGEST, body(TAIL), span(len(HEAD), TAIL), None)
    assert await site.linked() == len(WHOLE)


async def test_a_chunk_shorter_than_its_range_is_refused_and_does_not_move_the_offset() -> None:
    site = Site()
    uploads = site.instance()
    upload = await uploads.start(REPO)

    with pytest.raises(errors.SizeInvalid):
        await uploads.append(REPO, upload.id, body(HEAD[:-3]), span(0, HEAD), None)

    assert (await uploads.status(REPO, upload.id)).offset == 0


async def test_a_digest_that_does_not_match_links_nothing_and_ends_the_session() -> None:
    site = Site()
    uploads = site.instance()
    upload = await uploads.start(REPO)
    await uploads.append(REPO, upload.id, body(HEAD), None, None)
    wrong = Digest.of(b"something else")

    with pytest.raises(errors.DigestInvalid) as refused:
        await uploads.finish(REPO, upload.id, wrong, body(TAIL), None)

    assert refused.value.detail == {"expected": str(wrong), "computed": str(DIGEST)}
    assert await site.linked(wrong) is None
    assert await site.linked(DIGEST) is None
    assert await site.metadata.blobs.get(str(wrong)) is None
    assert site.store.blobs == {}
    assert await site.staged() == []
    with pytest.raises(errors.BlobUploadUnknown):
        await uploads.status(REPO, upload.id)


async def test_a_monolithic_upload_links_the_blob_without_a_session() -> None:
    site = Site()

    assert await site.instance().put_whole(REPO, DIGEST, body(HEAD, TAIL), len(WHOLE)) == len(WHOLE)

    assert await site.linked() == len(WHOLE)
    assert site.store.blobs[str(DIGEST)] == WHOLE
    assert site.metadata.data.uploads == {}


@pytest.mark.parametrize(
    ("digest", "length", "error"),
    [
        (Digest.of(b"not these bytes"), len(WHOLE), errors.DigestInvalid),
        (DIGEST, len(WHOLE) + 1, errors.SizeInvalid),
    ],
)
async def test_a_monolithic_upload_that_does_not_match_leaves_nothing(
    digest: Digest, length: int, error: type[errors.RegistryError]
) -> None:
    site = Site()

    with pytest.raises(error):
        await site.instance().put_whole(REPO, digest, body(WHOLE), length)

    assert await site.linked(digest) is None
    assert site.store.blobs == {}
    assert await site.staged() == []
    assert site.metadata.data.blobs == {}


async def test_another_instance_continues_a_session_and_proves_the_digest_from_storage() -> None:
    site = Site()
    first, second = site.instance(), site.instance()
    upload = await first.start(REPO)
    await first.append(REPO, upload.id, body(HEAD), span(0, HEAD), None)

    await second.append(REPO, upload.id, body(TAIL), span(len(HEAD), TAIL), None)
    # The first instance's running hash covers only the head now: it must not be trusted.
    size = await first.finish(REPO, upload.id, DIGEST, None)

    assert size == len(WHOLE)
    assert await site.linked() == len(WHOLE)


async def test_another_instance_refuses_a_wrong_digest_of_bytes_it_never_saw() -> None:
    site = Site()
    first, second = site.instance(), site.instance()
    upload = await first.start(REPO)
    await first.append(REPO, upload.id, body(WHOLE), None, None)

    with pytest.raises(errors.DigestInvalid):
        await second.finish(REPO, upload.id, Digest.of(HEAD), None)

    assert await site.linked(Digest.of(HEAD)) is None
    assert site.store.blobs == {}


async def test_a_cancelled_session_is_gone_with_its_bytes() -> None:
    site = Site()
    uploads = site.instance()
    upload = await uploads.start(REPO)
    await uploads.append(REPO, upload.id, body(HEAD), None, None)

    await uploads.cancel(REPO, upload.id)

    with pytest.raises(errors.BlobUploadUnknown):
        await uploads.status(REPO, upload.id)
    with pytest.raises(errors.BlobUploadUnknown):
        await uploads.append(REPO, upload.id, body(TAIL), None, None)
    assert await site.staged() == []
    assert await site.linked() is None


async def test_a_session_is_known_only_in_its_own_repository() -> None:
    site = Site()
    uploads = site.instance()
    upload = await uploads.start(REPO)
    elsewhere = RepositoryName.parse("spaces-1/other")

    with pytest.raises(errors.BlobUploadUnknown):
        await uploads.append(elsewhere, upload.id, body(HEAD), None, None)
    with pytest.raises(errors.BlobUploadUnknown):
        await uploads.finish(elsewhere, upload.id, DIGEST, body(WHOLE))

    # Neither attempt kept the session's lock.
    await uploads.finish(REPO, upload.id, DIGEST, body(WHOLE))
    assert await site.linked() == len(WHOLE)


class Stalled:
    """A request body that sends its first part and then waits until let go."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.first, self.rest = first, rest
        self.started, self.go = asyncio.Event(), asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        self.started.set()
        await self.go.wait()
        yield self.rest


async def test_a_second_write_is_refused_while_the_first_holds_the_lease() -> None:
    site = Site()
    first, second = site.instance(), site.instance()
    upload = await first.start(REPO)
    stalled = Stalled(HEAD, TAIL)
    writing = asyncio.create_task(first.append(REPO, upload.id, aiter(stalled), None, None))
    await stalled.started.wait()

    with pytest.raises(errors.RangeInvalid) as refused:
        await second.append(REPO, upload.id, body(b"intruder"), None, None)

    assert refused.value.detail == {"offset": 0}
    stalled.go.set()
    assert await writing == len(WHOLE)
    assert (await second.status(REPO, upload.id)).offset == len(WHOLE)


async def test_a_lapsed_lease_lets_the_next_write_take_the_session_over() -> None:
    site = Site()
    first, second = site.instance(), site.instance()
    upload = await first.start(REPO)
    stalled = Stalled(b"from a writer that hangs", b"")
    hung = asyncio.create_task(first.append(REPO, upload.id, aiter(stalled), None, None))
    await stalled.started.wait()
    site.clock.advance(LEASE + dt.timedelta(seconds=1))

    await second.append(REPO, upload.id, body(WHOLE), span(0, WHOLE), None)

    # The hung writer's end no longer moves the session: its lock was taken over.
    stalled.go.set()
    await hung
    assert (await second.status(REPO, upload.id)).offset == len(WHOLE)
    await second.finish(REPO, upload.id, DIGEST, None)
    assert await site.linked() == len(WHOLE)


def collector_holds_stored_blob(site: Site) -> None:
    """The blob is stored and unlinked, and a collector claimed it for deletion."""
    site.store.blobs[str(DIGEST)] = WHOLE
    site.metadata.data.blobs[str(DIGEST)] = {
        "_id": str(DIGEST),
        "size": len(WHOLE),
        "stored": True,
        "links": 0,
        "writers": [],
    }
    site.metadata.blobs.collector_holds(str(DIGEST), FAR_FUTURE)


async def test_an_upload_waits_for_a_collection_under_way_and_stores_the_blob_again() -> None:
    site = Site()
    collector_holds_stored_blob(site)

    async def collector_finishes() -> None:
        await asyncio.sleep(0.2)
        await site.store.delete_blobs([str(DIGEST)])
        site.metadata.blobs.collector_forgets(str(DIGEST))

    finishing = asyncio.create_task(collector_finishes())
    await site.instance().put_whole(REPO, DIGEST, body(WHOLE), None)
    await finishing

    assert site.store.blobs[str(DIGEST)] == WHOLE
    assert await site.linked() == len(WHOLE)


async def test_an_upload_gives_up_on_a_collection_that_does_not_end_and_keeps_its_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(uploads_module, "COLLECTION_WAIT_SECONDS", 0.2)
    site = Site()
    collector_holds_stored_blob(site)
    uploads = site.instance()
    upload = await uploads.start(REPO)
    await uploads.append(REPO, upload.id, body(WHOLE), None, None)

    with pytest.raises(errors.Unavailable) as refused:
        await uploads.finish(REPO, upload.id, DIGEST, None)

    assert refused.value.status == 503
    assert await site.linked() is None
    # The session stays where it was, free, for the client's retry once the blob is gone.
    assert (await uploads.status(REPO, upload.id)).offset == len(WHOLE)
    site.metadata.blobs.collector_forgets(str(DIGEST))
    await site.store.delete_blobs([str(DIGEST)])
    await uploads.finish(REPO, upload.id, DIGEST, None)
    assert await site.linked() == len(WHOLE)
    assert site.store.blobs[str(DIGEST)] == WHOLE


class CollectedDuringCommit(InMemoryBlobStore):
    """Storage during whose commit of a blob the upload's reservation lapses and a collector
    claims the blob: what happens to an upload that stalls past its lease."""

    def __init__(self, collect: Callable[[str], None]) -> None:
        super().__init__()
        self.collect = collect

    async def commit_upload(
        self, upload_id: str, state: UploadState, digest: str, size: int
    ) -> None:
        await super().commit_upload(upload_id, state, digest, size)
        self.collect(digest)


async def test_an_upload_whose_reservation_lapsed_is_told_to_upload_again_and_links_nothing() -> (
    None
):
    site = Site(
        CollectedDuringCommit(
            lambda digest: site.metadata.blobs.collector_holds(digest, FAR_FUTURE)
        )
    )

    with pytest.raises(errors.BlobUnknown) as refused:
        await site.instance().put_whole(REPO, DIGEST, body(WHOLE), None)

    assert refused.value.detail == {"digest": str(DIGEST)}
    assert await site.linked() is None
    assert site.metadata.data.blob_links == {}
    blob = await site.metadata.blobs.get(str(DIGEST))
    assert blob is not None
    assert (blob["stored"], blob["links"], blob["writers"]) == (False, 0, [])
