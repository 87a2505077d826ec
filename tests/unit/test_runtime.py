"""shared/runtime.py: what a service opens it closes, newest first and after its background
work; what it was given it leaves open; a process stops all its services on a signal or on
the first failure, and reports that failure."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator

import pytest

from shared import runtime as runtime_module
from shared.events.bus import AmqpBus, InProcessBus, Outgoing
from shared.metadata.store import MetadataStore
from shared.runtime import (
    RuntimeUnconfigured,
    ServiceRuntime,
    metadata_url,
    open_bus,
    owner_name,
    run_until_stopped,
    stop_on_signals,
)
from shared.settings import Settings

SETTINGS = Settings.from_env({"SPACEDOCK_MONGO_URL": "mongodb://metadata.invalid/spacedock"})


class FakeMetadata:
    """What the runtime touches of the metadata: its outbox (for the relay) and close."""

    def __init__(self, journal: list[str]) -> None:
        self.outbox = object()
        self.journal = journal

    async def close(self) -> None:
        self.journal.append("metadata closed")


class FakeStore:
    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    async def close(self) -> None:
        self.journal.append("store closed")


class FakeBus:
    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    async def publish(self, message: Outgoing) -> None:
        raise AssertionError("nothing is published in these tests")

    async def close(self) -> None:
        self.journal.append("bus closed")


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Metadata, blob store and bus as the runtime opens them, recording what happens."""
    entries: list[str] = []

    def connect(url: str) -> FakeMetadata:
        entries.append(f"metadata connected to {url}")
        return FakeMetadata(entries)

    async def open_blob_store(settings: Settings) -> FakeStore:
        entries.append("store opened")
        return FakeStore(entries)

    def bus(amqp_url: str | None) -> FakeBus:
        entries.append("bus chosen")
        return FakeBus(entries)

    monkeypatch.setattr(MetadataStore, "connect", connect)
    monkeypatch.setattr(runtime_module, "open_blob_store", open_blob_store)
    monkeypatch.setattr(runtime_module, "open_bus", bus)
    return entries


async def _until_cancelled(journal: list[str], name: str, started: asyncio.Event) -> None:
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        journal.append(f"{name} cancelled")


@contextlib.asynccontextmanager
async def _resource(journal: list[str], name: str) -> AsyncIterator[str]:
    yield name
    journal.append(f"{name} left")


async def test_teardown_stops_background_work_then_closes_newest_first(
    journal: list[str],
) -> None:
    started = asyncio.Event()
    async with ServiceRuntime.open("reaper", SETTINGS, blobs=True) as runtime:
        assert journal == [
            "metadata connected to mongodb://metadata.invalid/spacedock",
            "store opened",
            "bus chosen",
        ]
        journal.clear()
        runtime.spawn(_until_cancelled(journal, "first task", asyncio.Event()))
        assert await runtime.enter(_resource(journal, "client")) == "client"
        runtime.on_close(lambda: journal.append("callback called"))
        runtime.spawn(_until_cancelled(journal, "last task", started))
        await started.wait()
        assert journal == []
    assert journal == [
        "last task cancelled",
        "callback called",
        "client left",
        "first task cancelled",
        "bus closed",
        "store closed",
        "metadata closed",
    ]


async def test_what_the_caller_gave_is_used_and_left_open(journal: list[str]) -> None:
    given: list[str] = []
    metadata, store, bus = FakeMetadata(given), FakeStore(given), FakeBus(given)
    async with ServiceRuntime.open(
        "registry",
        SETTINGS,
        blobs=True,
        metadata=metadata,  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        bus=bus,
    ) as runtime:
        given_objects: tuple[object, ...] = (metadata, store, bus)
        assert (runtime.metadata, runtime.store, runtime.bus) == given_objects
        assert runtime.relay.bus is bus and runtime.relay.outbox is metadata.outbox
    assert journal == []
    assert given == []


async def test_a_failure_while_opening_closes_what_was_already_open(
    journal: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable(settings: Settings) -> FakeStore:
        raise OSError("storage unreachable")

    monkeypatch.setattr(runtime_module, "open_blob_store", unreachable)
    with pytest.raises(OSError, match="storage unreachable"):
        async with ServiceRuntime.open("reaper", SETTINGS, blobs=True):
            raise AssertionError("not reached")
    assert journal == [
        "metadata connected to mongodb://metadata.invalid/spacedock",
        "metadata closed",
    ]


async def test_a_service_without_blobs_has_no_store(journal: list[str]) -> None:
    async with ServiceRuntime.open("builder", SETTINGS) as runtime:
        with pytest.raises(RuntimeUnconfigured, match="builder was opened without blobs"):
            runtime.store  # noqa: B018
    assert "store opened" not in journal


async def test_no_metadata_url_is_refused_before_anything_opens(journal: list[str]) -> None:
    with pytest.raises(RuntimeUnconfigured, match=r"reaper needs settings\.mongo_url"):
        async with ServiceRuntime.open("reaper", Settings.from_env({})):
            raise AssertionError("not reached")
    assert journal == []


async def test_the_owner_names_service_host_and_instance(journal: list[str]) -> None:
    host = socket.gethostname()
    async with ServiceRuntime.open("builder", SETTINGS) as runtime:
        assert runtime.owner == f"builder@{host}:{os.getpid()}"
        assert runtime.relay.owner == runtime.owner
    async with ServiceRuntime.open("registry", SETTINGS, instance=5000) as runtime:
        assert runtime.owner == f"registry@{host}:5000"
    assert owner_name("reaper") == f"reaper@{host}:{os.getpid()}"


async def test_rabbitmq_when_configured_else_the_in_process_bus() -> None:
    amqp = open_bus("amqp://guest:guest@rabbitmq.invalid/")
    assert isinstance(amqp, AmqpBus)
    await amqp.close()  # never connected: nothing to close, no error
    assert isinstance(open_bus(None), InProcessBus)


async def test_a_configured_metadata_url_starts_no_server() -> None:
    async with metadata_url(SETTINGS) as settings:
        assert settings is SETTINGS


async def test_services_run_until_stopped() -> None:
    stop, both_started = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    async def service(name: str, stop: asyncio.Event) -> None:
        ran.append(f"{name} started")
        if len(ran) == 2:
            both_started.set()
        await stop.wait()
        ran.append(f"{name} stopped")

    running = asyncio.ensure_future(
        run_until_stopped([lambda s: service("one", s), lambda s: service("two", s)], stop)
    )
    await both_started.wait()
    assert not running.done()
    stop.set()
    await running
    assert sorted(ran) == ["one started", "one stopped", "two started", "two stopped"]


async def test_the_first_failure_stops_the_others_and_is_raised() -> None:
    stop = asyncio.Event()
    stopped: list[str] = []

    async def failing(stop: asyncio.Event) -> None:
        raise OSError("address already in use")

    async def healthy(stop: asyncio.Event) -> None:
        await stop.wait()
        stopped.append("healthy")

    with pytest.raises(OSError, match="address already in use"):
        await run_until_stopped([healthy, failing], stop)
    assert stop.is_set()
    assert stopped == ["healthy"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_stop_signal_sets_the_stop_event_only_inside_the_block(signum: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with stop_on_signals(stop):
        os.kill(os.getpid(), signum)
        await asyncio.wait_for(stop.wait(), 10)
    # The handlers are gone: the loop no longer claims the signal.
    assert not loop.remove_signal_handler(signum)
