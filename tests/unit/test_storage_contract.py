"""The blob storage port's contract, held against the in-memory fake and the filesystem
adapter alike: a unit test of the domain on the fake proves what it would on real storage.
(S3 is held to the same behaviour in tests/integration/test_storage_drivers.py.)"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.storage.filesystem import FilesystemBlobStore
from shared.storage.port import BlobStore, StorageError, UploadState
from tests.support.fakes.storage import InMemoryBlobStore

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True)
class Backend:
    store: BlobStore
    make_unusable: Callable[[], None]  # what a backend that can no longer be written is


@pytest.fixture(params=["in-memory", "filesystem"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "in-memory":
        fake = InMemoryBlobStore()
        result = Backend(fake, lambda: setattr(fake, "usable", False))
    else:
        root = tmp_path / "blobs"
        result = Backend(FilesystemBlobStore(root), lambda: shutil.rmtree(root / "uploads"))
    yield result
    await result.store.close()


@pytest.fixture
def store(backend: Backend) -> BlobStore:
    return backend.store


async def pieces(data: bytes, size: int = 16 * KiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def read(store: BlobStore, digest: str, start: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(digest, start, length)])


async def staged(store: BlobStore, upload_id: str, state: UploadState, size: int) -> bytes:
    return b"".join([chunk async for chunk in store.read_upload(upload_id, state, size)])


async def stage(store: BlobStore, *parts: bytes) -> tuple[str, UploadState, int]:
    """A new upload with ``parts`` appended one after another; its id, state and size."""
    upload_id = uuid.uuid4().hex
    state = await store.begin_upload(upload_id)
    offset = 0
    for part in parts:
        written, state = await store.append_upload(upload_id, state, offset, pieces(part), None)
        assert written == len(part)
        offset += written
    return upload_id, state, offset


async def store_blob(store: BlobStore, data: bytes) -> str:
    upload_id, state, size = await stage(store, data)
    await store.commit_upload(upload_id, state, sha256(data), size)
    return sha256(data)


# Uploads


async def test_parts_appended_in_order_are_staged_and_committed_as_one_blob(
    store: BlobStore,
) -> None:
    parts = [b"first part;", os.urandom(100 * KiB), b"", b"last"]
    data = b"".join(parts)
    upload_id, state, size = await stage(store, *parts)
    assert size == len(data)
    assert await staged(store, upload_id, state, size) == data
    await store.commit_upload(upload_id, state, sha256(data), size)
    location = await store.locate(sha256(data))
    assert location is not None and location.size == len(data)
    assert await read(store, sha256(data), 0, len(data)) == data


async def test_nothing_is_readable_under_the_digest_before_the_commit(store: BlobStore) -> None:
    data = b"not yet a blob"
    upload_id, state, _ = await stage(store, data)
    assert await store.locate(sha256(data)) is None
    await store.abort_upload(upload_id, state)
    assert await store.locate(sha256(data)) is None


async def test_the_hasher_is_fed_every_byte_appended(store: BlobStore) -> None:
    data = os.urandom(3 * MiB + 7)  # more than one batch of writes
    hasher = hashlib.sha256()
    upload_id = uuid.uuid4().hex
    state = await store.begin_upload(upload_id)
    written, state = await store.append_upload(upload_id, state, 0, pieces(data), hasher)
    assert written == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


async def test_an_append_at_an_earlier_offset_discards_the_bytes_past_it(
    store: BlobStore,
) -> None:
    upload_id, state, _ = await stage(store, b"abcdef")
    written, state = await store.append_upload(upload_id, state, 2, pieces(b"XY"), None)
    assert written == 2
    assert await staged(store, upload_id, state, 4) == b"abXY"
    with pytest.raises(StorageError):
        await staged(store, upload_id, state, 6)
    await store.commit_upload(upload_id, state, sha256(b"abXY"), 4)
    assert await read(store, sha256(b"abXY"), 0, 4) == b"abXY"


async def test_a_retry_after_an_append_that_failed_midway_leaves_no_leftovers(
    store: BlobStore,
) -> None:
    first, retry = os.urandom(100 * KiB), os.urandom(200 * KiB)
    upload_id, state, offset = await stage(store, first)

    async def client_goes_away() -> AsyncIterator[bytes]:
        async for chunk in pieces(os.urandom(3 * MiB)):  # past a write batch: some is written
            yield chunk
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.append_upload(upload_id, state, offset, client_goes_away(), None)
    written, state = await store.append_upload(upload_id, state, offset, pieces(retry), None)
    data = first + retry
    await store.commit_upload(upload_id, state, sha256(data), offset + written)
    assert await read(store, sha256(data), 0, len(data)) == data
    location = await store.locate(sha256(data))
    assert location is not None and location.size == len(data)


async def test_a_commit_keeps_only_the_size_it_is_given(store: BlobStore) -> None:
    """Bytes past the size the session counts (a failed write's) never reach the blob."""
    upload_id, state, _ = await stage(store, b"counted", b"+leftover")
    await store.commit_upload(upload_id, state, sha256(b"counted"), 7)
    location = await store.locate(sha256(b"counted"))
    assert location is not None and location.size == 7
    assert await read(store, sha256(b"counted"), 0, 7) == b"counted"


async def test_the_commit_files_the_bytes_under_the_digest_it_is_given(store: BlobStore) -> None:
    """Proving the digest is the registry's part (uploads hash as bytes arrive): storage
    files what it is told to, so a unit test of the registry on the fake must prove it too."""
    claimed = sha256(b"something else")
    upload_id, state, size = await stage(store, b"the bytes sent")
    await store.commit_upload(upload_id, state, claimed, size)
    assert await read(store, claimed, 0, size) == b"the bytes sent"


async def test_a_committed_upload_is_gone_from_staging(store: BlobStore) -> None:
    upload_id, state, size = await stage(store, b"done")
    await store.commit_upload(upload_id, state, sha256(b"done"), size)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    assert upload_id not in await store.stale_staging(later)
    with pytest.raises(StorageError):
        await store.append_upload(upload_id, state, size, pieces(b"more"), None)


async def test_an_aborted_upload_cannot_be_appended_to(store: BlobStore) -> None:
    upload_id, state, size = await stage(store, b"dropped")
    await store.abort_upload(upload_id, state)
    with pytest.raises(StorageError):
        await store.append_upload(upload_id, state, size, pieces(b"more"), None)
    await store.abort_upload(upload_id, state)  # twice is harmless


async def test_uploads_in_progress_do_not_mix(store: BlobStore) -> None:
    one, one_state, _ = await stage(store, b"one-")
    two, two_state, _ = await stage(store, b"two-")
    _, one_state = await store.append_upload(one, one_state, 4, pieces(b"1"), None)
    _, two_state = await store.append_upload(two, two_state, 4, pieces(b"22"), None)
    assert await staged(store, one, one_state, 5) == b"one-1"
    assert await staged(store, two, two_state, 6) == b"two-22"


async def test_an_empty_blob_commits_and_reads_as_nothing(store: BlobStore) -> None:
    digest = await store_blob(store, b"")
    location = await store.locate(digest)
    assert location is not None and location.size == 0
    assert await read(store, digest, 0, 0) == b""


async def test_committing_a_stored_digest_again_leaves_it_readable(store: BlobStore) -> None:
    data = os.urandom(10 * KiB)
    await store_blob(store, data)
    await store_blob(store, data)
    assert await read(store, sha256(data), 0, len(data)) == data


# Reads


@pytest.mark.parametrize(
    ("start", "length"),
    [(0, 300 * KiB), (0, 1), (1, 100), (70 * KiB, 130 * KiB), (300 * KiB - 5, 5), (300 * KiB, 0)],
)
async def test_any_range_of_a_blob_reads_back_exactly(
    store: BlobStore, start: int, length: int
) -> None:
    data = os.urandom(300 * KiB)
    digest = await store_blob(store, data)
    assert await read(store, digest, start, length) == data[start : start + length]


async def test_a_range_past_the_end_of_the_blob_is_a_storage_error(store: BlobStore) -> None:
    digest = await store_blob(store, b"short blob")
    received: list[bytes] = []
    with pytest.raises(StorageError):
        async for chunk in store.read(digest, 6, 10):
            received.append(chunk)
    assert b"".join(received) == b"blob"  # what there was, then the error


async def test_a_blob_storage_does_not_hold_cannot_be_read(store: BlobStore) -> None:
    """The adapters differ in the error (the filesystem's FileNotFoundError, S3's and the
    fake's StorageError); what they share is that the read fails rather than yield nothing."""
    with pytest.raises((StorageError, FileNotFoundError)):
        await read(store, sha256(b"never stored"), 0, 0)


async def test_a_reader_may_stop_early_and_the_blob_stays_readable(store: BlobStore) -> None:
    data = os.urandom(3 * MiB)
    digest = await store_blob(store, data)
    chunks = store.read(digest, 0, len(data))
    first = await anext(chunks)
    await chunks.aclose()
    assert data.startswith(first) and 0 < len(first) < len(data)
    assert await read(store, digest, 0, len(data)) == data


async def test_a_blob_has_no_presigned_url_on_these_backends(store: BlobStore) -> None:
    digest = await store_blob(store, b"local")
    assert await store.presigned_url(digest) is None


# Deletes and staging left behind


async def test_deleted_blobs_are_gone_and_missing_ones_count_as_deleted(store: BlobStore) -> None:
    kept = await store_blob(store, b"kept")
    deleted = [await store_blob(store, f"blob {n}".encode()) for n in range(5)]
    assert await store.delete_blobs([*deleted, sha256(b"never stored")]) == set()
    for digest in deleted:
        assert await store.locate(digest) is None
    assert await store.locate(kept) is not None
    assert await store.delete_blobs(deleted) == set()


async def test_staging_is_stale_by_the_time_of_its_last_write(store: BlobStore) -> None:
    written, _, _ = await stage(store, b"half an upload")
    begun, _, _ = await stage(store)  # begun, nothing appended yet
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    after = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    assert await store.stale_staging(before) == []
    assert sorted(await store.stale_staging(after)) == sorted([written, begun])
    await store.discard_staging(written)
    await store.discard_staging("no-such-upload")
    assert await store.stale_staging(after) == [begun]


# Readiness


async def test_a_usable_backend_passes_the_check_and_an_unwritable_one_fails_it(
    backend: Backend,
) -> None:
    await backend.store.check()
    backend.make_unusable()
    with pytest.raises(StorageError):
        await backend.store.check()
