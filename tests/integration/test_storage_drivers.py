"""One suite for both blob store drivers: the filesystem and S3 (moto's server)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.settings import S3Settings
from shared.storage.filesystem import FilesystemBlobStore
from shared.storage.port import BlobStore
from shared.storage.s3 import MIN_PART_BYTES, S3BlobStore

MiB = 1024 * 1024


@pytest.fixture(params=["filesystem", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, s3_endpoint: str
) -> AsyncIterator[BlobStore]:
    blob_store: BlobStore
    if request.param == "filesystem":
        blob_store = FilesystemBlobStore(tmp_path / "blobs")
    else:
        s3 = S3BlobStore(
            S3Settings(
                endpoint=s3_endpoint,
                access_key="testing",
                secret_key="testing",
                bucket=f"drv-{uuid.uuid4().hex[:10]}",
                secure=False,
                region="us-east-1",
                redirect=False,
            )
        )
        await s3.ensure_bucket()
        blob_store = s3
    yield blob_store
    await blob_store.close()


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def read_all(store: BlobStore, blob: str, start: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(blob, start, length)])


async def upload(store: BlobStore, pieces: list[bytes]) -> tuple[str, dict[str, object], int]:
    upload_id = str(uuid.uuid4())
    state = await store.begin_upload(upload_id)
    offset = 0
    for piece in pieces:
        written, state = await store.append_upload(upload_id, state, offset, chunks_of(piece), None)
        assert written == len(piece)
        offset += written
    return upload_id, state, offset


async def test_committed_blob_reads_back_whole_and_in_ranges(store: BlobStore) -> None:
    """A committed blob is located with its size and read back whole or from any offset."""
    data = os.urandom(3 * MiB + 17)
    upload_id, state, size = await upload(store, [data])
    await store.commit_upload(upload_id, state, digest(data), size)

    location = await store.locate(digest(data))
    assert location is not None and location.size == len(data)
    assert await read_all(store, digest(data), 0, len(data)) == data
    assert await read_all(store, digest(data), 1000, 5000) == data[1000:6000]


@pytest.mark.parametrize(
    "sizes",
    [
        [1, 1, 1],  # tiny chunks, each merged into the last segment
        [MiB, 2 * MiB, 3 * MiB, 7],  # under the S3 part minimum until the third chunk
        [6 * MiB, 100, 6 * MiB],  # a small chunk between large ones
        [MIN_PART_BYTES - 1, 1, 9 * MiB + 3],  # exactly reaching the part minimum
    ],
)
async def test_chunks_of_any_size_compose_into_the_blob(store: BlobStore, sizes: list[int]) -> None:
    """Appends of arbitrary sizes commit to exactly the concatenated bytes."""
    pieces = [os.urandom(size) for size in sizes]
    data = b"".join(pieces)
    upload_id, state, size = await upload(store, pieces)
    assert size == len(data)
    staged = b"".join([c async for c in store.read_upload(upload_id, state, size)])
    assert staged == data
    await store.commit_upload(upload_id, state, digest(data), size)
    assert await read_all(store, digest(data), 0, len(data)) == data


async def test_nothing_is_readable_before_commit(store: BlobStore) -> None:
    """Staged bytes are invisible under the digest until the upload is committed."""
    data = os.urandom(1000)
    upload_id, state, _ = await upload(store, [data])
    assert await store.locate(digest(data)) is None
    await store.abort_upload(upload_id, state)
    assert await store.locate(digest(data)) is None


async def test_hasher_sees_every_byte_written(store: BlobStore) -> None:
    """The hasher given to an append is fed exactly the bytes appended."""
    data = os.urandom(6 * MiB + 5)
    hasher = hashlib.sha256()
    upload_id = str(uuid.uuid4())
    state = await store.begin_upload(upload_id)
    written, state = await store.append_upload(upload_id, state, 0, chunks_of(data), hasher)
    assert written == len(data)
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()
    await store.abort_upload(upload_id, state)


async def test_rewrite_after_failed_append_discards_the_leftovers(store: BlobStore) -> None:
    """An append that failed midway leaves nothing behind once the next append succeeds."""
    first, retry = os.urandom(2 * MiB), os.urandom(3 * MiB)
    upload_id, state, offset = await upload(store, [first])

    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(MiB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.append_upload(upload_id, state, offset, broken(), None)
    written, state = await store.append_upload(upload_id, state, offset, chunks_of(retry), None)
    data = first + retry
    await store.commit_upload(upload_id, state, digest(data), offset + written)
    assert await read_all(store, digest(data), 0, len(data)) == data


async def test_empty_blob_commits(store: BlobStore) -> None:
    """A zero-byte blob can be uploaded and read."""
    upload_id, state, size = await upload(store, [])
    await store.commit_upload(upload_id, state, digest(b""), size)
    location = await store.locate(digest(b""))
    assert location is not None and location.size == 0


async def test_deletes_are_batched_and_missing_blobs_count_as_deleted(store: BlobStore) -> None:
    """Many blobs go in one call; none can be located after; deleting again is harmless."""
    blobs = [os.urandom(100) for _ in range(30)]
    for data in blobs:
        upload_id, state, size = await upload(store, [data])
        await store.commit_upload(upload_id, state, digest(data), size)
    digests = [digest(data) for data in blobs]
    assert await store.delete_blobs(digests) == set()
    for d in digests:
        assert await store.locate(d) is None
    assert await store.delete_blobs(digests) == set()


async def test_stale_staging_is_found_and_discarded(store: BlobStore) -> None:
    """Staged bytes no session tracks (a crash mid-upload) are found by age and dropped."""
    upload_id, _state, _size = await upload(store, [b"half", b" an upload"])
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert upload_id in await store.stale_staging(later)
    assert upload_id not in await store.stale_staging(earlier)
    await store.discard_staging(upload_id)
    assert upload_id not in await store.stale_staging(later)


async def test_check_passes_on_a_usable_backend(store: BlobStore) -> None:
    """A reachable, writable backend passes the readiness check."""
    await store.check()
