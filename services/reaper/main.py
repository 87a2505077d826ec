"""The reaper service: on a schedule, apply each space's retention policy and remove upload
sessions abandoned for a day; report through the outbox.

Several reapers may run: a space's run is claimed (``reaper_runs``, with a lease) so only
one reaper applies it per interval, and an abandoned upload is claimed before it is removed.
Garbage collection of unreferenced blobs is not done yet: removed manifests' blobs stay in
storage (the runs report the bytes they would free).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import uuid

import structlog

from shared.events.bus import AmqpBus, EventBus, InProcessBus
from shared.events.envelope import CloudEvent
from shared.events.relay import OutboxRelay
from shared.metadata.store import MetadataStore
from shared.retention import PolicyInvalid, RetentionPolicy
from shared.retention_run import EventSource, run_retention
from shared.settings import Settings
from shared.storage.factory import open_blob_store
from shared.storage.port import BlobStore

log = structlog.get_logger("spacedock.reaper")
RUN_LEASE = dt.timedelta(minutes=30)
ABANDONED_AFTER = dt.timedelta(hours=24)
REAPER_ACCOUNT = "spacedock-reaper"


async def run_reaper(settings: Settings, stop: asyncio.Event, bus: EventBus | None = None) -> None:
    if settings.mongo_url is None:
        log.warning("reaper_idle", reason="set SPACEDOCK_MONGO_URL to apply retention")
        await stop.wait()
        return
    metadata = MetadataStore.connect(settings.mongo_url)
    store = await open_blob_store(settings)
    own_bus = bus is None
    if bus is None:
        bus = AmqpBus(settings.amqp_url) if settings.amqp_url else InProcessBus()
    owner = f"reaper@{socket.gethostname()}:{os.getpid()}"
    relay = OutboxRelay(metadata.outbox, bus, owner)
    relaying = asyncio.ensure_future(relay.run())
    every = dt.timedelta(seconds=settings.retention_interval_seconds)
    log.info("reaper_ready", every_seconds=settings.retention_interval_seconds)
    try:
        while not stop.is_set():
            try:
                await reap_once(metadata, store, settings, owner, every)
                relay.notify()
            except Exception:  # a bad round must not end the service
                log.exception("reaper_round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(every.total_seconds(), 60))
    finally:
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
        if own_bus:
            await bus.close()
        await store.close()
        await metadata.close()


async def reap_once(
    metadata: MetadataStore, store: BlobStore, settings: Settings, owner: str, every: dt.timedelta
) -> None:
    """One round: each space whose run is due and unclaimed, then abandoned uploads."""
    for space in await metadata.list_spaces():
        if not await metadata.claim_space_run(space["_id"], owner, every, RUN_LEASE):
            continue
        try:
            try:
                policy = RetentionPolicy.parse(space.get("retention") or {})
            except PolicyInvalid:
                log.warning("retention_policy_invalid", space=space["_id"])
                continue
            report = await run_retention(
                metadata,
                space["_id"],
                policy,
                now=dt.datetime.now(dt.UTC),
                dry_run=False,
                events=EventSource(
                    f"{settings.public_url}/reaper", settings.public_host, REAPER_ACCOUNT
                ),
            )
            document = report.document()
            await metadata.outbox.add(
                [
                    CloudEvent(
                        "retention.completed",
                        f"{settings.public_url}/reaper",
                        space["_id"],
                        document,
                    )
                ]
            )
            log.info(
                "retention_applied",
                space=space["_id"],
                tags_removed=len(report.removed),
                manifests_removed=len(report.manifests),
            )
        finally:
            await metadata.finish_space_run(space["_id"], owner)
    await _abandoned_uploads(metadata, store)


async def _abandoned_uploads(metadata: MetadataStore, store: BlobStore) -> None:
    cutoff = dt.datetime.now(dt.UTC) - ABANDONED_AFTER
    token = uuid.uuid4().hex
    for _ in range(1000):
        upload = await metadata.claim_abandoned_upload(cutoff, token, dt.timedelta(minutes=10))
        if upload is None:
            return
        with contextlib.suppress(Exception):
            await store.abort_upload(upload.id, upload.storage)
        await metadata.delete_claimed_upload(upload.id, token)
        log.info("abandoned_upload_removed", upload=upload.id, repository=upload.repository)
