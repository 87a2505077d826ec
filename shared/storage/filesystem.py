"""Blobs as files: ``blobs/<alg>/<2 hex>/<hex>``, uploads staged in ``uploads/<id>``."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from shared.storage.port import BlobLocation, BlobStore, StorageError, UploadState, pipelined_writes

READ_CHUNK_BYTES = 1024 * 1024


class FilesystemBlobStore(BlobStore):
    def __init__(self, root: Path, io_threads: int = 32) -> None:
        super().__init__(io_threads)
        self.root = root
        (root / "blobs").mkdir(parents=True, exist_ok=True)
        (root / "uploads").mkdir(parents=True, exist_ok=True)

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_ = digest.split(":", 1)
        return self.root / "blobs" / algorithm / hex_[:2] / hex_

    def _upload_path(self, upload_id: str) -> Path:
        return self.root / "uploads" / upload_id

    async def check(self) -> None:
        probe = self.root / "uploads" / ".probe"
        try:
            await self.run(probe.write_bytes, b"ok")
        except OSError as exc:
            raise StorageError(f"filesystem storage not writable: {exc}") from exc

    async def begin_upload(self, upload_id: str) -> UploadState:
        await self.run(self._upload_path(upload_id).touch)
        return {}

    async def append_upload(
        self,
        upload_id: str,
        state: UploadState,
        offset: int,
        chunks: AsyncIterator[bytes],
        hasher: hashlib._Hash | None,
    ) -> tuple[int, UploadState]:
        path = self._upload_path(upload_id)
        try:
            # Unbuffered: writes go straight to the descriptor with writev(2).
            handle: BinaryIO = await self.run(open, path, "r+b", 0)
        except FileNotFoundError as exc:
            raise StorageError(f"upload data missing: {upload_id}") from exc
        try:
            await self.run(handle.truncate, offset)
            await self.run(handle.seek, offset)

            written = await pipelined_writes(
                chunks, lambda parts: _write_all(handle, parts), hasher, self
            )
        finally:
            await self.run(handle.close)
        return written, state

    async def read_upload(
        self, upload_id: str, state: UploadState, size: int
    ) -> AsyncIterator[bytes]:
        async for chunk in self._read_file(self._upload_path(upload_id), 0, size):
            yield chunk

    async def commit_upload(
        self, upload_id: str, state: UploadState, digest: str, size: int
    ) -> None:
        source, target = self._upload_path(upload_id), self.blob_path(digest)

        def commit() -> None:
            # Bytes past `size` may remain from a write that failed after its last chunk.
            os.truncate(source, size)
            target.parent.mkdir(parents=True, exist_ok=True)
            # The rename is what makes the blob appear, whole or not at all; like Distribution
            # there is no fsync: a killed process loses nothing the page cache holds.
            source.replace(target)

        await self.run(commit)

    async def abort_upload(self, upload_id: str, state: UploadState) -> None:
        await self.run(lambda: self._upload_path(upload_id).unlink(missing_ok=True))

    async def locate(self, digest: str) -> BlobLocation | None:
        path = self.blob_path(digest)
        try:
            stat = await self.run(path.stat)
        except FileNotFoundError:
            return None
        return BlobLocation(size=stat.st_size, path=path)

    def read(self, digest: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        return self._read_file(self.blob_path(digest), start, length)

    async def _read_file(self, path: Path, start: int, length: int) -> AsyncGenerator[bytes, None]:
        handle: BinaryIO = await self.run(open, path, "rb")
        try:
            await self.run(handle.seek, start)
            remaining = length
            while remaining > 0:
                chunk: bytes = await self.run(handle.read, min(READ_CHUNK_BYTES, remaining))
                if not chunk:
                    raise StorageError(f"{path.name}: file shorter than expected")
                remaining -= len(chunk)
                yield chunk
        finally:
            await self.run(handle.close)

    async def delete_blobs(self, digests: list[str]) -> set[str]:
        def delete() -> set[str]:
            failed = set()
            for digest in digests:
                try:
                    self.blob_path(digest).unlink(missing_ok=True)
                except OSError:
                    failed.add(digest)
            return failed

        failed: set[str] = await self.run_delete(delete)
        return failed

    async def stale_staging(self, before: dt.datetime) -> list[str]:
        def scan() -> list[str]:
            limit = before.timestamp()
            with os.scandir(self.root / "uploads") as entries:
                return [
                    entry.name
                    for entry in entries
                    if not entry.name.startswith(".") and entry.stat().st_mtime < limit
                ]

        stale: list[str] = await self.run(scan)
        return stale

    async def discard_staging(self, upload_id: str) -> None:
        await self.abort_upload(upload_id, {})


def _write_all(handle: BinaryIO, parts: list[bytes]) -> None:
    """Write every part with as few system calls as the kernel allows (writev(2))."""
    views = [memoryview(part) for part in parts]
    while views:
        written = os.writev(handle.fileno(), views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]
