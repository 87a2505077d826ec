"""One retention run over a space: the deployment tags its policy removes, then the untagged
manifests nothing needs any more (PRODUCT.md §9). Shared by the registry (runs on demand)
and the reaper (runs on a schedule).

A manifest is kept when a tag points at it, when it is younger than ``retain_hours``, when a
kept index lists it, when a kept referrer names it as its subject, or when it refers to a
kept manifest (a signature or SBOM stays with its image); everything else in the space goes,
referrers of a removed manifest with it. Each removal is its own transaction
with its ``image.deleted`` event, re-checked there: a tag that moved, or a manifest that a
push tagged or listed meanwhile, is left alone. Then garbage collection (``shared/garbage.py``):
the space's links to blobs no manifest needs and no push touched for ``gc.grace_minutes`` go,
and those blobs are deleted from storage unless another repository still links them.

A dry run reports the blobs only the removed manifests reference, which go once their grace
period has passed.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from shared.events.envelope import CloudEvent, image_event
from shared.garbage import collect_blobs, expire_links
from shared.metadata.store import MetadataStore
from shared.retention import (
    Key,
    RetentionPolicy,
    TagState,
    parents_first,
    tags_to_remove,
    with_what_they_need,
)
from shared.storage.port import BlobStore


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
    metadata: MetadataStore,
    store: BlobStore,
    space: str,
    policy: RetentionPolicy,
    *,
    now: dt.datetime,
    dry_run: bool,
    events: EventSource,
) -> RetentionReport:
    report = RetentionReport(space, dry_run)
    tags = await metadata.space_tags(space)
    pins = await metadata.space_pins(space)
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
    manifests = {(m["repository"], m["digest"]): m for m in await metadata.space_manifests(space)}
    tagged = {(t.repository, t.digest) for t in states if (t.repository, t.tag) not in going_keys}
    young_since = now - dt.timedelta(hours=policy.untagged_retain_hours)
    keep = tagged | {key for key, m in manifests.items() if _pushed_at(m) > young_since}
    keep = with_what_they_need(keep, manifests)
    removable = parents_first(set(manifests) - keep, manifests)
    report.removed = [{"repository": t.repository, "tag": t.tag, "digest": t.digest} for t in going]
    report.manifests = [{"repository": r, "digest": d} for r, d in sorted(removable)]
    orphans = await metadata.blobs_only_in([manifests[key] for key in removable])
    report.blobs_removed, report.bytes_freed = len(orphans), sum(orphans.values())
    if dry_run:
        return report
    for tag in going:
        event = _event(events, "image.deleted", tag.repository, tag.tag, tag.digest, manifests, now)
        await metadata.transaction(functools.partial(_remove_tag, metadata, tag, event))
    done: list[dict[str, str]] = []
    for key in removable:
        event = _event(events, "image.deleted", key[0], None, key[1], manifests, now)
        removed = await metadata.transaction(
            functools.partial(_remove_manifest, metadata, key, manifests[key], event)
        )
        if removed:
            done.append({"repository": key[0], "digest": key[1]})
    report.manifests = sorted(done, key=lambda m: (m["repository"], m["digest"]))
    unlinked = await expire_links(
        metadata, space, dt.timedelta(minutes=policy.gc_grace_minutes), now
    )
    collected = await collect_blobs(metadata, store, among=unlinked)
    report.blobs_removed, report.bytes_freed = collected.blobs_removed, collected.bytes_freed
    return report


def _pushed_at(manifest: dict[str, Any]) -> dt.datetime:
    moment: dt.datetime = manifest.get("touched_at") or manifest["created_at"]
    return moment


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


async def _remove_tag(
    metadata: MetadataStore, tag: TagState, event: CloudEvent, session: AsyncClientSession
) -> bool:
    """Only if the tag still points where it did when the run looked (not re-pushed)."""
    if not await metadata.remove_tag_if_unchanged(
        tag.repository, tag.tag, tag.digest, tag.pushed_at, session
    ):
        return False
    await metadata.outbox.add([event], session=session)
    return True


async def _remove_manifest(
    metadata: MetadataStore,
    key: Key,
    seen: dict[str, Any],
    event: CloudEvent,
    session: AsyncClientSession,
) -> bool:
    """Only if, now, no tag points at it, no manifest lists it or refers to it (parents go
    first, so one still here was kept), and it was not pushed again since the run looked."""
    repository, digest = key
    if await metadata.db.tags.find_one(
        {"repository": repository, "digest": digest}, session=session
    ):
        return False
    if await metadata.db.manifests.find_one(
        {"repository": repository, "$or": [{"manifests": digest}, {"subject": digest}]},
        {"_id": 1},
        session=session,
    ):
        return False
    result = await metadata.db.manifests.delete_one(
        {"_id": f"{repository}@{digest}", "touched_at": seen.get("touched_at")},
        session=session,
    )
    if result.deleted_count != 1:
        return False
    await metadata.outbox.add([event], session=session)
    return True
