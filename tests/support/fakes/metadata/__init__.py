"""The metadata repositories in memory, with the semantics the registry's domain relies on:
one module per repository, composed here.

``InMemoryMetadata`` stands where ``MetadataStore`` does for uploads, manifest PUTs and access
control: ``spaces``, ``images``, ``feed``, ``uploads``, ``blobs`` (the link side only: garbage
collection's claim is not faked), ``accounts``, an ``outbox`` and ``transaction(work)``. Each
method copies the conditions of the real query it stands for (its filter, the fields it sets,
what it answers), as one step with no await in between, as each real conditional update is
atomic. Documents are copied in and out: a caller never holds a stored one.

``transaction`` runs ``work`` alone (transactions are serialised, where MongoDB would make one
of two conflicting ones retry) and, when it raises, puts every collection and the outbox back
as they were: nothing of a failed transaction is seen. Writes outside a transaction that run
while one is under way and then fails would be undone with it; the tests never do that.

Times come from ``now`` (a ``tests.support.fakes.clock.FakeClock`` lets a lease lapse
without waiting).

Retention's reads (``RetentionRecords``) and the collector's side of the blobs
(``CollectableBlobs``) are not faked: a reaper round reaches them only through
``run_retention`` and ``collect_blobs``, which the reaper's unit tests replace
(``reaper_view``).

The domain takes the Protocols of ``shared.metadata.ports``, not the concrete ``MetadataStore``:
a test hands ``InMemoryMetadata`` (a ``Metadata``) or one of its repositories over as it is,
and mypy holds each fake to the Protocol it stands in for, as it holds the real repository.
"""

from __future__ import annotations

from typing import cast

from shared.metadata.connection import EPOCH
from shared.metadata.ports import ReaperMetadata, RoundMetadata
from tests.support.fakes.metadata.accounts import InMemoryAccounts
from tests.support.fakes.metadata.blobs import InMemoryBlobs
from tests.support.fakes.metadata.documents import (
    Clock,
    Collections,
    InMemoryEventOutbox,
    Transactions,
    system_clock,
)
from tests.support.fakes.metadata.feed import InMemoryFeed
from tests.support.fakes.metadata.images import InMemoryImages
from tests.support.fakes.metadata.runs import InMemoryRuns
from tests.support.fakes.metadata.spaces import InMemorySpaces
from tests.support.fakes.metadata.uploads import InMemoryUploads


class InMemoryMetadata:
    """What ``MetadataStore`` composes, for the parts the registry's uploads, manifests and
    access control use."""

    def __init__(self, now: Clock = system_clock) -> None:
        self.data = Collections()
        self.transaction = Transactions(self.data)
        self.outbox = InMemoryEventOutbox(self.data)
        self.spaces = InMemorySpaces(self.data, self.transaction, now)
        self.images = InMemoryImages(self.data, self.transaction, self.outbox, now)
        self.feed = InMemoryFeed(self.data)
        self.uploads = InMemoryUploads(self.data, now)
        self.blobs = InMemoryBlobs(self.data, self.transaction, now)
        self.accounts = InMemoryAccounts(self.data, now)
        self.runs = InMemoryRuns(now)

    def add_space(self, space_id: str) -> None:
        """A space to push into, as the registry's start makes its default one."""
        self.data.spaces.setdefault(
            space_id,
            {"_id": space_id, "name": space_id, "anonymous_pull": False, "created_at": EPOCH},
        )


def reaper_view(metadata: RoundMetadata) -> ReaperMetadata:
    """The fakes where a reaper asks for its metadata, for tests that replace ``run_retention``
    and ``collect_blobs``. What the round uses itself is checked (``RoundMetadata``); the
    retention and collection parts are not faked and never reached there, hence the cast."""
    return cast(ReaperMetadata, metadata)
