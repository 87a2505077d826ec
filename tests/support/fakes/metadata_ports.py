"""The surfaces of the metadata repositories that a fake stands in for, as Protocols both the
real repository and its fake satisfy: a test typed against one of these runs its body on
either (tests/integration/test_fakes_match.py), and mypy holds the fake's signatures to the
real ones. The product itself types its metadata as the concrete ``MetadataStore``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from shared.metadata.connection import Document
from shared.metadata.images import ManifestPush, MissingReferences, StoredManifest
from shared.metadata.uploads import Upload


class UploadSessions(Protocol):
    """``shared.metadata.uploads.UploadRepository``."""

    async def create(self, upload_id: str, repository: str, storage: Document) -> None: ...

    async def get(self, upload_id: str) -> Upload | None: ...

    async def claim(self, upload_id: str, token: str, lease: dt.timedelta) -> Upload | None: ...

    async def release(
        self, upload_id: str, token: str, offset: int | None = None, storage: Document | None = None
    ) -> bool: ...

    async def renew(self, upload_id: str, token: str, lease: dt.timedelta) -> None: ...

    async def claim_abandoned(
        self, cutoff: dt.datetime, token: str, lease: dt.timedelta
    ) -> Upload | None: ...

    async def delete_claimed(self, upload_id: str, token: str) -> bool: ...


class BlobLinks(Protocol):
    """What pushes do of ``shared.metadata.blobs.BlobRecords``."""

    async def get(self, digest: str) -> Document | None: ...

    async def link_size(self, repository: str, digest: str) -> int | None: ...

    async def reserve(self, digest: str, size: int, token: str) -> bool: ...

    async def release(self, digest: str, token: str) -> None: ...

    async def record_link(self, repository: str, digest: str, size: int, token: str) -> None: ...

    async def link(self, repository: str, digest: str, size: int) -> bool: ...

    async def unlink(self, repository: str, digest: str) -> bool: ...


class Images(Protocol):
    """What manifest PUTs and reads do of ``shared.metadata.images.ImageRepository``."""

    async def commit_pushes(
        self, pushes: Sequence[ManifestPush]
    ) -> list[MissingReferences | None]: ...

    async def get_manifest(self, repository: str, digest: str) -> StoredManifest | None: ...

    async def get_tag(self, repository: str, tag: str) -> str | None: ...

    async def all_tags(self, repository: str) -> list[str]: ...

    async def tags_stamp(self, repository: str) -> int | None: ...

    async def repository_exists(self, repository: str) -> bool: ...
