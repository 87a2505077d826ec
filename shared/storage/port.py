"""The blob storage port.

Blobs are stored once per digest. Uploads are staged under an upload id until the registry
has proven their digest, then committed to the digest's place; nothing is readable before.
The driver's upload state (``UploadState``) is a small JSON-able dict that the registry keeps
in the upload session's metadata, so any instance can continue an upload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

UploadState = dict[str, Any]

# Bytes gathered from the network before one write is handed to a worker thread.
WRITE_BUFFER_BYTES = 2 * 1024 * 1024


class StorageError(Exception):
    """The storage backend failed or could not be reached; ``code`` is the backend's own
    error code when it gave one (e.g. S3's ``NoSuchKey``)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a committed blob can be read from: a local file, or only through ``read``."""

    size: int
    path: Path | None = None


class BlobStore(ABC):
    """What the registry and the reaper need from blob storage."""

    def __init__(self, io_threads: int = 32) -> None:
        self._executor = ThreadPoolExecutor(io_threads, thread_name_prefix="storage")
        # Garbage collection deletes on threads of their own: behind downloads that hold every
        # I/O thread, a delete could start after its claim lapsed (shared/garbage.py).
        self._deletes = ThreadPoolExecutor(2, thread_name_prefix="storage-delete")

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._deletes.shutdown(wait=False, cancel_futures=True)

    async def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run blocking storage I/O on the store's own threads."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    async def run_delete(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking delete for garbage collection, never queued behind other I/O."""
        return await asyncio.get_running_loop().run_in_executor(self._deletes, func, *args)

    @abstractmethod
    async def check(self) -> None:
        """Raise StorageError when the backend is not usable."""

    @abstractmethod
    async def begin_upload(self, upload_id: str) -> UploadState: ...

    @abstractmethod
    async def append_upload(
        self,
        upload_id: str,
        state: UploadState,
        offset: int,
        chunks: AsyncIterator[bytes],
        hasher: hashlib._Hash | None,
    ) -> tuple[int, UploadState]:
        """Write ``chunks`` at ``offset``; return the bytes written and the new state.

        ``hasher`` (when given) is updated with every byte, on the storage threads. Bytes past
        ``offset`` left by an earlier failed write are discarded.
        """

    @abstractmethod
    def read_upload(self, upload_id: str, state: UploadState, size: int) -> AsyncIterator[bytes]:
        """The ``size`` bytes staged so far, in order."""

    @abstractmethod
    async def commit_upload(
        self, upload_id: str, state: UploadState, digest: str, size: int
    ) -> None:
        """Make the staged bytes the blob ``digest`` and drop the staging data."""

    @abstractmethod
    async def abort_upload(self, upload_id: str, state: UploadState) -> None: ...

    @abstractmethod
    async def locate(self, digest: str) -> BlobLocation | None:
        """The committed blob, or None when storage does not hold it."""

    @abstractmethod
    def read(self, digest: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        """``length`` bytes of the blob from ``start``. A thread is held only while a chunk is
        read, never between chunks; a reader that stops early closes the generator
        (``aclose``), which releases the driver's file or connection."""

    @abstractmethod
    async def delete_blobs(self, digests: list[str]) -> set[str]:
        """Delete these blobs (in as few requests as the backend allows); the digests that
        could not be deleted. A blob that is not there counts as deleted."""

    @abstractmethod
    async def stale_staging(self, before: dt.datetime) -> list[str]:
        """Upload ids whose staged bytes were last written before ``before``."""

    @abstractmethod
    async def discard_staging(self, upload_id: str) -> None:
        """Drop whatever is staged for the upload, without its state."""

    async def presigned_url(self, digest: str) -> str | None:
        """A URL clients can fetch the blob from directly, when the driver offers one."""
        return None


async def pipelined_writes(
    chunks: AsyncIterator[bytes],
    write: Callable[[list[bytes]], object],
    hasher: hashlib._Hash | None,
    store: BlobStore,
    buffer_bytes: int = WRITE_BUFFER_BYTES,
) -> int:
    """Feed ``chunks`` to the blocking ``write`` (and ``hasher``) in batches; return the bytes.

    Three things overlap: the event loop gathers the next batch from the network while one
    storage thread writes the previous batch and another hashes it. Each of write and hash has
    one batch at a time, so both see the bytes in order. A batch is the list of chunks as
    received: joining them would copy every byte once more on the event loop.
    """
    in_flight: list[asyncio.Future[Any]] = []
    batch: list[bytes] = []
    gathered = 0
    total = 0

    def submit(parts: list[bytes]) -> list[asyncio.Future[Any]]:
        futures: list[asyncio.Future[Any]] = [asyncio.ensure_future(store.run(write, parts))]
        if hasher is not None:
            futures.append(asyncio.ensure_future(store.run(_hash_all, hasher, parts)))
        return futures

    try:
        async for chunk in chunks:
            batch.append(chunk)
            gathered += len(chunk)
            if gathered >= buffer_bytes:
                await _settle(in_flight)
                in_flight = submit(batch)
                total += gathered
                batch, gathered = [], 0
        await _settle(in_flight)
        if batch:
            in_flight = submit(batch)
            await _settle(in_flight)
            total += gathered
    finally:
        # Never leave a thread writing to something the caller is about to close.
        if in_flight:
            await asyncio.wait(in_flight)
    return total


def _hash_all(hasher: hashlib._Hash, parts: list[bytes]) -> None:
    for part in parts:
        hasher.update(part)


async def _settle(futures: list[asyncio.Future[Any]]) -> None:
    """Wait for all of ``futures``, then raise the first failure among them."""
    if not futures:
        return
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
