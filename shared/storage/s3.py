"""Blobs in an S3 bucket through the MinIO SDK (MinIO, AWS S3 and other S3 servers).

Layout: ``blobs/<alg>/<2 hex>/<hex>``; an upload is staged as segment objects
``uploads/<id>/<start offset>``, one per write. S3 needs every part but the last of a
multipart object to be at least 5 MiB, while clients may send chunks of any size; so a write
that follows a segment shorter than that first reads it back (at most 5 MiB) and rewrites it
with the new bytes. Every segment but the last is then at least 5 MiB, and the commit composes
them into the blob's object on the server side, without moving the bytes through the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import urllib3
from minio import Minio
from minio.commonconfig import ComposeSource
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from shared.settings import S3Settings
from shared.storage.port import BlobLocation, BlobStore, StorageError, UploadState, pipelined_writes

MIN_PART_BYTES = 5 * 1024 * 1024
PART_BYTES = 8 * 1024 * 1024
READ_CHUNK_BYTES = 1024 * 1024
PRESIGN_EXPIRY = dt.timedelta(minutes=20)

# What the SDK and urllib3 raise when the server cannot be reached or fails. (urllib3 wraps
# socket errors; a bare OSError comes from the client's side of a write, not from S3.)
_BACKEND_ERRORS = (MinioException, urllib3.exceptions.HTTPError)


class S3BlobStore(BlobStore):
    def __init__(self, settings: S3Settings, io_threads: int = 32) -> None:
        super().__init__(io_threads)
        self.bucket = settings.bucket
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
            http_client=urllib3.PoolManager(
                # Downloads waiting for their clients hold a connection each, but no thread.
                maxsize=4 * io_threads,
                timeout=urllib3.Timeout(connect=5, read=60),
                retries=urllib3.Retry(
                    total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)
                ),
            ),
        )

    async def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one blocking SDK call; every failure becomes a StorageError."""
        try:
            return await self.run(lambda: func(*args, **kwargs))
        except S3Error as exc:
            raise StorageError(f"S3 {func.__name__} failed: {exc.code}", code=exc.code) from exc
        except _BACKEND_ERRORS as exc:
            raise StorageError(f"S3 {func.__name__} failed: {exc}") from exc

    @staticmethod
    def _blob_key(digest: str) -> str:
        algorithm, hex_ = digest.split(":", 1)
        return f"blobs/{algorithm}/{hex_[:2]}/{hex_}"

    @staticmethod
    def _segment_key(upload_id: str, start: int) -> str:
        return f"uploads/{upload_id}/{start:020d}"

    async def ensure_bucket(self) -> None:
        if not await self._call(self.client.bucket_exists, self.bucket):
            try:
                await self._call(self.client.make_bucket, self.bucket)
            except StorageError as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    async def check(self) -> None:
        if not await self._call(self.client.bucket_exists, self.bucket):
            raise StorageError(f"S3 bucket {self.bucket} does not exist")

    async def begin_upload(self, upload_id: str) -> UploadState:
        return {"segments": []}

    async def append_upload(
        self,
        upload_id: str,
        state: UploadState,
        offset: int,
        chunks: AsyncIterator[bytes],
        hasher: hashlib._Hash | None,
    ) -> tuple[int, UploadState]:
        segments: list[list[int]] = [list(s) for s in state.get("segments", [])]
        prefix = b""
        start = offset
        if segments and segments[-1][1] < MIN_PART_BYTES:
            start, size = segments.pop()
            prefix = await self._read_all(self._segment_key(upload_id, start), size)
        writer = _MultipartWriter(self.client, self.bucket, self._segment_key(upload_id, start))
        writer.pending = prefix

        try:
            written = await pipelined_writes(chunks, writer.write, hasher, self, PART_BYTES)
            if written:
                await self.run(writer.finish)
        except _BACKEND_ERRORS as exc:
            await self.run(writer.abort)
            raise StorageError(f"S3 write of upload {upload_id} failed: {exc}") from exc
        except BaseException:
            await self.run(writer.abort)
            raise
        if not written:
            return 0, state
        segments.append([start, len(prefix) + written])
        return written, {"segments": segments}

    async def _read_all(self, key: str, size: int) -> bytes:
        parts = [chunk async for chunk in self._read_object(key, 0, size)]
        return b"".join(parts)

    async def read_upload(
        self, upload_id: str, state: UploadState, size: int
    ) -> AsyncIterator[bytes]:
        for start, length in state.get("segments", []):
            async for chunk in self._read_object(self._segment_key(upload_id, start), 0, length):
                yield chunk

    async def commit_upload(
        self, upload_id: str, state: UploadState, digest: str, size: int
    ) -> None:
        segments = state.get("segments", [])
        target = self._blob_key(digest)
        keys = [self._segment_key(upload_id, start) for start, _ in segments]
        if not keys:
            await self._call(self.client.put_object, self.bucket, target, _Empty(), 0)
        else:
            # Lengths are explicit: a failed write may have left a segment object longer
            # than the part of it the session counts.
            sources = [
                ComposeSource(self.bucket, key, offset=0, length=length)
                for key, (_, length) in zip(keys, segments, strict=True)
            ]
            await self._call(self.client.compose_object, self.bucket, target, sources)
        await self._remove(keys)

    async def abort_upload(self, upload_id: str, state: UploadState) -> None:
        keys = [self._segment_key(upload_id, start) for start, _ in state.get("segments", [])]
        await self._remove(keys)

    async def _remove(self, keys: list[str]) -> None:
        if not keys:
            return

        def remove() -> list[Any]:
            return list(self.client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))

        errors = await self._call(remove)
        if errors:
            raise StorageError(f"S3 delete failed for {len(errors)} objects")

    async def locate(self, digest: str) -> BlobLocation | None:
        try:
            stat = await self._call(self.client.stat_object, self.bucket, self._blob_key(digest))
        except StorageError as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return None
            raise
        return BlobLocation(size=int(stat.size))

    def read(self, digest: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        return self._read_object(self._blob_key(digest), start, length)

    async def _read_object(self, key: str, start: int, length: int) -> AsyncGenerator[bytes, None]:
        """The object's bytes, a thread call per chunk; between chunks the response waits
        unread (the reader may be a slow client), and it is closed however the reading ends."""
        if length == 0:
            return
        response: urllib3.BaseHTTPResponse | None = None
        # Shielded: a cancelled reader must not close the response under a thread using it.
        call: asyncio.Future[Any] = asyncio.ensure_future(
            self._call(self.client.get_object, self.bucket, key, offset=start, length=length)
        )
        try:
            opened: urllib3.BaseHTTPResponse = await asyncio.shield(call)
            response = opened
            stream: Iterator[bytes] = opened.stream(READ_CHUNK_BYTES)
            while True:
                call = asyncio.ensure_future(self._call(next, stream, None))
                chunk = await asyncio.shield(call)
                if chunk is None:
                    break
                yield chunk
        finally:
            if not call.done():
                await asyncio.wait({call})
            outcome = None if call.cancelled() or call.exception() else call.result()
            if response is None and isinstance(outcome, urllib3.BaseHTTPResponse):
                response = outcome  # opened after its reader was cancelled
            if response is not None:
                response.close()
                response.release_conn()

    async def delete_blobs(self, digests: list[str]) -> set[str]:
        """One multi-object DELETE per 1000 keys (the SDK batches them)."""
        keys = {self._blob_key(digest): digest for digest in digests}
        if not keys:
            return set()

        def remove() -> list[Any]:
            return list(self.client.remove_objects(self.bucket, [DeleteObject(k) for k in keys]))

        try:
            errors = await self.run_delete(remove)
        except _BACKEND_ERRORS:
            return set(digests)
        return {keys[error.name] for error in errors if error.name in keys}

    async def stale_staging(self, before: dt.datetime) -> list[str]:
        def scan() -> dict[str, dt.datetime]:
            newest: dict[str, dt.datetime] = {}
            for item in self.client.list_objects(self.bucket, prefix="uploads/", recursive=True):
                upload_id = item.object_name.split("/")[1]
                moment = item.last_modified or before
                newest[upload_id] = max(moment, newest.get(upload_id, moment))
            return newest

        newest: dict[str, dt.datetime] = await self._call(scan)
        return [upload_id for upload_id, moment in newest.items() if moment < before]

    async def discard_staging(self, upload_id: str) -> None:
        def keys() -> list[str]:
            listing = self.client.list_objects(
                self.bucket, prefix=f"uploads/{upload_id}/", recursive=True
            )
            return [item.object_name for item in listing]

        await self._remove(await self._call(keys))

    async def presigned_url(self, digest: str) -> str | None:
        url: str = await self._call(
            self.client.presigned_get_object,
            self.bucket,
            self._blob_key(digest),
            expires=PRESIGN_EXPIRY,
        )
        return url


class _Empty:
    def read(self, size: int = -1) -> bytes:
        return b""


class _MultipartWriter:
    """Writes one object as a multipart upload, a part per buffer (runs on storage threads)."""

    def __init__(self, client: Minio, bucket: str, key: str) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.pending = b""
        self.upload_id: str | None = None
        self.parts: list[Any] = []

    def write(self, parts: list[bytes]) -> None:
        data, self.pending = b"".join([self.pending, *parts]), b""
        if self.upload_id is None:
            self.upload_id = self.client._create_multipart_upload(self.bucket, self.key, {})
        number = len(self.parts) + 1
        etag = self.client._upload_part(self.bucket, self.key, data, None, self.upload_id, number)
        self.parts.append(Part(number, etag))

    def finish(self) -> None:
        if self.pending:
            self.write([])
        if self.upload_id is not None:
            self.client._complete_multipart_upload(
                self.bucket, self.key, self.upload_id, self.parts
            )

    def abort(self) -> None:
        if self.upload_id is not None:
            # An orphaned multipart upload is left to the bucket's lifecycle rules.
            with contextlib.suppress(*_BACKEND_ERRORS):
                self.client._abort_multipart_upload(self.bucket, self.key, self.upload_id)
