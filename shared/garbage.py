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

import datetime as dt
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import structlog

from shared.metadata.store import MetadataStore
from shared.storage.port import BlobStore

log = structlog.get_logger("spacedock.gc")

BATCH = 500
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
    metadata: MetadataStore, space: str, grace: dt.timedelta, now: dt.datetime
) -> list[str]:
    """Remove the space's links that nothing needs any more; the digests unlinked."""
    cutoff = now - grace
    unlinked: list[str] = []
    for repository, digests in (await metadata.blobs.stale_links(space, cutoff)).items():
        for batch in _batches(digests, BATCH):
            unlinked += await metadata.blobs.expire_links(repository, batch, cutoff)
    return unlinked


async def collect_blobs(
    metadata: MetadataStore,
    store: BlobStore,
    *,
    among: list[str] | None = None,
) -> Collected:
    """Delete the blobs nothing refers to: all of them, or those of ``among``."""
    total = Collected()
    if among is not None:
        for batch in _batches(sorted(set(among)), BATCH):
            candidates = await metadata.blobs.unlinked(BATCH, among=batch)
            total.add(await _collect(metadata, store, candidates))
        return total
    after: str | None = None
    while True:
        candidates = await metadata.blobs.unlinked(BATCH, after=after)
        if not candidates:
            return total
        total.add(await _collect(metadata, store, candidates))
        after = candidates[-1]


async def _collect(metadata: MetadataStore, store: BlobStore, candidates: list[str]) -> Collected:
    if not candidates:
        return Collected()
    token = uuid.uuid4().hex
    claimed = await metadata.blobs.claim(candidates, token, CLAIM_LEASE)
    if not claimed:
        return Collected()
    sizes = {doc["_id"]: int(doc.get("size", 0)) for doc in claimed}
    failed = await store.delete_blobs(list(sizes))
    gone = [digest for digest in sizes if digest not in failed]
    await metadata.blobs.forget(gone, token)
    if failed:
        await metadata.blobs.unclaim(sorted(failed), token)
        log.warning("gc_storage_delete_failed", blobs=len(failed))
    return Collected(len(gone), sum(sizes[digest] for digest in gone), len(failed))


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
