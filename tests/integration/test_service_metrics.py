"""Metrics after real work: a builder run alone serves its builds on a port of its own, a
reaper alone its retention runs and collections, and the registry's /metrics shows the
outbox its relay drains; the outbox's backlog and failed publishes are read from a real
MongoDB-wire server."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aio_pika
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from services.builder.main import QUEUE, _broker_queue_depth
from services.builder.worker import BuildMetrics
from shared.events.bus import BusUnavailable, InProcessBus, Outgoing
from shared.events.envelope import CloudEvent
from shared.metadata.store import MetadataStore
from shared.metrics import ProcessMetrics
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.support.accounts import Admin
from tests.support.amqp import AMQP_URL, fresh_vhost
from tests.support.builds import build_over_http, push_base_image, upload_package, zip_of
from tests.support.oci import Client
from tests.support.processes import (
    Registry,
    Service,
    ServiceProcess,
    free_port,
    start_build_stack,
    start_reaper,
)

DEPTH = "spacedock_build_queue_depth"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    response = requests.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def eventually(url: str, holds: Callable[[Samples], bool], within: float = 60) -> Samples:
    deadline = time.monotonic() + within
    samples = scrape(url)
    while not holds(samples):
        assert time.monotonic() < deadline, f"never held; last scrape: {samples}"
        time.sleep(0.3)
        samples = scrape(url)
    return samples


# The builder


@pytest.fixture(scope="module")
def metered_stack(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[tuple[Registry, ServiceProcess, str]]:
    port = free_port()
    registry, builder = start_build_stack(
        tmp_path_factory.mktemp("metered-builds"),
        mongo_server.port,
        AMQP_URL,
        SPACEDOCK_METRICS_LISTEN=f"127.0.0.1:{port}",
    )
    yield registry, builder, f"http://127.0.0.1:{port}"
    builder.stop()
    registry.stop()


def test_a_builder_alone_serves_its_builds_on_a_port_of_its_own(
    metered_stack: tuple[Registry, ServiceProcess, str],
) -> None:
    registry, builder, metrics_url = metered_stack
    client = Client.for_registry(registry.url, registry.auth)
    base = f"spaces-1/metered-base-{uuid.uuid4().hex[:6]}"
    push_base_image(client, base, "1.0")
    sdi = f"metered-sdi-{uuid.uuid4().hex[:6]}"
    files = {
        "Dockerfile": f"FROM {registry.host}/{base}:1.0\nCOPY note.txt /\n",
        "note.txt": "for #{Octopus.Environment.Name}",
        "sdi.yaml": "features:\n  substitute_in_files: [note.txt]\n",
    }
    upload_package(registry, "spaces-1", f"{sdi}.1.0.0.zip", zip_of(files))
    request = {
        "sdi": {"id": sdi, "version": "1.0.0"},
        "deployment": {"id": "deployments-31", "environment": "Staging"},
    }
    built = build_over_http(registry.url, registry.auth, "spaces-1", request)
    assert built["status"] == "succeeded", (built, builder.log_tail())

    # Counted once its outcome is recorded, which is what the registry answered from.
    samples = eventually(
        metrics_url,
        lambda s: (
            sample(s, "spacedock_builds_total", status="succeeded", strategy="assembled") == 1
        ),
    )
    assert sample(samples, "spacedock_build_duration_seconds_count", status="succeeded") == 1
    assert sample(samples, "spacedock_build_features_seconds_count") == 1
    assert (sample(samples, "spacedock_build_features_seconds_sum") or 0) > 0
    assert sample(samples, "spacedock_build_queue_depth") == 0  # read from the broker
    assert sample(samples, "spacedock_outbox_publish_failures_total") == 0
    # The registry's own /metrics does not claim the builder's builds (another process).
    assert sample(scrape(registry.url), "spacedock_builds_total") is None


async def test_the_queue_depth_is_what_the_broker_holds_for_builders() -> None:
    with fresh_vhost() as url:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(QUEUE, durable=True)
            for _ in range(2):
                await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=QUEUE)
            metrics = ProcessMetrics(sample_interval=0)
            depth = metrics.group(BuildMetrics).queue_depth
            async with _broker_queue_depth(url, metrics, depth):
                assert sample(parse((await metrics.exposition()).decode()), DEPTH) == 2
                await (await channel.declare_queue(QUEUE, durable=True)).get()  # a builder took one
                assert sample(parse((await metrics.exposition()).decode()), DEPTH) == 1


# The reaper


def test_a_reaper_alone_serves_its_retention_runs_on_a_port_of_its_own(
    registry: Registry, tmp_path: Path
) -> None:
    admin = Admin(registry.url, registry.auth)
    space = admin.space("metered")
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"{space}/app"
    for n in range(1, 5):
        client.push_image(repository, f"3.0.{n}-deployments-{n}", [uuid.uuid4().bytes])
    policy = {
        "deployment_tags": {"keep_last": 1, "retain_days": 0},
        "untagged_manifests": {"retain_hours": 0},
        "gc": {"grace_minutes": 0},
    }
    admin.call("PUT", f"/spaces/{space}/retention", 200, json=policy)
    port = free_port()
    reaper = start_reaper(
        tmp_path / "reaper",
        registry,
        SPACEDOCK_RETENTION_INTERVAL_SECONDS="1",
        SPACEDOCK_METRICS_LISTEN=f"127.0.0.1:{port}",
    )
    try:
        samples = eventually(
            f"http://127.0.0.1:{port}",
            lambda s: (sample(s, "spacedock_retention_tags_removed_total") or 0) >= 3,
        )
    finally:
        reaper.stop()
    assert (sample(samples, "spacedock_retention_runs_total", outcome="applied") or 0) >= 1
    assert sample(samples, "spacedock_retention_runs_total", outcome="failed") is None
    assert (sample(samples, "spacedock_retention_run_duration_seconds_count") or 0) >= 1
    assert (sample(samples, "spacedock_retention_manifests_removed_total") or 0) >= 3
    # Each removed image had a layer and a config of its own.
    assert (sample(samples, "spacedock_gc_blobs_collected_total") or 0) >= 3
    assert (sample(samples, "spacedock_gc_bytes_collected_total") or 0) > 0
    assert client.request("GET", f"/v2/{repository}/tags/list").json()["tags"] == [
        "3.0.4-deployments-4"
    ]


# The outbox


def test_the_registrys_metrics_show_its_outbox_drained_after_pushes(
    registry: Registry, repo: str
) -> None:
    client = Client.for_registry(registry.url, registry.auth)
    before = sample(scrape(registry.url), "spacedock_outbox_published_events_total") or 0
    client.push_image(repo, "1.0", [uuid.uuid4().bytes])
    samples = eventually(
        registry.url,
        lambda s: (
            (sample(s, "spacedock_outbox_published_events_total") or 0) > before
            and sample(s, "spacedock_outbox_pending_entries") == 0
        ),
    )
    assert sample(samples, "spacedock_outbox_oldest_entry_age_seconds") == 0


@pytest.fixture
async def metadata(mongo_url: str) -> AsyncIterator[MetadataStore]:
    store = MetadataStore.connect(mongo_url)
    await store.ensure_indexes()
    yield store
    await store.close()


class RefusingBus:
    """A broker that confirms nothing."""

    async def publish(self, message: Outgoing) -> None:
        raise BusUnavailable("no broker")

    async def close(self) -> None:
        pass


async def test_the_backlog_and_failed_publishes_are_what_the_outbox_holds(
    metadata: MetadataStore,
) -> None:
    events = [CloudEvent("image.pushed", "test", f"app-{n}", {"n": n}) for n in range(3)]
    for event in events:
        await metadata.outbox.add([event])
    # The oldest has waited two minutes (a broker down since then).
    oldest = await metadata.db.outbox.find_one({}, sort=[("created_at", 1)])
    assert oldest is not None
    two_minutes_ago = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    await metadata.db.outbox.update_one(
        {"_id": oldest["_id"]}, {"$set": {"created_at": two_minutes_ago}}
    )
    process = ProcessMetrics(sample_interval=0)
    settings = Settings.from_env({})

    async with ServiceRuntime.open(
        "registry", settings, metadata=metadata, bus=RefusingBus(), metrics=process
    ) as runtime:
        with pytest.raises(BusUnavailable):
            await runtime.relay.relay_once()
        samples = parse((await process.exposition()).decode())
    assert sample(samples, "spacedock_outbox_pending_entries") == 3
    age = sample(samples, "spacedock_outbox_oldest_entry_age_seconds")
    assert age is not None and 120 <= age < 180
    assert sample(samples, "spacedock_outbox_publish_failures_total") == 3
    assert sample(samples, "spacedock_outbox_published_events_total") == 0

    async with ServiceRuntime.open(
        "registry", settings, metadata=metadata, bus=InProcessBus(), metrics=process
    ) as runtime:
        assert await runtime.relay.relay_once() == 3
        samples = parse((await process.exposition()).decode())
    assert sample(samples, "spacedock_outbox_pending_entries") == 0
    assert sample(samples, "spacedock_outbox_oldest_entry_age_seconds") == 0
    assert sample(samples, "spacedock_outbox_published_events_total") == 3
