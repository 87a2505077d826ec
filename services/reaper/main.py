"""The reaper service: on a schedule, apply each space's retention policy (which ends with
garbage collection of the space's blobs), collect any other blob nothing refers to, and remove
upload sessions and staged bytes abandoned for a day; report through the outbox.

It consumes ``image.pushed``: a deployment tag arriving makes its space's retention due, so
``keep_last`` applies within ``SPACEDOCK_RETENTION_DEBOUNCE_SECONDS`` rather than at the next
scheduled run.

Several reapers may run: a space's run is claimed (``reaper_runs``, with a lease) so only
one reaper applies it at a time, blobs are claimed before they are deleted
(``shared/metadata/blobs.py``), and an abandoned upload is claimed before it is removed.

Its metrics (:class:`ReaperMetrics`) are the process's: on the registry's ``/metrics`` under
``spacedock serve``, on ``SPACEDOCK_METRICS_LISTEN`` when it runs alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.reaper.pushes import consume_pushes
from shared.events.bus import EventBus
from shared.events.envelope import CloudEvent
from shared.events.relay import OutboxRelay
from shared.garbage import collect_blobs
from shared.metadata.ports import ReaperMetadata
from shared.metadata.spaces import SpaceRecord
from shared.metrics import ProcessMetrics
from shared.retention import PolicyInvalid, RetentionPolicy
from shared.retention_run import EventSource, run_retention
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from shared.storage.port import BlobStore

log = structlog.get_logger("spacedock.reaper")
RUN_LEASE = dt.timedelta(minutes=30)
ABANDONED_AFTER = dt.timedelta(hours=24)
STAGING_SWEEP_EVERY_SECONDS = 3600.0
REAPER_ACCOUNT = "spacedock-reaper"
RUN_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class ReaperMetrics:
    """What the reaper counts, one group of the process's metrics (``shared.metrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "spacedock_retention_runs",
            "Retention runs of a space by the reaper, by outcome: applied, failed, or "
            "policy_invalid (a stored policy that no longer parses)",
            ["outcome"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "spacedock_retention_run_duration_seconds",
            "Time one space's retention run took, applied or failed",
            buckets=RUN_SECONDS_BUCKETS,
            registry=registry,
        )
        self.tags_removed = Counter(
            "spacedock_retention_tags_removed", "Tags retention removed", registry=registry
        )
        self.manifests_removed = Counter(
            "spacedock_retention_manifests_removed",
            "Manifests retention removed",
            registry=registry,
        )
        self.blobs_collected = Counter(
            "spacedock_gc_blobs_collected",
            "Blobs garbage collection deleted, in retention runs and in the reaper's sweep "
            "of blobs nothing refers to",
            registry=registry,
        )
        self.bytes_collected = Counter(
            "spacedock_gc_bytes_collected",
            "Bytes of the blobs garbage collection deleted",
            registry=registry,
        )

    def collected(self, blobs: int, size: int) -> None:
        self.blobs_collected.inc(blobs)
        self.bytes_collected.inc(size)


async def run_reaper(
    settings: Settings,
    stop: asyncio.Event,
    bus: EventBus | None = None,
    metrics: ProcessMetrics | None = None,
) -> None:
    """Reap until ``stop``; ``bus`` and ``metrics`` are those of the process when it runs
    other services too."""
    if settings.mongo_url is None:
        log.warning("reaper_idle", reason="set SPACEDOCK_MONGO_URL to apply retention")
        await stop.wait()
        return
    async with ServiceRuntime.open(
        "reaper", settings, blobs=True, bus=bus, metrics=metrics
    ) as runtime:
        await runtime.serve_own_metrics(settings)
        wake = asyncio.Event()
        runtime.start_relay()
        runtime.spawn(consume_pushes(settings, runtime.metadata, runtime.bus, wake))
        reaper = Reaper(
            runtime.metadata,
            runtime.store,
            settings,
            runtime.owner,
            metrics=runtime.metrics.group(ReaperMetrics),
        )
        log.info("reaper_ready", every_seconds=settings.retention_interval_seconds)
        await _rounds(reaper, runtime.relay, wake, stop)


async def _rounds(
    reaper: Reaper, relay: OutboxRelay, wake: asyncio.Event, stop: asyncio.Event
) -> None:
    """A round, then a pause until the next is due or a push makes a space due; until stopped."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            wake.clear()
            # A stop does not wait for the round: every step of it is a claim or a
            # transaction that another round picks up again (shared/metadata/blobs.py).
            rounding = asyncio.ensure_future(reaper.round())
            await asyncio.wait([rounding, stopping], return_when=asyncio.FIRST_COMPLETED)
            if not rounding.done():
                rounding.cancel()
                await asyncio.gather(rounding, return_exceptions=True)
                break
            if rounding.exception() is not None:  # a bad round must not end the service
                log.error("reaper_round_failed", exc_info=rounding.exception())
            relay.notify()
            waking = asyncio.ensure_future(wake.wait())
            await asyncio.wait(
                [stopping, waking],
                timeout=reaper.pause_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waking.cancel()
    finally:
        stopping.cancel()


class Reaper:
    def __init__(
        self,
        metadata: ReaperMetadata,
        store: BlobStore,
        settings: Settings,
        owner: str,
        *,
        metrics: ReaperMetrics | None = None,
    ) -> None:
        """``metrics`` are the process's; without them the reaper counts into its own."""
        self.metrics = metrics or ReaperMetrics(CollectorRegistry())
        self.metadata = metadata
        self.store = store
        self.owner = owner
        self.every = dt.timedelta(seconds=settings.retention_interval_seconds)
        self.debounce = dt.timedelta(seconds=settings.retention_debounce_seconds)
        self.events = EventSource(
            f"{settings.public_url}/reaper", settings.public_host, REAPER_ACCOUNT
        )
        self._next_staging_sweep = 0.0

    @property
    def pause_seconds(self) -> float:
        """Between rounds: short enough to notice a due space within its debounce."""
        return max(0.2, min(self.every.total_seconds(), self.debounce.total_seconds(), 60.0))

    async def round(self) -> None:
        """Each space whose run is due and unclaimed, then every blob nothing refers to any
        more (a link removed through the API, a claim another reaper left), then uploads."""
        for space in await self.metadata.spaces.all():
            started = await self.metadata.runs.claim(
                space.id, self.owner, self.every, self.debounce, RUN_LEASE
            )
            if started is None:
                continue
            try:
                await self._apply(space)
            finally:
                await self.metadata.runs.finish(space.id, self.owner, started)
        collected = await collect_blobs(self.metadata, self.store)
        self.metrics.collected(collected.blobs_removed, collected.bytes_freed)
        if collected.blobs_removed or collected.failed:
            log.info(
                "blobs_collected",
                blobs_removed=collected.blobs_removed,
                bytes_freed=collected.bytes_freed,
                failed=collected.failed,
            )
        await self._abandoned_uploads()
        if time.monotonic() >= self._next_staging_sweep:
            # Listing all staged bytes is not worth doing every round for day-old leftovers.
            await self._abandoned_staging()
            self._next_staging_sweep = time.monotonic() + STAGING_SWEEP_EVERY_SECONDS

    async def _apply(self, space: SpaceRecord) -> None:
        space_id = space.id
        try:
            policy = RetentionPolicy.parse(space.retention or {})
        except PolicyInvalid:
            log.warning("retention_policy_invalid", space=space_id)
            self.metrics.runs.labels("policy_invalid").inc()
            return
        started = time.monotonic()
        try:
            report = await run_retention(
                self.metadata,
                self.store,
                space_id,
                policy,
                now=dt.datetime.now(dt.UTC),
                dry_run=False,
                events=self.events,
            )
            document = report.document()
            completed = CloudEvent("retention.completed", self.events.source, space_id, document)
            await self.metadata.outbox.add([completed])
        except Exception:
            self.metrics.runs.labels("failed").inc()
            raise
        finally:
            self.metrics.run_duration.observe(time.monotonic() - started)
        self.metrics.runs.labels("applied").inc()
        self.metrics.tags_removed.inc(len(report.removed))
        self.metrics.manifests_removed.inc(len(report.manifests))
        self.metrics.collected(report.blobs_removed, report.bytes_freed)
        log.info(
            "retention_applied",
            space=space_id,
            tags_removed=len(report.removed),
            manifests_removed=len(report.manifests),
            blobs_removed=report.blobs_removed,
            bytes_freed=report.bytes_freed,
        )

    async def _abandoned_uploads(self) -> None:
        cutoff = dt.datetime.now(dt.UTC) - ABANDONED_AFTER
        token = uuid.uuid4().hex
        for _ in range(1000):
            upload = await self.metadata.uploads.claim_abandoned(
                cutoff, token, dt.timedelta(minutes=10)
            )
            if upload is None:
                return
            with contextlib.suppress(Exception):
                await self.store.abort_upload(upload.id, upload.storage)
            await self.metadata.uploads.delete_claimed(upload.id, token)
            log.info("abandoned_upload_removed", upload=upload.id, repository=upload.repository)

    async def _abandoned_staging(self) -> None:
        """Staged bytes that no upload session owns and nothing wrote for a day: what a
        registry killed in the middle of a monolithic upload (which has no session) left."""
        stale = await self.store.stale_staging(dt.datetime.now(dt.UTC) - ABANDONED_AFTER)
        for upload_id in stale:
            if await self.metadata.uploads.get(upload_id) is not None:
                continue  # a session's own bytes: it is removed with its session
            await self.store.discard_staging(upload_id)
            log.info("abandoned_staging_removed", upload=upload_id)
