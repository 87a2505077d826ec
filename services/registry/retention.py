"""The retention model: a space's policy (PRODUCT.md §9, defaults when it has none), runs of
it on demand, and tag pins, which retention never removes.

The reaper applies policies on its schedule (``shared.retention_run``); a run asked for here
is the same run, and what it removed this instance stops serving at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from services.registry.management.errors import NotFound
from services.registry.registry import Registry
from shared.events.envelope import CloudEvent
from shared.metadata.pins import PinRecord
from shared.metadata.spaces import SpaceRecord
from shared.metadata.store import MetadataStore
from shared.oci.names import RepositoryName
from shared.retention import RetentionPolicy
from shared.retention_run import EventSource, run_retention


def space_policy(space: SpaceRecord) -> RetentionPolicy:
    """The policy stored with ``space``, or the defaults."""
    stored = space.retention
    return RetentionPolicy.parse(stored) if stored else RetentionPolicy()


class Retention:
    def __init__(
        self,
        metadata: MetadataStore,
        registry: Registry,
        *,
        source: str,
        public_host: str,
        notify: Callable[[], None],
    ) -> None:
        self.metadata = metadata
        self.registry = registry
        self.source = source  # the CloudEvents source of the events sent here
        self.public_host = public_host
        self.notify = notify  # after a commit: wakes the relay

    async def set_policy(self, space_id: str, policy: RetentionPolicy) -> None:
        await self.metadata.spaces.set_retention(space_id, policy.document())

    async def run(self, space: SpaceRecord, *, dry_run: bool, actor: str | None) -> dict[str, Any]:
        """Apply the space's policy now, or with ``dry_run`` only say what would go. A real
        run ends with ``retention.completed``, its report as the data."""
        report = await run_retention(
            self.metadata,
            self.registry.store,
            space.id,
            space_policy(space),
            now=dt.datetime.now(dt.UTC),
            dry_run=dry_run,
            events=EventSource(self.source, self.public_host, actor),
        )
        document = report.document()
        if dry_run:
            return document
        for tag in report.removed:
            self.registry.forget(tag["repository"], tag=tag["tag"])
        for manifest in report.manifests:
            self.registry.forget(manifest["repository"], digest=manifest["digest"])
        completed = CloudEvent("retention.completed", self.source, space.id, document)
        await self.metadata.outbox.add([completed])
        self.notify()
        return document

    async def pin(
        self, name: RepositoryName, tag: str, actor: str | None
    ) -> tuple[PinRecord, bool]:
        """Pin an existing tag; the pin, and whether it is new."""
        if await self.metadata.images.get_tag(name.full, tag) is None:
            raise NotFound(f"{name.full}:{tag} does not exist")
        return await self.metadata.pins.pin(name.full, tag, actor)

    async def unpin(self, name: RepositoryName, tag: str) -> None:
        if not await self.metadata.pins.unpin(name.full, tag):
            raise NotFound(f"{name.full}:{tag} is not pinned")
