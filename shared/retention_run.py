"""One retention run over a space: the deployment tags its policy removes, then the untagged
manifests nothing needs any more (PRODUCT.md §9). Shared by the registry (runs on demand)
and the reaper (runs on a schedule).

A manifest is kept when a tag points at it, when it is younger than ``retain_hours``, when a
kept index lists it, when a kept referrer names it as its subject, or when it refers to a
kept manifest (a signature or SBOM stays with its image); everything else in the space goes,
referrers of a removed manifest with it. Each removal is its own transaction
with its ``image.deleted`` event, re-checked there: a tag that moved, or a manifest that a
push tagged or listed meanwhile, is left alone. Blobs no manifest references any more are
counted in ``bytes_freed`` and left to garbage collection.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from shared.events.envelope import CloudEvent, image_event
from shared.metadata.store import MetadataStore
from shared.retention import RetentionPolicy, TagState, tags_to_remove

Key = tuple[str, str]  # (repository, digest)


@dataclass(slots=True)
class RetentionReport:
    space: str
    dry_run: bool
    removed: list[dict[str, str]] = field(default_factory=list)
    manifests: list[dict[str, str]] = field(default_factory=list)
    bytes_freed: int = 0

    def document(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "dry_run": self.dry_run,
            "removed": self.removed,
            "manifests_removed": len(self.manifests),
            "manifests": self.manifests,
            "blobs_removed": 0,
            "bytes_freed": self.bytes_freed,
        }


@dataclass(frozen=True, slots=True)
class EventSource:
    source: str
    public_host: str
    actor: str | None


async def run_retention(
    metadata: MetadataStore,
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
    keep = tagged | {key for key, m in manifests.items() if m["created_at"] > young_since}
    keep = _closure(keep, manifests)
    removable = sorted(set(manifests) - keep)
    report.removed = [{"repository": t.repository, "tag": t.tag, "digest": t.digest} for t in going]
    report.manifests = [{"repository": r, "digest": d} for r, d in removable]
    report.bytes_freed = await metadata.bytes_only_in([manifests[key] for key in removable])
    if dry_run:
        return report
    for tag in going:
        event = _event(events, "image.deleted", tag.repository, tag.tag, tag.digest, manifests, now)
        await metadata.transaction(functools.partial(_remove_tag, metadata, tag, event))
    removable_set = set(removable)
    done: list[dict[str, str]] = []
    for key in removable:
        event = _event(events, "image.deleted", key[0], None, key[1], manifests, now)
        removed = await metadata.transaction(
            functools.partial(_remove_manifest, metadata, key, removable_set, event)
        )
        if removed:
            done.append({"repository": key[0], "digest": key[1]})
    report.manifests = done
    return report


def _closure(keep: set[Key], manifests: dict[Key, dict[str, Any]]) -> set[Key]:
    """Add what goes with kept manifests: an index's manifests, a referrer's subject, and
    the referrers (signatures, SBOMs) of a kept manifest."""
    referrers: dict[Key, list[Key]] = {}
    for (repository, digest), document in manifests.items():
        if document.get("subject"):
            referrers.setdefault((repository, document["subject"]), []).append((repository, digest))
    kept = set(keep)
    pending = list(kept)
    while pending:
        repository, digest = pending.pop()
        manifest = manifests.get((repository, digest))
        if manifest is None:
            continue
        needed = [(repository, child) for child in manifest.get("manifests") or []]
        if manifest.get("subject"):
            needed.append((repository, manifest["subject"]))
        needed += referrers.get((repository, digest), [])
        for key in needed:
            if key not in kept:
                kept.add(key)
                pending.append(key)
    return kept


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
    result = await metadata.db.tags.delete_one(
        {"_id": f"{tag.repository}:{tag.tag}", "digest": tag.digest, "updated_at": tag.pushed_at},
        session=session,
    )
    if result.deleted_count != 1:
        return False
    await metadata.outbox.add([event], session=session)
    return True


async def _remove_manifest(
    metadata: MetadataStore,
    key: Key,
    removable: set[Key],
    event: CloudEvent,
    session: AsyncClientSession,
) -> bool:
    """Only if, now, no tag points at it and no manifest that stays lists it or refers to it
    (a push may have done either since the run looked)."""
    repository, digest = key
    if await metadata.db.tags.find_one(
        {"repository": repository, "digest": digest}, session=session
    ):
        return False
    async for parent in metadata.db.manifests.find(
        {"repository": repository, "$or": [{"manifests": digest}, {"subject": digest}]},
        {"digest": 1},
        session=session,
    ):
        if (repository, parent["digest"]) not in removable:
            return False
    result = await metadata.db.manifests.delete_one(
        {"_id": f"{repository}@{digest}"}, session=session
    )
    if result.deleted_count != 1:
        return False
    await metadata.outbox.add([event], session=session)
    return True
