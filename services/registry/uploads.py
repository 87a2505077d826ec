"""Blob upload sessions (distribution-spec "Pushing blobs").

A session lives in MongoDB and its bytes in the blob store, so any instance can take the next
chunk. A write first claims the session with a lease (a compare-and-set on the document) so two
writes never interleave; a write that fails leaves the offset where it was, and the next write
discards whatever it left behind.

The digest is computed while the bytes stream in. Hash state cannot be stored, so the running
hash stays in this instance's memory with the offset it covers; when the next chunk or the final
PUT reaches another instance (or this one restarted), the digest is computed by reading the
staged bytes back from storage instead. Either way a blob is linked only after its digest is
proven.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import structlog

from shared.metadata.blobs import BlobBeingDeleted
from shared.metadata.errors import SpaceMissing
from shared.metadata.ports import Metadata
from shared.metadata.uploads import Upload
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.names import RepositoryName
from shared.oci.ranges import ByteRange
from shared.storage.port import BlobStore

log = structlog.get_logger("spacedock.uploads")

LEASE = dt.timedelta(seconds=60)
LEASE_RENEW_SECONDS = 20.0
MAX_LOCAL_HASHERS = 4096
# How long an upload waits for garbage collection to finish deleting the same digest.
COLLECTION_WAIT_SECONDS = 10.0


class Uploads:
    def __init__(self, metadata: Metadata, store: BlobStore) -> None:
        self.metadata = metadata
        self.store = store
        self._hashers: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()

    async def start(self, name: RepositoryName) -> Upload:
        upload_id = str(uuid.uuid4())
        state = await self.store.begin_upload(upload_id)
        await self.metadata.uploads.create(upload_id, name.full, state)
        self._hashers[upload_id] = (0, hashlib.sha256())
        self._trim_hashers()
        return Upload(upload_id, name.full, 0, state, dt.datetime.now(dt.UTC))

    async def status(self, name: RepositoryName, upload_id: str) -> Upload:
        upload = await self.metadata.uploads.get(_checked_id(upload_id))
        if upload is None or upload.repository != name.full:
            raise errors.BlobUploadUnknown(detail={"upload": upload_id})
        return upload

    async def append(
        self,
        name: RepositoryName,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        content_range: ByteRange | None,
        content_length: int | None,
    ) -> int:
        """Write a chunk; return the new offset."""
        async with self._claim(name, upload_id) as claim:
            upload = claim.upload
            _check_chunk(upload.offset, content_range, content_length)
            await self._write(claim, chunks, content_range)
            return claim.offset

    async def finish(
        self,
        name: RepositoryName,
        upload_id: str,
        digest: Digest,
        chunks: AsyncIterator[bytes] | None,
        content_range: ByteRange | None = None,
        content_length: int | None = None,
    ) -> int:
        """Write the last chunk (if any), prove the digest and link the blob; return its size.

        A digest that does not match cancels the session: nothing of it becomes visible.
        """
        async with self._claim(name, upload_id) as claim:
            if chunks is not None:
                _check_chunk(claim.upload.offset, content_range, content_length)
                await self._write(claim, chunks, content_range)
            size = claim.offset
            try:
                await self._verify(claim, digest)
            except errors.DigestInvalid:
                await self._discard(claim)
                claim.finished = True
                raise
            await self._commit(name, upload_id, claim.storage, digest, size)
            await self.metadata.uploads.delete(upload_id)
            self._hashers.pop(upload_id, None)
            claim.finished = True
            return size

    async def put_whole(
        self,
        name: RepositoryName,
        digest: Digest,
        chunks: AsyncIterator[bytes],
        content_length: int | None,
    ) -> int:
        """A blob sent whole in one request (``POST ...?digest=`` with a body): hashed while
        it is staged and committed at once, without a session document, since no later
        request can continue it. Nothing is visible unless the digest matches."""
        upload_id = str(uuid.uuid4())
        state = await self.store.begin_upload(upload_id)
        hasher = digest.hasher()
        try:
            size, state = await self.store.append_upload(upload_id, state, 0, chunks, hasher)
            if content_length is not None and size != content_length:
                raise errors.SizeInvalid(
                    detail={"content_length": content_length, "received": size}
                )
            if hasher.hexdigest() != digest.hex:
                raise errors.DigestInvalid(
                    detail={
                        "expected": str(digest),
                        "computed": f"{digest.algorithm}:{hasher.hexdigest()}",
                    }
                )
            await self._commit(name, upload_id, state, digest, size)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.abort_upload(upload_id, state)
            raise
        return size

    async def _commit(
        self, name: RepositoryName, upload_id: str, state: dict[str, Any], digest: Digest, size: int
    ) -> None:
        """Make the proven bytes the blob (unless storage holds it already) and link it.

        The blob is reserved before its bytes are written, so garbage collection cannot delete
        them under the upload (shared/metadata/blobs.py). When a collector is deleting the
        same digest right now, the upload waits for it to finish and stores the blob again.
        """
        blobs = self.metadata.blobs
        token = uuid.uuid4().hex
        stored = await self._reserve(digest, size, token)
        renewer = asyncio.create_task(self._keep_reserved(str(digest), token))
        try:
            if stored and (await self.store.locate(str(digest))) is not None:
                await self.store.abort_upload(upload_id, state)
            else:
                await self.store.commit_upload(upload_id, state, str(digest), size)
            await self.metadata.images.touch_repository(name.full)
            await blobs.record_link(name.full, str(digest), size, token)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await blobs.release(str(digest), token)
            if isinstance(exc, SpaceMissing):  # deleted since the caller's access was checked
                raise errors.NameUnknown(detail={"name": name.full}) from exc
            if isinstance(exc, BlobBeingDeleted):
                raise errors.BlobUnknown(
                    "the upload took too long and the blob was collected; upload it again",
                    detail={"digest": str(digest)},
                ) from exc
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _keep_reserved(self, digest: str, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            with contextlib.suppress(Exception):
                await self.metadata.blobs.renew(digest, token)

    async def _reserve(self, digest: Digest, size: int, token: str) -> bool:
        waited = 0.0
        while True:
            try:
                return await self.metadata.blobs.reserve(str(digest), size, token)
            except BlobBeingDeleted:
                if waited >= COLLECTION_WAIT_SECONDS:
                    raise errors.Unavailable(
                        "the blob is being garbage-collected; retry shortly",
                        detail={"digest": str(digest)},
                    ) from None
            await asyncio.sleep(0.05)
            waited += 0.05

    async def put_stream(
        self, name: RepositoryName, chunks: AsyncIterator[bytes]
    ) -> tuple[Digest, int]:
        """Store a blob whose digest is not known in advance: hash it on the way in, then
        commit and link it like any upload. Nothing is visible if the stream fails."""
        upload = await self.start(name)
        try:
            await self.append(name, upload.id, chunks, None, None)
            entry = self._hashers.get(upload.id)
            if entry is not None:
                digest = Digest.parse(f"sha256:{entry[1].hexdigest()}")
            else:  # evicted from the local hashers: read the staged bytes back
                digest = await self._rehash(name, upload.id)
            size = await self.finish(name, upload.id, digest, None)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.cancel(name, upload.id)
            raise
        return digest, size

    async def _rehash(self, name: RepositoryName, upload_id: str) -> Digest:
        async with self._claim(name, upload_id) as claim:
            hasher = hashlib.sha256()
            async for chunk in self.store.read_upload(upload_id, claim.storage, claim.offset):
                await self.store.run(hasher.update, chunk)
            return Digest.parse(f"sha256:{hasher.hexdigest()}")

    async def cancel(self, name: RepositoryName, upload_id: str) -> None:
        async with self._claim(name, upload_id) as claim:
            await self._discard(claim)
            claim.finished = True

    # internals ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _claim(self, name: RepositoryName, upload_id: str) -> AsyncIterator[_Claim]:
        token = uuid.uuid4().hex
        claimed = await self.metadata.uploads.claim(_checked_id(upload_id), token, LEASE)
        if claimed is None:
            current = await self.metadata.uploads.get(upload_id)
            if current is None or current.repository != name.full:
                raise errors.BlobUploadUnknown(detail={"upload": upload_id})
            raise errors.RangeInvalid(
                "another write to this upload is in progress", detail={"offset": current.offset}
            )
        if claimed.repository != name.full:
            await self.metadata.uploads.release(upload_id, token)
            raise errors.BlobUploadUnknown(detail={"upload": upload_id})
        claim = _Claim(claimed)
        renewer = asyncio.create_task(self._renew(upload_id, token))
        try:
            yield claim
        except BaseException:
            self._hashers.pop(upload_id, None)
            raise
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            if not claim.finished:
                await self.metadata.uploads.release(
                    upload_id, token, offset=claim.offset, storage=claim.storage
                )

    async def _renew(self, upload_id: str, token: str) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            await self.metadata.uploads.renew(upload_id, token, LEASE)

    async def _write(
        self, claim: _Claim, chunks: AsyncIterator[bytes], content_range: ByteRange | None
    ) -> None:
        """Append to the upload; the claim moves forward only when all of the chunk is in."""
        upload = claim.upload
        hasher = self._hasher_at(upload.id, upload.offset)
        written, storage = await self.store.append_upload(
            upload.id, upload.storage, upload.offset, chunks, hasher
        )
        if content_range is not None and written != content_range.length:
            raise errors.SizeInvalid(
                "chunk length does not match Content-Range",
                detail={"content_range_length": content_range.length, "received": written},
            )
        claim.offset, claim.storage = upload.offset + written, storage
        if hasher is not None:
            self._hashers[upload.id] = (claim.offset, hasher)
            self._trim_hashers()

    def _hasher_at(self, upload_id: str, offset: int) -> hashlib._Hash | None:
        entry = self._hashers.pop(upload_id, None)
        if entry is not None and entry[0] == offset:
            return entry[1]
        return hashlib.sha256() if offset == 0 else None

    def _trim_hashers(self) -> None:
        while len(self._hashers) > MAX_LOCAL_HASHERS:
            self._hashers.popitem(last=False)

    async def _verify(self, claim: _Claim, digest: Digest) -> None:
        """Prove the bytes staged so far (the claim's state, this write included) are
        ``digest``: from the running hash when this instance saw them all, else by reading."""
        upload_id, size = claim.upload.id, claim.offset
        entry = self._hashers.get(upload_id)
        if digest.algorithm == "sha256" and entry is not None and entry[0] == size:
            computed = entry[1].hexdigest()
        else:
            log.info("upload_rehash", upload=upload_id, size=size)
            hasher = digest.hasher()
            async for chunk in self.store.read_upload(upload_id, claim.storage, size):
                await self.store.run(hasher.update, chunk)
            computed = hasher.hexdigest()
        if computed != digest.hex:
            raise errors.DigestInvalid(
                detail={"expected": str(digest), "computed": f"{digest.algorithm}:{computed}"}
            )

    async def _discard(self, claim: _Claim) -> None:
        upload_id = claim.upload.id
        await self.store.abort_upload(upload_id, claim.storage)
        await self.metadata.uploads.delete(upload_id)
        self._hashers.pop(upload_id, None)


class _Claim:
    """A write's hold on an upload: where it started and where it got to."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.offset = upload.offset
        self.storage = upload.storage
        self.finished = False


def _check_chunk(offset: int, content_range: ByteRange | None, content_length: int | None) -> None:
    if content_range is None:
        return
    if content_range.start != offset:
        raise errors.RangeInvalid(
            "chunk out of order", detail={"expected_start": offset, "got": content_range.start}
        )
    if content_length is not None and content_length != content_range.length:
        raise errors.SizeInvalid(
            "Content-Length does not match Content-Range",
            detail={"content_length": content_length, "content_range_length": content_range.length},
        )


def _checked_id(upload_id: str) -> str:
    try:
        return str(uuid.UUID(upload_id))
    except ValueError as exc:
        raise errors.BlobUploadUnknown(detail={"upload": upload_id[:100]}) from exc
