"""The outbox relay stops when it is cancelled (a service's shutdown), even when the cancel
lands while it ends the claim renewal of a batch it has just published, or while it deletes a
batch some of whose entries it must give back."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

from pymongo.errors import PyMongoError

from shared.events.bus import BusUnavailable, Outgoing
from shared.events.outbox import OutboxEntry, OutboxMessage
from shared.events.relay import OutboxRelay

MESSAGE = OutboxMessage("m1", "events", "image.pushed", "image.pushed", b"{}", None, None)


class SlowRenewals:
    """An outbox whose renewal is a slow round trip that takes a while to clean up when cut
    short, as a driver closing its connection does."""

    def __init__(self) -> None:
        self.claims = 0

    async def claim(self, owner: str, lease: dt.timedelta, limit: int) -> list[OutboxEntry]:
        self.claims += 1
        return [OutboxEntry(f"entry-{self.claims}", (MESSAGE,))]

    async def renew(self, owner: str, ids: Sequence[str], lease: dt.timedelta) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            await asyncio.sleep(0.3)

    async def done(self, owner: str, ids: Sequence[str]) -> None:
        pass

    async def release(self, owner: str, ids: Sequence[str]) -> None:
        pass

    def resume(self, owner: str) -> None:
        pass


class SlowBus:
    async def publish(self, message: Outgoing) -> None:
        await asyncio.sleep(1.2)

    async def close(self) -> None:
        pass


async def test_a_cancel_while_the_renewal_ends_stops_the_relay() -> None:
    outbox = SlowRenewals()
    relay = OutboxRelay(
        outbox,
        SlowBus(),
        "relay",
        lease=dt.timedelta(seconds=3),
        linger=0,
    )
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(1.3)  # the batch is published; the relay waits for its renewal
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=3)
        assert done == {running} and running.cancelled()
        assert outbox.claims == 1
    finally:
        while not running.done():  # a relay that swallowed the cancel is stopped for good
            running.cancel()
            await asyncio.wait({running}, timeout=1)


class DeleteHangsReleaseFails:
    """An outbox on a metadata server that went away: its delete waits for a server to
    select, and its release gives up with an error."""

    def __init__(self) -> None:
        self.deleting = asyncio.Event()

    async def claim(self, owner: str, lease: dt.timedelta, limit: int) -> list[OutboxEntry]:
        refused = OutboxMessage("m2", "events", "image.pushed", "refuse", b"{}", None, None)
        return [OutboxEntry("entry-1", (MESSAGE,)), OutboxEntry("entry-2", (refused,))]

    async def renew(self, owner: str, ids: Sequence[str], lease: dt.timedelta) -> None:
        pass

    async def done(self, owner: str, ids: Sequence[str]) -> None:
        self.deleting.set()
        await asyncio.sleep(30)

    async def release(self, owner: str, ids: Sequence[str]) -> None:
        raise PyMongoError("no server to select")

    def resume(self, owner: str) -> None:
        pass


class RefusingBus:
    async def publish(self, message: Outgoing) -> None:
        if message.type == "refuse":
            raise BusUnavailable("broker gone")

    async def close(self) -> None:
        pass


async def test_a_cancel_while_the_delete_waits_stops_the_relay_even_if_release_fails() -> None:
    """A release that fails in the shutdown's path must not turn the cancel into an error the
    relay waits out and goes on from."""
    outbox = DeleteHangsReleaseFails()
    relay = OutboxRelay(outbox, RefusingBus(), "relay", linger=0)
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(outbox.deleting.wait(), 3)
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=3)
        assert done == {running} and running.cancelled()
    finally:
        while not running.done():
            running.cancel()
            await asyncio.wait({running}, timeout=1)
