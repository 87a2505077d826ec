"""The outbox and its relay against a real MongoDB-wire server: claims are exclusive, lapse
with their lease, resume for their owner, and what the bus does not confirm stays."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from shared.events.bus import BusUnavailable, InProcessBus, Outgoing
from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.events.outbox import Outbox
from shared.events.relay import OutboxRelay
from shared.metadata.store import MetadataStore

LEASE = dt.timedelta(seconds=30)


@pytest.fixture
async def metadata(mongo_url: str) -> AsyncIterator[MetadataStore]:
    store = MetadataStore.connect(mongo_url)
    await store.ensure_indexes()
    yield store
    await store.close()


def _events(count: int) -> list[CloudEvent]:
    return [CloudEvent("image.pushed", "test", f"subject-{i}", {"i": i}) for i in range(count)]


async def test_concurrent_claims_never_share_an_entry(metadata: MetadataStore) -> None:
    outbox = metadata.outbox
    await outbox.add(_events(120))
    claims = await asyncio.gather(*(outbox.claim(f"owner-{n}", LEASE, 50) for n in range(4)))
    ids = [entry.id for claim in claims for entry in claim]
    assert len(ids) == len(set(ids))
    assert len(ids) <= 120
    rest = await outbox.claim("owner-late", LEASE, 500)
    assert len(ids) + len(rest) == 120


async def test_a_lapsed_lease_frees_entries_and_an_owner_resumes_its_own(
    metadata: MetadataStore,
) -> None:
    outbox = metadata.outbox
    await outbox.add(_events(5))
    assert len(await outbox.claim("a", LEASE, 10)) == 5
    assert await outbox.claim("b", LEASE, 10) == []
    assert len(await outbox.claim("a", LEASE, 10)) == 5  # "a" restarted under the same name
    assert len(await outbox.claim("a", dt.timedelta(seconds=-1), 10)) == 5  # lapsed at once
    assert len(await outbox.claim("b", LEASE, 10)) == 5


async def test_the_relay_deletes_confirmed_entries_and_keeps_the_rest(
    metadata: MetadataStore,
) -> None:
    delivered: list[Outgoing] = []
    bus = InProcessBus()

    async def collect(message: Outgoing) -> None:
        delivered.append(message)

    bus.subscribe(EVENTS_EXCHANGE, "image.*", collect)
    events = _events(30)
    await metadata.outbox.add(events)
    relay = OutboxRelay(metadata.outbox, bus, "relay")
    assert await relay.relay_once() == 30
    await asyncio.sleep(0.05)
    assert sorted(m.message_id for m in delivered) == sorted(e.id for e in events)
    assert await metadata.outbox.pending() == 0

    class FlakyBus:
        def __init__(self) -> None:
            self.calls = 0

        async def publish(self, message: Outgoing) -> None:
            self.calls += 1
            if self.calls % 2 == 0:
                raise BusUnavailable("broker gone")

        async def close(self) -> None:
            pass

    await metadata.outbox.add(_events(10))
    flaky = OutboxRelay(metadata.outbox, FlakyBus(), "flaky")
    with pytest.raises(BusUnavailable):
        await flaky.relay_once()
    assert await metadata.outbox.pending() == 5
    # What failed was released, not left to its lease: another relay takes it at once.
    assert len(await Outbox(metadata.db).claim("other", LEASE, 10)) == 5


async def test_an_event_written_in_an_aborted_transaction_is_never_published(
    metadata: MetadataStore,
) -> None:
    """The outbox entry lives or dies with the change it reports."""

    async def fail_after_writing(session: object) -> None:
        await metadata.outbox.add(_events(1), session=session)  # type: ignore[arg-type]
        raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        await metadata.transaction(fail_after_writing)
    assert await metadata.outbox.pending() == 0
