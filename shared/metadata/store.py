"""The metadata in MongoDB: one repository per aggregate on one connection.

- ``spaces``   (``shared.metadata.spaces``): spaces, the unit of tenancy
- ``images``   (``shared.metadata.images``): repositories, manifests and tags
- ``feed``     (``shared.metadata.feed``): tags read as Octopus versions, a page at a time
- ``pins``     (``shared.metadata.pins``): tags retention never removes
- ``uploads``  (``shared.metadata.uploads``): chunked upload sessions
- ``runs``     (``shared.metadata.runs``): which reaper runs a space's retention, and when
- ``blobs``    (``shared.metadata.blobs``): blobs, links, and garbage collection's protocol
- ``builds``   (``shared.metadata.builds``), ``accounts`` (``shared.metadata.accounts``)
- ``outbox``   (``shared.events.outbox``): events, written in the transaction of their change
- ``sessions`` (``shared.metadata.sessions``): the web UI's signed-in browsers

- ``retention`` (``shared.metadata.retention``): what a retention run reads of a space and
  removes from it

The connection and transactions are ``shared.metadata.connection``'s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo import AsyncMongoClient

from shared.events.outbox import Outbox
from shared.metadata.accounts import AccountStore
from shared.metadata.blobs import BlobRecords
from shared.metadata.builds import BuildStore
from shared.metadata.connection import Connection, Document, Session
from shared.metadata.feed import FeedRepository
from shared.metadata.images import ImageRepository
from shared.metadata.pins import PinRepository
from shared.metadata.retention import RetentionRepository
from shared.metadata.runs import RunRepository
from shared.metadata.sessions import SessionRepository
from shared.metadata.spaces import SpaceRepository
from shared.metadata.uploads import UploadRepository

T = TypeVar("T")


class MetadataStore:
    def __init__(self, client: AsyncMongoClient[Document], database: str = "spacedock") -> None:
        self.connection = Connection(client, database)
        self.client = client
        self.db = db = self.connection.db
        self.outbox = Outbox(db, self.transaction)
        self.spaces = SpaceRepository(db, self.transaction)
        self.images = ImageRepository(db, self.transaction, self.outbox)
        self.feed = FeedRepository(db, self.transaction)
        self.pins = PinRepository(db)
        self.uploads = UploadRepository(db, self.transaction)
        self.runs = RunRepository(db, self.transaction)
        self.blobs = BlobRecords(db, self.transaction)
        self.builds = BuildStore(db, self.outbox, self.transaction)
        self.accounts = AccountStore(db, self.transaction)
        self.retention = RetentionRepository(db, self.images)
        self.sessions = SessionRepository(db, self.transaction)

    @classmethod
    def connect(
        cls, url: str, database: str = "spacedock", timeout_ms: int = 5000
    ) -> MetadataStore:
        connection = Connection.open(url, database, timeout_ms)
        return cls(connection.client, connection.db.name)

    async def close(self) -> None:
        await self.connection.close()

    async def ping(self) -> None:
        await self.connection.ping()

    async def check_transactions(self) -> None:
        await self.connection.check_transactions()

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T:
        return await self.connection.transaction(work)

    async def ensure_indexes(self) -> None:
        """Every index, and the upgrades of documents earlier versions wrote (idempotent)."""
        await self.images.ensure_indexes()
        await self.pins.ensure_indexes()
        await self.uploads.ensure_indexes()
        await self.accounts.ensure_indexes()
        await self.outbox.ensure_indexes()
        await self.builds.ensure_indexes()
        await self.blobs.ensure_indexes()
        await self.sessions.ensure_indexes()
        await self.blobs.upgrade()
        await self.feed.upgrade_tags()
