"""Garbage collection of 10,000 blobs nothing refers to, on each storage driver: seconds from
the first claim to the last document forgotten, and blobs per second. Nothing to compare
with: Distribution collects offline, with the registry read-only or stopped."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from shared.garbage import collect_blobs
from shared.metadata.blobs import NOT_DELETING
from shared.metadata.store import MetadataStore
from shared.settings import Settings
from shared.storage.factory import open_blob_store
from shared.storage.port import BlobStore
from tests.bench.errors import BenchError
from tests.support.processes import start_moto, start_secantus

BLOBS = 10_000
BLOB_BYTES = 1024
WRITERS = 32
SEED_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class CollectionFigure:
    driver: str
    blobs: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.blobs / self.seconds


def table(figures: list[CollectionFigure]) -> str:
    lines = [
        f"GC of {BLOBS:,} unreferenced blobs   seconds   blobs/s",
        "-" * 52,
    ]
    for figure in figures:
        lines.append(f"{figure.driver:32s} {figure.seconds:8.2f} {figure.per_second:9.0f}")
    return "\n".join(lines)


def measure_collection(workdir: Path) -> list[CollectionFigure]:
    """Each driver on a metadata server of its own: the embedded server slows down sharply
    for a second database after 10,000 blobs were written and collected in the first (its
    write history grows), which is not what is measured here."""
    s3 = start_moto(workdir / "moto")
    try:
        figures = []
        for driver in ("filesystem", "s3"):
            mongo = start_secantus(workdir / f"secantus-{driver}", test_commands=False)
            try:
                env = {
                    # as `make run` reaches its embedded server (shared/metadata/embedded.py)
                    "SPACEDOCK_MONGO_URL": f"mongodb://127.0.0.1:{mongo.port}/gc_{driver}"
                    "?retryWrites=false",
                    "SPACEDOCK_STORAGE": driver,
                    "SPACEDOCK_DATA_DIR": str(workdir / driver),
                    "SPACEDOCK_S3_ENDPOINT": f"127.0.0.1:{s3.port}",
                    "SPACEDOCK_S3_ACCESS_KEY": "testing",
                    "SPACEDOCK_S3_SECRET_KEY": "testing",
                    "SPACEDOCK_S3_BUCKET": "gc-bench",
                    "SPACEDOCK_S3_REGION": "us-east-1",
                }
                figure = asyncio.run(_collect(driver, Settings.from_env(env)))
            finally:
                mongo.stop()
            print(f"  gc {driver:10s} {figure.seconds:8.2f} s", flush=True)
            figures.append(figure)
        return figures
    finally:
        s3.stop()


async def _collect(driver: str, settings: Settings) -> CollectionFigure:
    assert settings.mongo_url is not None
    metadata = MetadataStore.connect(settings.mongo_url)
    store = await open_blob_store(settings)
    try:
        await metadata.ensure_indexes()
        digests = await _unreferenced_blobs(metadata, store)
        started = time.perf_counter()
        collected = await collect_blobs(metadata, store)
        seconds = time.perf_counter() - started
        if collected.blobs_removed != len(digests):
            raise BenchError(f"gc removed {collected.blobs_removed} of {len(digests)} blobs")
        for digest in digests[:: len(digests) // 50]:
            if await store.locate(digest) is not None:
                raise BenchError(f"gc left {digest} in {driver} storage")
        return CollectionFigure(driver, len(digests), seconds)
    finally:
        await store.close()
        await metadata.close()


async def _unreferenced_blobs(metadata: MetadataStore, store: BlobStore) -> list[str]:
    """Blobs stored through the store's own upload path, recorded as pushes leave them once
    their last link is gone (no link, no writer)."""
    payloads = [
        f"gc bench {n} {uuid.uuid4()}".encode().ljust(BLOB_BYTES, b".") for n in range(BLOBS)
    ]
    digests = [f"sha256:{hashlib.sha256(data).hexdigest()}" for data in payloads]
    slots = asyncio.Semaphore(WRITERS)

    async def put(data: bytes, digest: str) -> None:
        async with slots:
            upload_id = str(uuid.uuid4())
            state = await store.begin_upload(upload_id)
            size, state = await store.append_upload(upload_id, state, 0, _once(data), None)
            await store.commit_upload(upload_id, state, digest, size)

    await asyncio.gather(
        *(put(data, digest) for data, digest in zip(payloads, digests, strict=True))
    )
    now = dt.datetime.now(dt.UTC)
    # In chunks: one command of 10,000 documents outlasts the client's socket timeout on a
    # busy embedded server.
    for start in range(0, len(digests), SEED_CHUNK):
        await metadata.db.blobs.insert_many(
            [
                {
                    "_id": digest,
                    "size": BLOB_BYTES,
                    "stored": True,
                    "links": 0,
                    "writers": [],
                    "deleting_token": None,
                    "deleting_until": NOT_DELETING,
                    "touched_at": now,
                    "created_at": now,
                }
                for digest in digests[start : start + SEED_CHUNK]
            ]
        )
    return digests


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data
