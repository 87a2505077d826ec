"""Online garbage collection of blobs (PRODUCT.md §9), while pushes go on.

Two steps, each safe against concurrent pushes and other collectors through the protocol in
``shared/metadata/blobs.py``:

1. ``expire_links``: in a space, a repository's link to a blob goes once no manifest of the
   repository references the blob and no push has touched it for the space's grace period.
2. ``collect_blobs``: a blob no link and no manifest refers to is claimed, deleted from
   storage in batches, and forgotten. A blob whose storage delete fails is released as one
   whose bytes must be uploaded again, and the next run deletes it. Several collectors may run
   at once: a claim is taken by one of them only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from contextlib import aclosing
from dataclasses import dataclass

import structlog

from shared.batches import batched
from shared.metadata.blobs import Claim
from shared.metadata.ports import GarbageMetadata
from shared.storage.port import BlobStore

log = structlog.get_logger("spacedock.gc")

BATCH = 500
# Batches deleting from storage while the next is claimed.
IN_FLIGHT = 2
# Far longer than a storage call can take (the S3 client gives up within a few minutes), so a
# claim never lapses, and is taken over, while its collector may still be deleting.
CLAIM_LEASE = dt.timedelta(minutes=15)


@dataclass(slots=True)
class Collected:
    blobs_removed: int = 0
    bytes_freed: int = 0
    failed: int = 0

    def add(self, other: Collected) -> None:
        self.blobs_removed += other.blobs_removed
        self.bytes_freed += other.bytes_freed
        self.failed += other.failed


async def expire_links(
    metadata: GarbageMetadata, space: str, grace: dt.timedelta, now: dt.datetime
) -> list[str]:
    """Remove the space's links that nothing needs any more; the digests unlinked."""
    cutoff = now - grace
    unlinked: list[str] = []
    for repository, digests in (await metadata.blobs.stale_links(space, cutoff)).items():
        for batch in batched(digests, BATCH):
            unlinked += await metadata.blobs.expire_links(repository, batch, cutoff)
    return unlinked


async def collect_blobs(
    metadata: GarbageMetadata,
    store: BlobStore,
    *,
    among: list[str] | None = None,
) -> Collected:
    """Delete the blobs nothing refers to: all of them, or those of ``among``.

    The next batch is claimed while earlier ones are deleted from storage and forgotten, up to
    ``IN_FLIGHT`` at a time, so that the metadata server and the storage work side by side
    instead of taking turns."""
    total = Collected()
    deleting: set[asyncio.Task[Collected]] = set()
    try:
        async with aclosing(metadata.blobs.unlinked(BATCH, among=among)) as batches:
            async for candidates in batches:
                claim = await metadata.blobs.claim(candidates, uuid.uuid4().hex, CLAIM_LEASE)
                if not claim.sizes:
                    continue
                if len(deleting) == IN_FLIGHT:
                    done, deleting = await asyncio.wait(
                        deleting, return_when=asyncio.FIRST_COMPLETED
                    )
                    for task in done:
                        total.add(task.result())
                deleting.add(asyncio.create_task(_delete(metadata, store, claim)))
    finally:
        # Even on an error, every batch under way ends before this returns: none is left
        # deleting behind the caller's back.
        outcomes = await asyncio.gather(*deleting, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        total.add(outcome)
    return total


async def _delete(metadata: GarbageMetadata, store: BlobStore, claim: Claim) -> Collected:
    """Delete a claimed batch from storage, then forget it (or release what failed)."""
    failed = await store.delete_blobs(list(claim.sizes))
    gone = [digest for digest in claim.sizes if digest not in failed]
    await metadata.blobs.forget(claim, gone)
    if failed:
        await metadata.blobs.unclaim(claim, sorted(failed))
        log.warning("gc_storage_delete_failed", blobs=len(failed))
    return Collected(len(gone), sum(claim.sizes[digest] for digest in gone), len(failed))
