"""Open the blob store the settings name; unknown drivers were rejected by Settings."""

from __future__ import annotations

from shared.settings import Settings
from shared.storage.filesystem import FilesystemBlobStore
from shared.storage.port import BlobStore
from shared.storage.s3 import S3BlobStore


async def open_blob_store(settings: Settings) -> BlobStore:
    if settings.storage == "s3":
        assert settings.s3 is not None
        store = S3BlobStore(settings.s3)
        await store.ensure_bucket()
        return store
    return FilesystemBlobStore(settings.data_dir / "blobs")
