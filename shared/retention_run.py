"""One retention run over a space: the deployment tags its policy removes, then the untagged
manifests nothing needs any more (PRODUCT.md §9). Shared by the registry (runs on demand)
and the reaper (runs on a schedule).

A manifest is kept when a tag points at it, when it is younger than ``retain_hours``, when a
kept index lists it, when a kept referrer names it as its subject, or when it refers to a
kept manifest (a signature or SBOM stays with its image); everything else in the space goes,
referrers of a removed manifest with it. Tags go first, then manifests, parents before
children, in batches: each batch is one transaction that re-reads what it removes and writes
an ``image.deleted`` event for each item that passes; a tag that moved, or a manifest that a
push tagged, listed or referred to meanwhile, is left alone, and the rest of its batch goes.
Then garbage collection (``shared/garbage.py``):
the space's links to blobs no manifest needs and no push touched for ``gc.grace_minutes`` go,
and those blobs are deleted from storage unless another repository still links them.

A dry run reports the blobs only the removed manifests reference, which go once their grace
period has passed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from shared.batches import batched
from shared.events.envelope import CloudEvent, image_event
from shared.garbage import collect_blobs, expire_links
from shared.metadata.ports import RetentionMetadata
from shared.retention import (
    Key,
    RetentionPolicy,
    TagState,
    parents_first,
    tags_to_remove,
    with_what_they_need,
)
from shared.storage.port import BlobStore

# Removals per transaction: each batch is re-checked in one read, and written at once.
TAG_BATCH = 100
MANIFEST_BATCH = 100


@dataclass(slots=True)
class RetentionReport:
    space: str
    dry_run: bool
    removed: list[dict[str, str]] = field(default_factory=list)
    manifests: list[dict[str, str]] = field(default_factory=list)
    blobs_removed: int = 0
    bytes_freed: int = 0

    def document(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "dry_run": self.dry_run,
            "removed": self.removed,
            "manifests_removed": len(self.manifests),
            "manifests": self.manifests,
            "blobs_removed": self.blobs_removed,
            "bytes_freed": self.bytes_freed,
        }


@dataclass(frozen=True, slots=True)
class EventSource:
    source: str
    public_host: str
    actor: str | None


async def run_retention(
    metadata: RetentionMetadata,
    store: BlobStore,
    space: str,
    policy: RetentionPolicy,
    *,
    now: dt.datetime,
    dry_run: bool,
    events: EventSource,
) -> RetentionReport:
    report = RetentionReport(space, dry_run)
    # The manifests are the longest read: the server answers it while the tags are weighed.
    async with asyncio.TaskGroup() as reads:
        manifests_read = reads.create_task(
            metadata.retention.space_manifests(space, with_event_fields=not dry_run)
        )
        tags, pins = await asyncio.gather(
            metadata.retention.space_tags(space), metadata.retention.space_pins(space)
        )
        states = [
            TagState(
                t["repository"],
                t["tag"],
                t["digest"],
                t["updated_at"],
                (t["repository"], t["tag"]) in pins,
            )
            for t in tags
        ]
        going = tags_to_remove(states, policy, now)
        going_keys = {(t.repository, t.tag) for t in going}
        tagged = {
            (t.repository, t.digest) for t in states if (t.repository, t.tag) not in going_keys
        }
    manifests = manifests_read.result()
    young_since = now - dt.timedelta(hours=policy.untagged_retain_hours)
    keep = tagged | {key for key, m in manifests.items() if _young(m, young_since)}
    keep = with_what_they_need(keep, manifests)
    removable = parents_first(set(manifests) - keep, manifests)
    report.removed = [_tag_entry(t) for t in going]
    report.manifests = [{"repository": r, "digest": d} for r, d in sorted(removable)]
    if dry_run:
        orphans: dict[str, int] = {}
        if removable:  # what every manifest references is read only when some would go
            references = await metadata.retention.space_blobs(space)
            orphans = await metadata.retention.blobs_only_in(removable, references)
        report.blobs_removed, report.bytes_freed = len(orphans), sum(orphans.values())
        return report
    removed_tags: list[TagState] = []
    for tag_batch in batched(going, TAG_BATCH):
        removed_tags += await metadata.transaction(
            functools.partial(_remove_tags, metadata, tag_batch, events, manifests, now)
        )
    report.removed = [_tag_entry(t) for t in removed_tags]
    done: list[Key] = []
    for manifest_batch in batched(removable, MANIFEST_BATCH):
        done += await metadata.transaction(
            functools.partial(_remove_manifests, metadata, manifest_batch, events, manifests, now)
        )
    report.manifests = [{"repository": r, "digest": d} for r, d in sorted(done)]
    unlinked = await expire_links(
        metadata, space, dt.timedelta(minutes=policy.gc_grace_minutes), now
    )
    collected = await collect_blobs(metadata, store, among=unlinked)
    report.blobs_removed, report.bytes_freed = collected.blobs_removed, collected.bytes_freed
    return report


def _tag_entry(tag: TagState) -> dict[str, str]:
    return {"repository": tag.repository, "tag": tag.tag, "digest": tag.digest}


def _young(manifest: dict[str, Any], since: dt.datetime) -> bool:
    """Pushed after ``since``. A manifest whose push time is unknown (neither pushed nor
    created at a time the metadata holds) counts as young: it stays rather than going on a
    guess."""
    pushed: dt.datetime | None = manifest["pushed_at"]
    return pushed is None or pushed > since


def _event(
    events: EventSource,
    kind: str,
    repository: str,
    tag: str | None,
    digest: str,
    manifests: dict[Key, dict[str, Any]],
    now: dt.datetime,
) -> CloudEvent:
    manifest = manifests.get((repository, digest)) or {}
    return image_event(
        kind,
        source=events.source,
        public_host=events.public_host,
        repository=repository,
        tag=tag,
        digest=digest,
        media_type=manifest.get("media_type"),
        size=manifest.get("size"),
        actor=events.actor,
        moment=now,
    )


async def _remove_tags(
    metadata: RetentionMetadata,
    batch: list[TagState],
    events: EventSource,
    manifests: dict[Key, dict[str, Any]],
    now: dt.datetime,
    session: AsyncClientSession,
) -> list[TagState]:
    """Those of ``batch`` that still point where they did when the run looked (not
    re-pushed), with an ``image.deleted`` event each; the tags removed."""
    removed = await metadata.retention.remove_tags_if_unchanged(
        [(t.repository, t.tag, t.digest, t.pushed_at) for t in batch], session
    )
    gone = [t for t in batch if (t.repository, t.tag) in removed]
    await metadata.outbox.add(
        [
            _event(events, "image.deleted", t.repository, t.tag, t.digest, manifests, now)
            for t in gone
        ],
        session=session,
    )
    return gone


async def _remove_manifests(
    metadata: RetentionMetadata,
    batch: list[Key],
    events: EventSource,
    manifests: dict[Key, dict[str, Any]],
    now: dt.datetime,
    session: AsyncClientSession,
) -> list[Key]:
    """Those of ``batch`` (parents first) that, now, no tag points at, no manifest lists or
    refers to (parents go first, so one still here was kept) and no push touched since the
    run looked, with an ``image.deleted`` event each; the manifests removed."""
    removed = await metadata.retention.remove_manifests_if_unneeded(
        [(r, d, manifests[(r, d)].get("touched_at")) for r, d in batch], session
    )
    gone = [key for key in batch if key in removed]
    await metadata.outbox.add(
        [_event(events, "image.deleted", r, None, d, manifests, now) for r, d in gone],
        session=session,
    )
    return gone
