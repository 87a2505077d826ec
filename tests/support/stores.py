"""The registry's own metadata and blob stores, opened from a test on its settings: to check
what storage really holds and to run garbage collection in the test's process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pymongo import MongoClient

from shared.metadata.store import MetadataStore
from shared.settings import Settings
from shared.storage.factory import open_blob_store
from shared.storage.port import BlobStore
from tests.support.processes import Registry


@contextlib.asynccontextmanager
async def stores_of(registry: Registry) -> AsyncIterator[tuple[MetadataStore, BlobStore]]:
    metadata = MetadataStore.connect(registry.env["SPACEDOCK_MONGO_URL"])
    store = await open_blob_store(Settings.from_env(registry.env))
    try:
        yield metadata, store
    finally:
        await store.close()
        await metadata.close()


def mongo_of(registry: Registry) -> MongoClient[dict[str, Any]]:
    """A plain client of the registry's database, to backdate documents or inspect them."""
    return MongoClient(registry.env["SPACEDOCK_MONGO_URL"], tz_aware=True)


async def located(registry: Registry, digests: list[str]) -> dict[str, bool]:
    """Whether the registry's storage holds each blob."""
    async with stores_of(registry) as (_metadata, store):
        return {digest: (await store.locate(digest)) is not None for digest in digests}
