"""Blob storage in memory, with the filesystem adapter's semantics.

Like ``FilesystemBlobStore``: an upload is staged bytes under its id (the driver state stays
``{}``); an append first cuts the staging back to its offset; a commit cuts it to the size
and moves it under the digest, replacing what was there, without checking the digest (the
registry proves it before committing); nothing is readable under a digest before. A blob has
no local path, so readers go through ``read`` as they do with S3. Where the adapters answer
a missing upload or blob differently (``FileNotFoundError`` from the filesystem, a
``StorageError`` from S3), the fake raises ``StorageError``, the port's own error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from shared.storage.port import BlobLocation, BlobStore, StorageError, UploadState, pipelined_writes

READ_CHUNK_BYTES = 64 * 1024


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class _Staging:
    data: bytearray = field(default_factory=bytearray)
    written_at: dt.datetime = field(default_factory=_now)


class InMemoryBlobStore(BlobStore):
    def __init__(self) -> None:
        super().__init__(io_threads=2)
        self.blobs: dict[str, bytes] = {}
        self.usable = True  # False: ``check`` fails, as with a backend that cannot be written
        self._staging: dict[str, _Staging] = {}

    async def check(self) -> None:
        if not self.usable:
            raise StorageError("in-memory storage marked unusable")

    async def begin_upload(self, upload_id: str) -> UploadState:
        self._staging[upload_id] = _Staging()
        return {}

    async def append_upload(
        self,
        upload_id: str,
        state: UploadState,
        offset: int,
        chunks: AsyncIterator[bytes],
        hasher: hashlib._Hash | None,
    ) -> tuple[int, UploadState]:
        staging = self._staged(upload_id)
        _truncate(staging.data, offset)
        staging.written_at = _now()

        def write(parts: list[bytes]) -> None:
            for part in parts:
                staging.data += part

        try:
            written = await pipelined_writes(chunks, write, hasher, self)
        finally:
            staging.written_at = _now()
        return written, state

    async def read_upload(
        self, upload_id: str, state: UploadState, size: int
    ) -> AsyncIterator[bytes]:
        async for chunk in _chunks(self._staged(upload_id).data, 0, size, upload_id):
            yield chunk

    async def commit_upload(
        self, upload_id: str, state: UploadState, digest: str, size: int
    ) -> None:
        staging = self._staged(upload_id)
        del self._staging[upload_id]
        _truncate(staging.data, size)
        self.blobs[digest] = bytes(staging.data)

    async def abort_upload(self, upload_id: str, state: UploadState) -> None:
        self._staging.pop(upload_id, None)

    async def locate(self, digest: str) -> BlobLocation | None:
        blob = self.blobs.get(digest)
        return None if blob is None else BlobLocation(size=len(blob))

    async def read(self, digest: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        blob = self.blobs.get(digest)
        if blob is None:
            raise StorageError(f"blob {digest} not stored")
        async for chunk in _chunks(blob, start, length, digest):
            yield chunk

    async def delete_blobs(self, digests: list[str]) -> set[str]:
        for digest in digests:
            self.blobs.pop(digest, None)
        return set()

    async def stale_staging(self, before: dt.datetime) -> list[str]:
        return [upload_id for upload_id, s in self._staging.items() if s.written_at < before]

    async def discard_staging(self, upload_id: str) -> None:
        self._staging.pop(upload_id, None)

    def _staged(self, upload_id: str) -> _Staging:
        staging = self._staging.get(upload_id)
        if staging is None:
            raise StorageError(f"upload data missing: {upload_id}")
        return staging


def _truncate(data: bytearray, size: int) -> None:
    """Cut ``data`` to ``size`` bytes, or pad it with zeros to that size, as ftruncate(2)."""
    if len(data) > size:
        del data[size:]
    else:
        data += bytes(size - len(data))


async def _chunks(
    data: bytes | bytearray, start: int, length: int, name: str
) -> AsyncGenerator[bytes, None]:
    """``length`` bytes from ``start``, a chunk at a time; too few bytes is a StorageError,
    raised after the bytes there are, as the filesystem adapter finds a file too short."""
    end = start + length
    for offset in range(start, end, READ_CHUNK_BYTES):
        chunk = bytes(data[offset : min(offset + READ_CHUNK_BYTES, end)])
        if not chunk:
            break
        yield chunk
    if length and len(data) < end:
        raise StorageError(f"{name}: shorter than expected")
