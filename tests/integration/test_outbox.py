"""The outbox and its relay against a real MongoDB-wire server: claims are exclusive, lapse
with their lease, resume for their owner, and what the bus does not confirm stays."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence

import pytest

from shared.events.bus import BusUnavailable, InProcessBus, Outgoing
from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.events.outbox import NEVER, Outbox, OutboxEntry
from shared.events.relay import OutboxRelay
from shared.metadata.store import MetadataStore

LEASE = dt.timedelta(seconds=30)


@pytest.fixture
async def metadata(mongo_url: str) -> AsyncIterator[MetadataStore]:
    store = MetadataStore.connect(mongo_url)
    await store.ensure_indexes()
    yield store
    await store.close()


def _collecting_bus() -> tuple[InProcessBus, list[Outgoing]]:
    """A bus that keeps every image event published on it, in a list."""
    delivered: list[Outgoing] = []
    bus = InProcessBus()

    async def collect(message: Outgoing) -> None:
        delivered.append(message)

    bus.subscribe(EVENTS_EXCHANGE, "image.*", collect)
    return bus, delivered


async def _five_held_by_a(metadata: MetadataStore) -> Outbox:
    """Five entries, claimed by owner "a" through the store's outbox (returned)."""
    outbox = metadata.outbox
    for event in _events(5):
        await outbox.add([event])
    assert len(await outbox.claim("a", LEASE, 10)) == 5
    return outbox


def _events(count: int) -> list[CloudEvent]:
    return [CloudEvent("image.pushed", "test", f"subject-{i}", {"i": i}) for i in range(count)]


async def test_concurrent_claims_never_share_an_entry(metadata: MetadataStore) -> None:
    outbox = metadata.outbox
    for event in _events(120):
        await outbox.add([event])
    claims = await asyncio.gather(*(outbox.claim(f"owner-{n}", LEASE, 50) for n in range(4)))
    ids = [entry.id for claim in claims for entry in claim]
    assert len(ids) == len(set(ids))
    assert len(ids) <= 120
    rest = await outbox.claim("owner-late", LEASE, 500)
    assert len(ids) + len(rest) == 120


async def test_a_lapsed_lease_frees_entries_and_an_owner_resumes_its_own(
    metadata: MetadataStore,
) -> None:
    outbox = await _five_held_by_a(metadata)
    assert await outbox.claim("b", LEASE, 10) == []
    assert await outbox.claim("a", LEASE, 10) == []  # held, by a relay publishing them
    restarted = Outbox(metadata.db, metadata.transaction)  # "a" again, under the same name
    assert len(await restarted.claim("a", dt.timedelta(seconds=-1), 10)) == 5  # lapsed at once
    assert len(await outbox.claim("b", LEASE, 10)) == 5


async def test_what_a_failed_round_left_held_goes_out_in_the_next_round_not_at_lease_end(
    metadata: MetadataStore,
) -> None:
    """A round's delete fails (the metadata server went away) after some of its events went
    out and others were refused: the refused ones are released all the same, the confirmed
    ones stay held by the relay, and its next round takes both back (the confirmed published
    again: at-least-once) instead of leaving them until the lease lapses."""
    refused_once: set[str] = set()
    delivered: list[str] = []

    class RefusingOddOnce:
        async def publish(self, message: Outgoing) -> None:
            if message.message_id.endswith("odd") and message.message_id not in refused_once:
                refused_once.add(message.message_id)
                raise BusUnavailable("broker gone")
            delivered.append(message.message_id)

        async def close(self) -> None:
            pass

    class DeleteFailsOnce(Outbox):
        failures = 1

        async def done(self, owner: str, ids: Sequence[str]) -> None:
            if self.failures:
                self.failures -= 1
                raise ConnectionError("metadata server gone")
            await super().done(owner, ids)

    outbox = DeleteFailsOnce(metadata.db, metadata.transaction)
    events = [
        CloudEvent("image.pushed", "test", f"subject-{n}", {}, id=f"event-{n}-{kind}")
        for n, kind in enumerate(["even", "odd", "even", "odd"])
    ]
    for event in events:
        await outbox.add([event])
    relay = OutboxRelay(outbox, RefusingOddOnce(), "relay", lease=dt.timedelta(minutes=10))
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert await metadata.db.outbox.count_documents({"claimed_by": None}) == 2  # released
    assert await metadata.db.outbox.count_documents({"claimed_by": "relay"}) == 2  # held
    assert await relay.relay_once() == 4
    assert sorted(set(delivered)) == sorted(event.id for event in events)
    assert await metadata.db.outbox.count_documents({}) == 0


async def test_an_unreadable_entry_is_left_held_and_the_others_go_out(
    metadata: MetadataStore,
) -> None:
    """An entry no relay can read (written by hand, or by a version that wrote it otherwise)
    stays in the outbox under its lease; the entries around it are published."""
    bus, delivered = _collecting_bus()
    events = _events(2)
    await metadata.outbox.add([events[0]])
    unclaimed = {"claimed_by": None, "claimed_until": NEVER, "attempts": 0}
    await metadata.db.outbox.insert_many(
        [
            {"_id": "no-time-no-message", **unclaimed},
            {  # a number, which bytes() would turn into that many zeros
                "_id": "body-a-number",
                "created_at": dt.datetime.now(dt.UTC),
                **{"id": "m", "exchange": EVENTS_EXCHANGE, "routing_key": "r", "type": "t"},
                "body": 50_000_000,
                **unclaimed,
            },
        ]
    )
    await metadata.outbox.add([events[1]])
    relay = OutboxRelay(metadata.outbox, bus, "relay")
    assert await relay.relay_once() == 2
    assert await relay.relay_once() == 0
    await asyncio.sleep(0.05)
    assert sorted(m.message_id for m in delivered) == sorted(e.id for e in events)
    remaining = await metadata.db.outbox.find({}, {"claimed_by": 1, "attempts": 1}).to_list()
    assert sorted(remaining, key=lambda doc: doc["_id"]) == [  # claimed once: not every round
        {"_id": "body-a-number", "claimed_by": "relay", "attempts": 1},
        {"_id": "no-time-no-message", "claimed_by": "relay", "attempts": 1},
    ]
    # The outbox's age reads the entry without a time as the oldest of all, not as an error.
    assert await metadata.outbox.oldest() == NEVER


async def test_a_claim_the_server_made_but_the_relay_never_heard_of_goes_out_next_round(
    metadata: MetadataStore,
) -> None:
    class AnswerLost(Outbox):
        lost = 1

        async def claim(self, owner: str, lease: dt.timedelta, limit: int) -> list[OutboxEntry]:
            claimed = await super().claim(owner, lease, limit)
            if self.lost:
                self.lost -= 1
                raise ConnectionError("connection reset after the commit")
            return claimed

    outbox = AnswerLost(metadata.db, metadata.transaction)
    for event in _events(3):
        await outbox.add([event])
    bus, delivered = _collecting_bus()
    relay = OutboxRelay(outbox, bus, "relay", lease=dt.timedelta(minutes=10))
    with pytest.raises(ConnectionError):
        await relay.relay_once()
    assert await relay.relay_once() == 3  # taken back at once, not after ten minutes
    await asyncio.sleep(0.05)
    assert len(delivered) == 3


async def test_a_resuming_owner_takes_what_it_held_and_what_lapsed_oldest_first(
    metadata: MetadataStore,
) -> None:
    outbox = metadata.outbox
    older, newer = _events(2)
    await outbox.add([older])
    assert len(await outbox.claim("a", LEASE, 10)) == 1  # "a" holds the older entry
    await outbox.add([newer])
    restarted = Outbox(metadata.db, metadata.transaction)  # "a" again, under the same name
    [first] = await restarted.claim("a", LEASE, 1)
    assert [message.id for message in first.messages] == [older.id]


async def test_a_restarted_owner_takes_back_all_it_held_a_batch_at_a_time(
    metadata: MetadataStore,
) -> None:
    await _five_held_by_a(metadata)
    restarted = Outbox(metadata.db, metadata.transaction)  # "a" again, under the same name
    taken = []
    for _ in range(4):
        batch = await restarted.claim("a", LEASE, 2)
        taken.append(len(batch))
        await restarted.done("a", [entry.id for entry in batch])  # published
    assert taken == [2, 2, 1, 0]


async def test_the_relay_deletes_confirmed_entries_and_keeps_the_rest(
    metadata: MetadataStore,
) -> None:
    bus, delivered = _collecting_bus()
    events = _events(30)
    await metadata.outbox.add(events[:20])  # one entry of 20, as a group commit writes
    for event in events[20:]:
        await metadata.outbox.add([event])
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

    for event in _events(10):
        await metadata.outbox.add([event])
    flaky = OutboxRelay(metadata.outbox, FlakyBus(), "flaky")
    with pytest.raises(BusUnavailable):
        await flaky.relay_once()
    assert await metadata.outbox.pending() == 5
    # What failed was released, not left to its lease: another relay takes it at once.
    assert len(await Outbox(metadata.db, metadata.transaction).claim("other", LEASE, 10)) == 5


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


async def test_an_entry_publishes_its_events_in_order_and_again_when_one_failed(
    metadata: MetadataStore,
) -> None:
    """Events recorded together are published in the order given; when the bus refuses one,
    the entry stays and all of it is published again (at-least-once, never lost)."""
    sent: list[str] = []

    class RefusesOnce:
        def __init__(self) -> None:
            self.refused = False

        async def publish(self, message: Outgoing) -> None:
            if len(sent) == 2 and not self.refused:
                self.refused = True
                raise BusUnavailable("broker gone")
            sent.append(message.message_id)

        async def close(self) -> None:
            pass

    events = _events(4)
    await metadata.outbox.add(events)
    relay = OutboxRelay(metadata.outbox, RefusesOnce(), "relay")
    with pytest.raises(BusUnavailable):
        await relay.relay_once()
    assert await metadata.outbox.pending() == 1
    assert await relay.relay_once() == 4
    ids = [event.id for event in events]
    assert sent == ids[:2] + ids
    assert await metadata.outbox.pending() == 0


async def test_an_entry_written_by_an_earlier_version_is_still_published(
    metadata: MetadataStore,
) -> None:
    """Entries of one event with its fields at the top of the document (before entries held
    several) are read and published as they were."""
    [event] = _events(1)
    await metadata.db.outbox.insert_one(
        {
            "_id": event.id,
            "exchange": EVENTS_EXCHANGE,
            "routing_key": event.kind,
            "type": event.type,
            "body": event.body(),
            "correlation_id": None,
            "reply_to": None,
            "created_at": dt.datetime.now(dt.UTC),
            "claimed_by": None,
            "claimed_until": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
            "attempts": 0,
        }
    )
    [entry] = await metadata.outbox.claim("relay", LEASE, 10)
    assert [m.id for m in entry.messages] == [event.id]
    assert entry.messages[0].body == event.body()


async def test_an_entry_of_one_event_keeps_the_shape_earlier_relays_read(
    metadata: MetadataStore,
) -> None:
    """During an upgrade a relay of the earlier version may still run: entries of one event
    (most of them) keep that version's shape, fields at the top; several events make one
    entry of ``messages``."""
    one, *two = _events(3)
    await metadata.outbox.add([one])
    await metadata.outbox.add(two)
    docs = [doc async for doc in metadata.db.outbox.find({}).sort("created_at", 1)]
    assert docs[0]["exchange"] == EVENTS_EXCHANGE and docs[0]["id"] == one.id
    assert bytes(docs[0]["body"]) == one.body() and "messages" not in docs[0]
    assert [m["id"] for m in docs[1]["messages"]] == [e.id for e in two]
    entries = await metadata.outbox.claim("relay", LEASE, 10)
    assert [[m.id for m in e.messages] for e in entries] == [[one.id], [e.id for e in two]]


async def test_a_claim_is_held_while_a_slow_broker_confirms_the_entry(
    metadata: MetadataStore,
) -> None:
    """An entry whose events take longer than the lease to publish stays its relay's: a
    second relay finds nothing to take over, and each event is published once."""
    sent: list[str] = []

    class SlowBus:
        async def publish(self, message: Outgoing) -> None:
            await asyncio.sleep(0.1)
            sent.append(message.message_id)

        async def close(self) -> None:
            pass

    events = _events(8)
    await metadata.outbox.add(events)
    lease = dt.timedelta(seconds=0.3)
    slow = OutboxRelay(metadata.outbox, SlowBus(), "slow", lease=lease)
    other = OutboxRelay(metadata.outbox, SlowBus(), "other", lease=lease)

    async def later() -> int:
        await asyncio.sleep(0.5)  # past the first lease, while the slow relay still publishes
        return await other.relay_once()

    published, taken_over = await asyncio.gather(slow.relay_once(), later())
    assert (published, taken_over) == (8, 0)
    assert sent == [event.id for event in events]
    assert await metadata.outbox.pending() == 0


async def test_an_upgrade_drops_the_index_the_claims_no_longer_read(
    metadata: MetadataStore,
) -> None:
    """An earlier version indexed ``claimed_by`` alone; every write pays for an index, and the
    compound one serves all its reads: the next start drops it, and a start after that has
    nothing to do."""
    collection = metadata.db.outbox
    await collection.create_index("claimed_by")
    assert "claimed_by_1" in await collection.index_information()
    await metadata.outbox.ensure_indexes()
    indexes = await collection.index_information()
    assert "claimed_by_1" not in indexes and "claimed_by_1__id_1" in indexes
    await metadata.outbox.ensure_indexes()
    assert (await collection.index_information()).keys() == indexes.keys()
