"""The metadata as the domain uses it: one Protocol per repository, holding only the methods
the registry, the reaper, retention and garbage collection call, and a few composed ones for
the consumers that need several repositories.

The domain is typed by what it needs, not by the MongoDB adapter (``MetadataStore`` and its
repositories in ``shared.metadata``): the adapter satisfies these Protocols structurally, and
so do the in-memory fakes unit tests hand over in its place (``tests.support.fakes.metadata``).
mypy checks both where they are passed, so a fake that drifts from the adapter it stands for
(a method missing, a parameter renamed, a result of another type) is an error, not a test
that passes against something the product never does.

Records and errors stay the adapter's (``SpaceRecord``, ``StoredManifest``, ``SpaceMissing``,
...): they carry no I/O. Read-only properties stand for the repositories a store composes, so
a store may hold a subtype of what a Protocol names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.events.outbox import OutboxEntry
from shared.metadata.accounts import Account
from shared.metadata.blobs import Claim
from shared.metadata.connection import Document, Session
from shared.metadata.feed import VersionRecord
from shared.metadata.images import (
    ManifestPush,
    MissingReferences,
    RepositoryRecord,
    StoredManifest,
)
from shared.metadata.spaces import SpaceRecord
from shared.metadata.uploads import Upload

T = TypeVar("T")

# repositories ----------------------------------------------------------------------------------


class SpaceRecords(Protocol):
    """``shared.metadata.spaces.SpaceRepository``: spaces, as the spaces model, the registry's
    access checks and the reaper read and change them."""

    async def get(self, space_id: str) -> SpaceRecord | None: ...

    async def all(self) -> list[SpaceRecord]: ...

    async def ids_starting(self, prefix: str) -> list[str]: ...

    async def create(self, space_id: str, name: str, anonymous_pull: bool) -> SpaceRecord: ...

    async def update(self, space_id: str, changes: Document) -> SpaceRecord | None: ...

    async def set_retention(self, space_id: str, policy: Document) -> bool: ...

    async def delete(self, space_id: str) -> list[str] | None: ...


class ImageRecords(Protocol):
    """``shared.metadata.images.ImageRepository``: repositories, manifests and tags, as
    manifest PUTs, reads, deletes and listings use them."""

    async def touch_repository(self, repository: str) -> None: ...

    async def repository_exists(self, repository: str) -> bool: ...

    async def repositories_stamps(self, spaces: Iterable[str] | None) -> dict[str, int]: ...

    async def space_repositories(self, space: str) -> list[RepositoryRecord]: ...

    async def commit_pushes(
        self, pushes: Sequence[ManifestPush]
    ) -> list[MissingReferences | None]: ...

    async def get_manifest(
        self, repository: str, digest: str, *, session: Session | None = None
    ) -> StoredManifest | None: ...

    async def delete_manifest(
        self, repository: str, digest: str, *, session: Session
    ) -> tuple[StoredManifest | None, list[str]]: ...

    async def referrers(
        self, repository: str, subject: str, artifact_type: str | None
    ) -> list[StoredManifest]: ...

    async def get_tag(self, repository: str, tag: str) -> str | None: ...

    async def all_tags(self, repository: str) -> list[str]: ...

    async def tags_stamp(self, repository: str) -> int | None: ...

    async def delete_tag(self, repository: str, tag: str, *, session: Session) -> str | None: ...


class VersionFeed(Protocol):
    """``shared.metadata.feed.FeedRepository``: a repository's tags as Octopus versions."""

    async def newest_versions(
        self, repository: str, *, include_prerelease: bool, before: str | None, limit: int
    ) -> list[VersionRecord]: ...


class UploadSessions(Protocol):
    """``shared.metadata.uploads.UploadRepository``: chunked uploads, held by one writer at a
    time, and the reaper's removal of abandoned ones."""

    async def create(self, upload_id: str, repository: str, storage: Document) -> None: ...

    async def get(self, upload_id: str) -> Upload | None: ...

    async def claim(self, upload_id: str, token: str, lease: dt.timedelta) -> Upload | None: ...

    async def release(
        self, upload_id: str, token: str, offset: int | None = None, storage: Document | None = None
    ) -> bool: ...

    async def renew(self, upload_id: str, token: str, lease: dt.timedelta) -> None: ...

    async def delete(self, upload_id: str) -> None: ...

    async def claim_abandoned(
        self, cutoff: dt.datetime, token: str, lease: dt.timedelta
    ) -> Upload | None: ...

    async def delete_claimed(self, upload_id: str, token: str) -> bool: ...


class BlobLinks(Protocol):
    """What pushes, mounts and blob deletes do of ``shared.metadata.blobs.BlobRecords``: the
    writer's side of its protocol (reserve, record the link, release)."""

    async def get(self, digest: str) -> Document | None: ...

    async def link_size(self, repository: str, digest: str) -> int | None: ...

    async def find_link(self, digest: str, spaces: Iterable[str] | None) -> Document | None: ...

    async def reserve(self, digest: str, size: int, token: str) -> bool: ...

    async def renew(self, digest: str, token: str) -> None: ...

    async def release(self, digest: str, token: str) -> None: ...

    async def record_link(self, repository: str, digest: str, size: int, token: str) -> None: ...

    async def link(self, repository: str, digest: str, size: int) -> bool: ...

    async def unlink(self, repository: str, digest: str) -> bool: ...


class CollectableBlobs(Protocol):
    """What garbage collection does of ``shared.metadata.blobs.BlobRecords``: the collector's
    side of its protocol (expire links, claim, forget or unclaim)."""

    async def stale_links(self, space: str, cutoff: dt.datetime) -> dict[str, list[str]]: ...

    async def expire_links(
        self, repository: str, digests: list[str], cutoff: dt.datetime
    ) -> list[str]: ...

    def unlinked(
        self, batch: int, *, among: Iterable[str] | None = None
    ) -> AsyncGenerator[list[str], None]: ...

    async def claim(self, digests: list[str], token: str, lease: dt.timedelta) -> Claim: ...

    async def unclaim(self, claim: Claim, digests: list[str]) -> None: ...

    async def forget(self, claim: Claim, digests: list[str]) -> int: ...


class AccountReads(Protocol):
    """What access control reads of ``shared.metadata.accounts.AccountStore``."""

    async def get_user(self, username: str) -> Document | None: ...

    async def get_account(self, username: str) -> Account | None: ...

    async def get_api_key(self, key_id: str) -> Document | None: ...


class AccountRecords(AccountReads, Protocol):
    """``shared.metadata.accounts.AccountStore`` as the accounts model manages users, their
    memberships and their API keys."""

    async def list_users(self) -> list[Document]: ...

    async def create_user(
        self,
        username: str,
        password_hash: str | None,
        *,
        superuser: bool = False,
        service: str | None = None,
        global_role: str | None = None,
    ) -> bool: ...

    async def set_password(self, username: str, password_hash: str) -> bool: ...

    async def delete_user(self, username: str) -> bool: ...

    async def set_membership(self, space: str, username: str, role: str) -> bool: ...

    async def delete_membership(self, space: str, username: str) -> bool: ...

    async def list_memberships(self, space: str) -> list[Document]: ...

    async def create_api_key(
        self, key_id: str, username: str, name: str, secret_hash: str
    ) -> Document: ...

    async def list_api_keys(self, username: str) -> list[Document]: ...

    async def count_api_keys(self, username: str) -> int: ...

    async def delete_api_key(self, username: str, key_id: str) -> bool: ...


class RunRecords(Protocol):
    """``shared.metadata.runs.RunRepository``: which reaper runs a space's retention, when."""

    async def claim(
        self,
        space_id: str,
        owner: str,
        every: dt.timedelta,
        debounce: dt.timedelta,
        lease: dt.timedelta,
    ) -> dt.datetime | None: ...

    async def finish(self, space_id: str, owner: str, started: dt.datetime) -> None: ...

    async def mark_due(self, space_id: str) -> None: ...


class RetentionRecords(Protocol):
    """``shared.metadata.retention.RetentionRepository``: what a retention run reads of a
    space and removes from it."""

    async def space_tags(self, space_id: str) -> list[Document]: ...

    async def space_pins(self, space_id: str) -> set[tuple[str, str]]: ...

    async def space_manifests(
        self, space_id: str, *, with_event_fields: bool
    ) -> dict[tuple[str, str], Document]: ...

    async def space_blobs(self, space_id: str) -> dict[tuple[str, str], list[str]]: ...

    async def blobs_only_in(
        self, going: list[tuple[str, str]], space: dict[tuple[str, str], list[str]]
    ) -> dict[str, int]: ...

    async def remove_tags_if_unchanged(
        self, tags: list[tuple[str, str, str, dt.datetime]], session: Session
    ) -> set[tuple[str, str]]: ...

    async def remove_manifests_if_unneeded(
        self, manifests: list[tuple[str, str, dt.datetime | None]], session: Session
    ) -> set[tuple[str, str]]: ...


class EventOutbox(Protocol):
    """``shared.events.outbox.Outbox``: events written in the transaction of their change."""

    async def add(
        self,
        events: Sequence[CloudEvent],
        *,
        session: Session | None = None,
        exchange: str = EVENTS_EXCHANGE,
        routing_key: str | None = None,
    ) -> None: ...


class OutboxQueue(Protocol):
    """``shared.events.outbox.Outbox`` as its relay (``shared.events.relay``) drains it:
    entries claimed by one owner for a lease, then deleted once published, or given back."""

    async def claim(self, owner: str, lease: dt.timedelta, limit: int) -> list[OutboxEntry]: ...

    def resume(self, owner: str) -> None: ...

    async def done(self, owner: str, ids: Sequence[str]) -> None: ...

    async def renew(self, owner: str, ids: Sequence[str], lease: dt.timedelta) -> None: ...

    async def release(self, owner: str, ids: Sequence[str]) -> None: ...


class OutboxBacklog(Protocol):
    """``shared.events.outbox.Outbox`` as the relay's metrics read it at a scrape."""

    async def pending(self) -> int: ...

    async def oldest(self) -> dt.datetime | None: ...


class Transactional(Protocol):
    """``MetadataStore.transaction``: all of ``work`` or, when it raises, none of it."""

    async def transaction(self, work: Callable[[Session], Awaitable[T]]) -> T: ...


# composed --------------------------------------------------------------------------------------


class Metadata(Transactional, Protocol):
    """The metadata as the registry's models see it: pushes, pulls, deletes, listings, access
    control, spaces and accounts."""

    @property
    def spaces(self) -> SpaceRecords: ...

    @property
    def images(self) -> ImageRecords: ...

    @property
    def uploads(self) -> UploadSessions: ...

    @property
    def blobs(self) -> BlobLinks: ...

    @property
    def accounts(self) -> AccountRecords: ...

    @property
    def outbox(self) -> EventOutbox: ...


class FeedMetadata(Protocol):
    """What the feed view reads: whether a repository exists, and its versions."""

    @property
    def images(self) -> ImageRecords: ...

    @property
    def feed(self) -> VersionFeed: ...


class GarbageMetadata(Protocol):
    """What garbage collection uses: the collector's side of the blobs."""

    @property
    def blobs(self) -> CollectableBlobs: ...


class RetentionMetadata(GarbageMetadata, Transactional, Protocol):
    """What a retention run uses: the space's tags, manifests and blobs, the events of what it
    removed, and the collection of what that left unreferenced."""

    @property
    def retention(self) -> RetentionRecords: ...

    @property
    def outbox(self) -> EventOutbox: ...


class RoundMetadata(Protocol):
    """What a reaper round reads and writes itself: the spaces and their runs, the uploads it
    removes when abandoned, and the events of the runs it applied."""

    @property
    def spaces(self) -> SpaceRecords: ...

    @property
    def runs(self) -> RunRecords: ...

    @property
    def uploads(self) -> UploadSessions: ...

    @property
    def outbox(self) -> EventOutbox: ...


class ReaperMetadata(RoundMetadata, RetentionMetadata, Protocol):
    """What a reaper uses: its round's own part, and what the round hands on to retention and
    garbage collection."""
