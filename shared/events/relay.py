"""The relay: publishes outbox entries with confirms, deletes them once confirmed, and keeps
going through broker and database outages (entries simply wait in MongoDB).

Its metrics (:class:`OutboxMetrics`): events published and entries not confirmed, counted
by this process's relays; the backlog (entries waiting, the age of the oldest), read from the
outbox when a scrape asks, the same on every instance since all relays share one outbox."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.errors import PyMongoError

from shared.events.bus import BusUnavailable, EventBus, Outgoing
from shared.events.outbox import OutboxEntry, OutboxMessage
from shared.metadata.ports import OutboxBacklog, OutboxQueue

log = structlog.get_logger("spacedock.events")

DEFAULT_BATCH = 200
# Longer than a batch can take to publish (each publish times out well before), so a live
# relay never has its entries claimed by another.
DEFAULT_LEASE = dt.timedelta(seconds=60)
IDLE_POLL_SECONDS = 1.0
# While entries keep coming, the relay lets them gather this long between rounds: a round
# costs its claim and delete round trips whatever it carries, and under a stream of pushes
# one round per commit would cost the metadata server as much as the pushes themselves
# (measured with 8 clients pushing: 20 ms between rounds left the embedded server 4.9 ms of
# its time per push, 100 ms 4.0 ms, and 250 ms no less). A lone commit is relayed at once.
LINGER_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 5.0


class OutboxMetrics:
    """The outbox's metrics, one group per process (``shared.metrics.ProcessMetrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "spacedock_outbox_pending_entries",
            "Outbox entries not yet published, by every instance",
            registry=registry,
        )
        self.oldest_age = Gauge(
            "spacedock_outbox_oldest_entry_age_seconds",
            "Age of the oldest outbox entry not yet published (0 when none waits)",
            registry=registry,
        )
        self.published = Counter(
            "spacedock_outbox_published_events",
            "Events this process's relays published and the broker confirmed",
            registry=registry,
        )
        self.publish_failures = Counter(
            "spacedock_outbox_publish_failures",
            "Outbox entries whose publish was not confirmed (published again later)",
            registry=registry,
        )

    async def sample(self, outbox: OutboxBacklog) -> None:
        """Read the backlog now (at a scrape)."""
        pending = await outbox.pending()
        oldest = await outbox.oldest()
        # The count is MongoDB's own, which may lag (after an unclean shutdown): none is
        # pending when there is no oldest entry.
        self.pending.set(pending if oldest is not None else 0)
        age = 0.0 if oldest is None else (dt.datetime.now(dt.UTC) - oldest).total_seconds()
        self.oldest_age.set(max(age, 0.0))


class OutboxRelay:
    def __init__(
        self,
        outbox: OutboxQueue,
        bus: EventBus,
        owner: str,
        *,
        batch: int = DEFAULT_BATCH,
        lease: dt.timedelta = DEFAULT_LEASE,
        idle_poll: float = IDLE_POLL_SECONDS,
        linger: float = LINGER_SECONDS,
        metrics: OutboxMetrics | None = None,
    ) -> None:
        """``metrics`` are the process's; without them the relay counts into its own."""
        self.outbox = outbox
        self.bus = bus
        self.owner = owner
        self.batch = batch
        self.lease = lease
        self.idle_poll = idle_poll
        self.linger = linger
        self.metrics = metrics or OutboxMetrics(CollectorRegistry())
        self._wake = asyncio.Event()
        self.published = 0

    def notify(self) -> None:
        """New entries were committed: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until cancelled."""
        backoff = 0.1
        while True:
            # Cleared before the claim, so a commit notified during it is not waited out.
            self._wake.clear()
            try:
                count = await self._relay_batch()
            except Exception as exc:
                if isinstance(exc, (BusUnavailable, PyMongoError)):
                    log.warning("outbox_relay_waiting", error=str(exc)[:300], retry_in=backoff)
                else:  # a bug must not end the relay: its entries would wait for a restart
                    log.exception("outbox_relay_failed", retry_in=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            backoff = 0.1
            if count == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll)
            elif count < self.batch:
                await asyncio.sleep(self.linger)

    async def relay_once(self) -> int:
        """Publish one batch; the number of events published."""
        before = self.published
        await self._relay_batch()
        return self.published - before

    async def _relay_batch(self) -> int:
        """Publish one batch of entries; the number of entries it claimed."""
        try:
            entries = await self.outbox.claim(self.owner, self.lease, self.batch)
        except BaseException:
            self.outbox.resume(self.owner)  # the server may have committed the claim
            raise
        if not entries:
            return 0
        return await self._publish_claimed(entries)

    async def _publish_claimed(self, entries: list[OutboxEntry]) -> int:
        # A slow broker may take longer than the lease to confirm a batch (an entry can hold
        # many events): the claim is renewed meanwhile, so no other relay takes the entries
        # over and publishes them a second time.
        keeper = asyncio.create_task(self._keep_claimed([e.id for e in entries]))
        try:
            results = await asyncio.gather(
                *(self._publish_entry(entry) for entry in entries), return_exceptions=True
            )
        finally:
            keeper.cancel()
            # Not suppress(CancelledError): that would also swallow a cancel of the relay
            # itself (a shutdown) landing here, and it would go on relaying.
            await asyncio.gather(keeper, return_exceptions=True)
        confirmed = [e for e, r in zip(entries, results, strict=True) if r is None]
        failed = [e.id for e, r in zip(entries, results, strict=True) if r is not None]
        try:
            await self.outbox.done(self.owner, [e.id for e in confirmed])
            if failed:
                await self.outbox.release(self.owner, failed)
        except Exception:
            # Entries this relay still holds: its next claim takes them back instead of their
            # lease lapsing first, and what the bus refused goes back even though the delete
            # failed (a failure of that is the one already on its way out). A cancel (a
            # shutdown) is let through as it is: the lease, or the next start, covers them.
            self.outbox.resume(self.owner)
            if failed:
                with contextlib.suppress(Exception):
                    await self.outbox.release(self.owner, failed)
            raise
        published = sum(len(e.messages) for e in confirmed)
        self.published += published
        self.metrics.published.inc(published)
        if failed:
            self.metrics.publish_failures.inc(len(failed))
            first = next(r for r in results if r is not None)
            raise BusUnavailable(f"{len(failed)} of {len(entries)} not confirmed: {first}")
        return len(entries)

    async def _keep_claimed(self, ids: list[str]) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            try:
                await self.outbox.renew(self.owner, ids, self.lease)
            except Exception as exc:  # tried again at the next third of the lease
                log.warning("outbox_claim_renewal_failed", error=str(exc)[:200])

    async def _publish_entry(self, entry: OutboxEntry) -> None:
        """Its events in their order; an entry not wholly confirmed is published again
        (at-least-once)."""
        for message in entry.messages:
            await self._publish(message)

    async def _publish(self, event: OutboxMessage) -> None:
        message = Outgoing(
            exchange=event.exchange,
            routing_key=event.routing_key,
            body=event.body,
            message_id=event.id,
            type=event.type,
            correlation_id=event.correlation_id,
        )
        await self.bus.publish(message)
        if event.reply_to:
            # The default exchange routes by queue name: the requester's reply queue.
            await self.bus.publish(
                Outgoing(
                    exchange="",
                    routing_key=event.reply_to,
                    body=event.body,
                    message_id=event.id,
                    type=event.type,
                    correlation_id=event.correlation_id,
                )
            )
