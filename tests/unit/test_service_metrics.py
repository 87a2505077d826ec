"""Metrics of every service, without a network beyond loopback: one process's metrics are
shared by its services and sampled at scrape time; the worker and the reaper count what they
did; a builder or reaper alone serves them on a port of its own (or goes on without it)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from services.builder.build import BuildEnvironment, BuildOutcome
from services.builder.main import ROUTING_KEY, _consume_in_process
from services.builder.registry_client import RegistryClient
from services.builder.worker import BuildMetrics, BuildWorker, Command
from services.reaper import main as reaper_main
from services.reaper.main import Reaper, ReaperMetrics
from services.registry.api import health
from services.registry.app import create_app
from services.registry.keys import metrics_key
from shared.builds.errors import DockerfileFailed
from shared.events.bus import InProcessBus, Outgoing
from shared.events.envelope import COMMANDS_EXCHANGE
from shared.garbage import Collected
from shared.metrics import ProcessMetrics, metrics_address, serve_metrics
from shared.retention_run import RetentionReport
from shared.settings import Settings, SettingsError
from tests.support.fakes.builder import failing, succeeding
from tests.support.fakes.builds import InMemoryBuildMetadata
from tests.support.fakes.clock import FakeClock
from tests.support.fakes.metadata import InMemoryMetadata, reaper_view
from tests.support.fakes.storage import InMemoryBlobStore

BUILT = BuildOutcome(
    "registry.test/spaces-2/api:3.1.0-deployments-4", "sha256:" + "e" * 64, "docker"
)
ENVIRONMENT = BuildEnvironment(
    service=RegistryClient("http://registry.test", "spacedock-builder", "never-used"),
    registry_url="http://registry.test",
    public_host="registry.test",
    registry_host="registry.test",
    docker=None,
)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# One process's metrics


class Ticks:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry


def test_a_group_is_made_once_per_process() -> None:
    metrics = ProcessMetrics()
    assert metrics.group(Ticks) is metrics.group(Ticks)
    assert metrics.group(Ticks).registry is metrics.registry
    assert ProcessMetrics().group(Ticks) is not metrics.group(Ticks)


async def test_of_the_samplers_of_one_name_the_first_still_present_runs_at_each_scrape() -> None:
    metrics = ProcessMetrics(sample_interval=0)
    ran: list[str] = []

    def sampler(label: str) -> Any:
        async def sample() -> None:
            ran.append(label)

        return sample

    remove_registry = metrics.add_sampler("outbox", sampler("registry's"))
    metrics.add_sampler("outbox", sampler("builder's"))
    metrics.add_sampler("queue", sampler("queue"))
    await metrics.exposition()
    assert sorted(ran) == ["queue", "registry's"]
    ran.clear()
    remove_registry()  # the registry stopped first: the builder's reads the outbox now
    await metrics.exposition()
    assert sorted(ran) == ["builder's", "queue"]


async def test_a_sampler_that_fails_leaves_the_rest_of_the_scrape_intact() -> None:
    metrics = ProcessMetrics()
    counted = metrics.group(BuildMetrics)
    counted.builds.labels("succeeded", "assembled").inc()

    async def broken() -> None:
        raise ConnectionError("the broker is away")

    metrics.add_sampler("build_queue", broken)
    text = (await metrics.exposition()).decode()
    assert 'spacedock_builds_total{status="succeeded",strategy="assembled"} 1.0' in text


async def test_the_registrys_metrics_show_what_the_other_services_of_its_process_record() -> None:
    """``spacedock serve``: one ProcessMetrics for the three services, on the registry's
    /metrics."""
    shared = ProcessMetrics()
    app = create_app(Settings.from_env({}), metrics=shared)
    shared.group(ReaperMetrics).runs.labels("applied").inc()
    shared.group(BuildMetrics).builds.labels("failed", "none").inc()
    assert app[metrics_key].process is shared

    response = await health.metrics(make_mocked_request("GET", "/metrics", app=app))
    assert response.body is not None
    assert isinstance(response.body, bytes)
    text = response.body.decode()
    assert 'spacedock_retention_runs_total{outcome="applied"} 1.0' in text
    assert 'spacedock_builds_total{status="failed",strategy="none"} 1.0' in text
    assert "# TYPE spacedock_http_requests_total counter" in text  # the registry's own, beside


# SPACEDOCK_METRICS_LISTEN


def test_builder_and_reaper_alone_serve_on_ports_of_their_own_by_default() -> None:
    for service in ("builder", "reaper"):
        settings = Settings.from_env({}, service=service)
        assert metrics_address(settings, service) == (
            "127.0.0.1",
            {"builder": 9102, "reaper": 9103}[service],
        )


@pytest.mark.parametrize(
    ("given", "address"),
    [("0.0.0.0:9200", ("0.0.0.0", 9200)), ("[::1]:0", ("::1", 0)), ("none", None)],
)
def test_the_metrics_address_is_the_operators_when_given(
    given: str, address: tuple[str, int] | None
) -> None:
    settings = Settings.from_env({"SPACEDOCK_METRICS_LISTEN": given}, service="reaper")
    assert metrics_address(settings, "reaper") == address


@pytest.mark.parametrize("given", ["9102", "localhost:", "host:99999", "host:\uff19\uff11"])
def test_a_metrics_address_that_is_not_host_port_is_refused_by_name(given: str) -> None:
    with pytest.raises(SettingsError, match="SPACEDOCK_METRICS_LISTEN"):
        Settings.from_env({"SPACEDOCK_METRICS_LISTEN": given}, service="builder")


async def test_a_service_alone_serves_its_metrics_over_http() -> None:
    metrics = ProcessMetrics()
    metrics.group(ReaperMetrics).tags_removed.inc(3)
    async with serve_metrics(metrics, ("127.0.0.1", 0)) as port:
        assert port is not None
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            assert "spacedock_retention_tags_removed_total 3.0" in await response.text()


async def test_a_port_taken_leaves_the_service_running_without_metrics() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with serve_metrics(ProcessMetrics(), ("127.0.0.1", port)) as bound:
            assert bound is None


async def test_metrics_turned_off_serve_nothing() -> None:
    async with serve_metrics(ProcessMetrics(), None) as bound:
        assert bound is None


# What the builder counts


def request_body(build_id: str) -> bytes:
    return json.dumps(
        {
            "build_id": build_id,
            "space": "spaces-2",
            "sdi": {"id": "api", "version": "3.1.0"},
            "deployment": {"id": "deployments-4"},
        }
    ).encode()


def worker(build: Any, metrics: BuildMetrics) -> BuildWorker:
    return BuildWorker(
        InMemoryBuildMetadata(),
        ENVIRONMENT,
        owner="builder-7",
        source="https://registry.test/builder",
        time_limit=30,
        build=build,
        metrics=metrics,
    )


async def test_builds_are_counted_by_final_status_and_strategy_with_their_duration() -> None:
    registry = CollectorRegistry()
    metrics = BuildMetrics(registry)
    await worker(succeeding(BUILT), metrics).handle(Command(request_body("ok-1")))
    await worker(failing(DockerfileFailed("step 2 failed")), metrics).handle(
        Command(request_body("bad-1"))
    )
    await worker(succeeding(BUILT), metrics).handle(Command(b"{not json"))

    assert value(registry, "spacedock_builds_total", status="succeeded", strategy="docker") == 1
    # The failed build and the unreadable request: neither had a strategy.
    assert value(registry, "spacedock_builds_total", status="failed", strategy="none") == 2
    assert value(registry, "spacedock_build_duration_seconds_count", status="succeeded") == 1
    # The unreadable request never ran: it has no duration.
    assert value(registry, "spacedock_build_duration_seconds_count", status="failed") == 1


# What the reaper counts


class Retention:
    """Stand-ins for the retention run and the collection of unreferenced blobs."""

    def __init__(self) -> None:
        self.failing: set[str] = set()

    async def run_retention(
        self, metadata: Any, store: Any, space: str, policy: Any, **_: Any
    ) -> RetentionReport:
        if space in self.failing:
            raise RuntimeError("the metadata went away")
        report = RetentionReport(space, False)
        report.removed = [
            {"repository": f"{space}/app", "tag": f"1.{n}-deployments-{n}", "digest": "d"}
            for n in range(3)
        ]
        report.manifests = [{"repository": f"{space}/app", "digest": "d"}]
        report.blobs_removed, report.bytes_freed = 4, 4000
        return report

    async def collect_blobs(self, metadata: Any, store: Any) -> Collected:
        return Collected(blobs_removed=2, bytes_freed=500)


async def test_retention_runs_are_counted_by_outcome_with_what_they_removed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    retention = Retention()
    monkeypatch.setattr(reaper_main, "run_retention", retention.run_retention)
    monkeypatch.setattr(reaper_main, "collect_blobs", retention.collect_blobs)
    clock = FakeClock(dt.datetime.now(dt.UTC))
    metadata = InMemoryMetadata(clock)
    for space in ("spaces-1", "spaces-2", "spaces-3"):
        await metadata.spaces.create(space, space, anonymous_pull=False)
    await metadata.spaces.set_retention("spaces-3", {"deployment_tags": {"pattern": "("}})
    registry = CollectorRegistry()
    reaper = Reaper(
        reaper_view(metadata),
        InMemoryBlobStore(),
        Settings.from_env({}),
        "reaper-1",
        metrics=ReaperMetrics(registry),
    )

    await reaper.round()
    retention.failing.add("spaces-2")
    clock.advance(dt.timedelta(hours=2))  # every space is due again
    with pytest.raises(RuntimeError):
        await reaper.round()

    assert value(registry, "spacedock_retention_runs_total", outcome="applied") == 3
    assert value(registry, "spacedock_retention_runs_total", outcome="failed") == 1
    assert value(registry, "spacedock_retention_runs_total", outcome="policy_invalid") == 1
    assert value(registry, "spacedock_retention_run_duration_seconds_count") == 4
    assert value(registry, "spacedock_retention_tags_removed_total") == 9
    assert value(registry, "spacedock_retention_manifests_removed_total") == 3
    # Three runs' collections and the first round's sweep (the second ended at its failure).
    assert value(registry, "spacedock_gc_blobs_collected_total") == 3 * 4 + 2
    assert value(registry, "spacedock_gc_bytes_collected_total") == 3 * 4000 + 500


async def test_in_process_requests_waiting_for_a_slot_are_the_queue_depth() -> None:
    release = asyncio.Event()
    registry = CollectorRegistry()
    metrics = BuildMetrics(registry)

    class Held:
        async def handle(self, command: Command) -> None:
            await release.wait()

    bus = InProcessBus()
    _consume_in_process(bus, Held(), 1, metrics.queue_depth)  # type: ignore[arg-type]
    for n in range(3):
        await bus.publish(Outgoing(COMMANDS_EXCHANGE, ROUTING_KEY, b"{}", f"m-{n}", "request"))
    await asyncio.sleep(0.05)
    assert value(registry, "spacedock_build_queue_depth") == 2  # one builds, two wait
    release.set()
    await asyncio.sleep(0.05)
    assert value(registry, "spacedock_build_queue_depth") == 0
    await bus.close()


async def test_scrapes_close_together_share_one_sampling() -> None:
    """/metrics is public: asking it in a loop does not read the database in a loop."""
    metrics = ProcessMetrics(sample_interval=60)
    ran: list[int] = []

    async def sample() -> None:
        await asyncio.sleep(0.01)
        ran.append(1)

    metrics.add_sampler("outbox", sample)
    await asyncio.gather(*(metrics.exposition() for _ in range(20)))
    await metrics.exposition()
    assert ran == [1]
