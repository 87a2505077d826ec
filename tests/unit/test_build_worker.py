"""The builder's worker (services/builder/worker.py) on in-memory builds and outbox, with a
scripted build in place of the real one: what one request becomes, to its recorded outcome
and events. No processes, no network, no Docker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import services.builder.worker as worker_module
from services.builder.build import BuildEnvironment, BuildOutcome
from services.builder.registry_client import RegistryClient
from services.builder.worker import LEASE, BuildWorker, Command
from shared.builds import lifecycle
from shared.builds.errors import DockerfileFailed
from shared.events.envelope import EVENTS_EXCHANGE
from shared.metadata.builds import BuildRecord, new_build
from tests.support.fakes.builder import ScriptedBuild, failing, running_until, succeeding
from tests.support.fakes.builds import Clock, InMemoryBuildMetadata
from tests.support.fakes.clock import FakeClock

SOURCE = "https://registry.test/builder"
OWNER = "builder-1"
SPACE, BUILD_ID = "spaces-4", "deployments-9-web"
SECRET = "pa55-w0rd-for-the-db"
BUILT = BuildOutcome(
    "registry.test/spaces-4/web:2.0.0-deployments-9", "sha256:" + "c" * 64, "assembled"
)
ENVIRONMENT = BuildEnvironment(
    service=RegistryClient("http://registry.test", "spacedock-builder", "never-used"),
    registry_url="http://registry.test",
    public_host="registry.test",
    registry_host="registry.test",
    docker=None,
)


@pytest.fixture(autouse=True)
def quick_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker looks at its build every second and renews the lease every ten; here
    every hundredth of a second and every twentieth, so a test waits for neither."""
    monkeypatch.setattr(worker_module, "CANCEL_CHECK_SECONDS", 0.01)
    monkeypatch.setattr(worker_module, "RENEW_SECONDS", 0.05)


def request_body(space: str = SPACE, build_id: str = BUILD_ID, **extra: Any) -> bytes:
    request = {
        "build_id": build_id,
        "space": space,
        "sdi": {"id": "web", "version": "2.0.0"},
        "deployment": {"id": "deployments-9"},
        "sensitive_variables": {"Database.Password": SECRET},
    }
    return json.dumps({**request, **extra}).encode()


@dataclass
class Builder:
    """A worker, its in-memory metadata, the build it runs, and its nudges to the relay."""

    build: ScriptedBuild
    time_limit: float = 60.0
    now: Clock | None = None
    nudges: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.metadata = InMemoryBuildMetadata(self.now) if self.now else InMemoryBuildMetadata()
        self.worker = BuildWorker(
            self.metadata,
            ENVIRONMENT,
            owner=OWNER,
            source=SOURCE,
            time_limit=self.time_limit,
            notify=lambda: self.nudges.append("relay"),
            build=self.build,
        )

    async def handle(
        self, body: bytes, correlation_id: str | None = None, reply_to: str | None = None
    ) -> None:
        await self.worker.handle(Command(body, correlation_id, reply_to))

    async def stored(self, space: str = SPACE, build_id: str = BUILD_ID) -> BuildRecord:
        record = await self.metadata.builds.get(space, build_id)
        assert record is not None, f"no build {space}/{build_id}"
        return record


async def eventually(holds: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not await holds():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


# A build that runs


async def test_a_request_is_built_once_and_ends_succeeded_with_its_events() -> None:
    builder = Builder(succeeding(BUILT))
    await builder.handle(request_body(), "corr-1", "replies-1")

    (ran,) = builder.build.requests
    assert (ran.space, ran.build_id, ran.sensitive_variables) == (
        SPACE,
        BUILD_ID,
        {"Database.Password": SECRET},
    )
    doc = await builder.stored()
    assert (doc.status, doc.owner, doc.error) == ("succeeded", OWNER, None)
    assert doc.started_at is not None and doc.finished_at is not None
    assert doc.result is not None and doc.result["duration_ms"] >= 0
    assert {key: value for key, value in doc.result.items() if key != "duration_ms"} == {
        "build_id": BUILD_ID,
        "space": SPACE,
        "status": "succeeded",
        "image": BUILT.image,
        "digest": BUILT.digest,
        "reference": f"{BUILT.image}@{BUILT.digest}",
        "strategy": "assembled",
    }
    assert doc.request is not None and doc.request["sensitive_variables"] == ["Database.Password"]

    started, finished = builder.metadata.outbox.recorded
    assert (started.event.kind, started.exchange, started.routing_key) == (
        "build.started",
        EVENTS_EXCHANGE,
        "build.started",
    )
    assert (finished.event.kind, finished.exchange) == ("build.succeeded", EVENTS_EXCHANGE)
    assert finished.event.data == doc.result
    assert finished.event.subject == f"{SPACE}/{BUILD_ID}"
    assert (finished.event.correlation_id, finished.event.reply_to) == ("corr-1", "replies-1")
    assert len(builder.nudges) == 2  # the relay is told of each write to the outbox
    assert not builder.build.workspaces[0].exists()  # the scratch directory went with it


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (DockerfileFailed(f"step 3 printed {SECRET}"), "dockerfile_failed"),
        (RuntimeError(f"a bug holding {SECRET}"), "internal_error"),
    ],
)
async def test_a_failing_build_ends_failed_with_its_code_masked_and_its_event(
    error: Exception, code: str
) -> None:
    builder = Builder(failing(error))
    await builder.handle(request_body(), "corr-2", "replies-2")

    doc = await builder.stored()
    assert doc.status == "failed" and doc.error is not None and doc.error["code"] == code
    assert doc.result is not None and doc.result["error"] == doc.error
    assert doc.result["logs"][-1].endswith(f"failed: {code}: {doc.error['message']}")
    (failed,) = builder.metadata.outbox.events("build.failed")
    assert failed.data == doc.result and failed.reply_to == "replies-2"
    assert builder.metadata.outbox.events("build.succeeded") == []
    everything = json.dumps([doc.result, doc.error, list(doc.logs)])
    assert SECRET not in everything  # masked wherever it would leave the builder


# Requests that cannot be read


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'["a", "list"]',
        json.dumps({"specversion": "1.0", "id": "ev-1", "data": "a string"}).encode(),
        json.dumps({"build_id": "b-1", "space": "Not A Space!"}).encode(),
        json.dumps({"space": SPACE, "sdi": "web"}).encode(),
    ],
)
async def test_a_request_that_names_no_build_fails_request_invalid_and_is_only_reported(
    body: bytes,
) -> None:
    builder = Builder(succeeding(BUILT))
    await builder.handle(body, "corr-bad")  # returns: the message is acknowledged

    assert builder.build.requests == []
    assert builder.metadata.builds.documents == {}
    (recorded,) = builder.metadata.outbox.recorded
    assert (recorded.event.kind, recorded.event.subject) == ("build.failed", "unknown")
    assert recorded.event.data["error"]["code"] == "request_invalid"
    assert recorded.event.correlation_id == "corr-bad"


async def test_a_request_that_names_a_free_build_is_recorded_failed_request_invalid() -> None:
    builder = Builder(succeeding(BUILT))
    await builder.handle(request_body(colour="red"), "corr-3", "replies-3")

    assert builder.build.requests == []
    doc = await builder.stored()
    assert (doc.status, doc.request) == ("failed", None)
    assert doc.error == {"code": "request_invalid", "message": "unknown fields: colour"}
    (recorded,) = builder.metadata.outbox.recorded
    assert recorded.event.data == doc.result
    assert (recorded.exchange, recorded.event.reply_to) == (EVENTS_EXCHANGE, "replies-3")


async def test_a_request_for_a_space_that_is_gone_is_refused_and_only_reported() -> None:
    """The space was deleted after the request left: nothing is built or recorded under its
    id (a space made again under it must not find the build), the asker is answered."""
    builder = Builder(succeeding(BUILT))
    builder.metadata.builds.missing_spaces.add(SPACE)
    await builder.handle(request_body(), "corr-gone", "replies-gone")

    assert builder.build.requests == []
    assert builder.metadata.builds.documents == {}
    (recorded,) = builder.metadata.outbox.recorded
    assert recorded.event.kind == "build.failed"
    assert recorded.event.data["error"]["code"] == "request_invalid"
    assert "does not exist" in recorded.event.data["error"]["message"]
    assert (recorded.event.correlation_id, recorded.event.reply_to) == ("corr-gone", "replies-gone")


async def test_an_unreadable_request_answers_its_asker_but_never_touches_another_build() -> None:
    builder = Builder(succeeding(BUILT))
    await builder.handle(request_body(), "first")
    before = await builder.stored()

    await builder.handle(request_body(colour="red"), "second", "replies-2")
    assert await builder.stored() == before
    answer = builder.metadata.outbox.recorded[-1]
    assert (answer.exchange, answer.routing_key) == ("", "replies-2")  # to that queue alone
    assert answer.event.reply_to is None and answer.event.correlation_id == "second"
    assert answer.event.data["error"]["code"] == "request_invalid"


async def test_the_registrys_command_that_cannot_be_opened_fails_the_build_it_queued() -> None:
    builder = Builder(succeeding(BUILT))  # a builder without the registry's sealing key
    queued = new_build(
        SPACE, BUILD_ID, None, command_id="cmd-7", correlation_id="c-reg", reply_to="r-reg"
    )
    await builder.metadata.builds.create(queued)
    data = json.loads(request_body())
    del data["sensitive_variables"]
    command = {
        "specversion": "1.0",
        "id": "cmd-7",
        "data": {**data, "sealed_sensitive_variables": "x"},
    }

    await builder.handle(json.dumps(command).encode())
    assert builder.build.requests == []
    doc = await builder.stored()
    assert doc.status == "failed" and doc.error is not None
    assert doc.error["code"] == "request_invalid"
    (failed,) = builder.metadata.outbox.events("build.failed")
    assert (failed.correlation_id, failed.reply_to) == ("c-reg", "r-reg")  # the registry's


# One build per space and id


async def test_a_repeated_build_id_is_not_built_again_and_gets_the_first_result() -> None:
    builder = Builder(succeeding(BUILT))
    await builder.handle(request_body(), "first", "replies-1")
    first = await builder.stored()

    await builder.handle(request_body(), "again", "replies-2")
    assert len(builder.build.requests) == 1
    assert len(builder.metadata.outbox.events("build.started")) == 1
    assert await builder.stored() == first
    answer = builder.metadata.outbox.recorded[-1]
    assert (answer.exchange, answer.routing_key) == ("", "replies-2")
    assert answer.event.data == first.result and answer.event.correlation_id == "again"


async def test_the_same_build_id_in_another_space_is_a_build_of_its_own() -> None:
    builder = Builder(succeeding(BUILT))
    await builder.handle(request_body(space="spaces-4"))
    await builder.handle(request_body(space="spaces-5"))

    assert [request.space for request in builder.build.requests] == ["spaces-4", "spaces-5"]
    for space in ("spaces-4", "spaces-5"):
        assert (await builder.stored(space)).status == "succeeded"
    assert [event.subject for event in builder.metadata.outbox.events("build.succeeded")] == [
        f"spaces-4/{BUILD_ID}",
        f"spaces-5/{BUILD_ID}",
    ]


@pytest.mark.parametrize(
    ("queued_for", "answered_to"), [(None, "replies-late"), ("replies-first", "replies-first")]
)
async def test_a_queued_build_answers_the_first_asker_that_gave_a_reply_queue(
    queued_for: str | None, answered_to: str
) -> None:
    """The registry queues a build (its own request may name no reply queue); a request
    for it that arrives with one is answered there, unless an asker came first."""
    builder = Builder(succeeding(BUILT))
    await builder.metadata.builds.create(new_build(SPACE, BUILD_ID, None, reply_to=queued_for))

    await builder.handle(request_body(), "corr-late", "replies-late")
    assert len(builder.build.requests) == 1
    (finished,) = builder.metadata.outbox.events("build.succeeded")
    assert finished.reply_to == answered_to


async def test_a_build_cancelled_before_it_started_is_never_built() -> None:
    builder = Builder(succeeding(BUILT))
    await builder.metadata.builds.create(new_build(SPACE, BUILD_ID, None))
    assert await builder.metadata.builds.request_cancel(SPACE, BUILD_ID)
    ended = lifecycle.cancelled_before_start(SPACE, BUILD_ID)  # as the management API ends it
    assert await builder.metadata.builds.finish(SPACE, BUILD_ID, None, ended, [])

    await builder.handle(request_body(), "corr-5", "replies-5")
    assert builder.build.requests == []
    assert (await builder.stored()).status == "cancelled"
    assert builder.metadata.outbox.events("build.started") == []


# While a build runs


async def test_a_build_cancelled_while_it_runs_is_stopped_and_ends_cancelled() -> None:
    builder = Builder(running_until(asyncio.Event(), BUILT))
    handling = asyncio.create_task(builder.handle(request_body(), "corr-4", "replies-4"))
    await builder.build.started.wait()
    assert await builder.metadata.builds.request_cancel(SPACE, BUILD_ID) is not None  # DELETE
    await asyncio.wait_for(handling, 5)

    assert builder.build.stopped == 1
    doc = await builder.stored()
    assert doc.status == "cancelled"
    assert doc.error == {"code": "cancelled", "message": "the build was cancelled"}
    (reported,) = builder.metadata.outbox.events("build.failed")
    assert reported.data == doc.result and reported.data["status"] == "cancelled"
    assert reported.reply_to == "replies-4"


async def test_a_build_past_its_time_limit_is_stopped_and_fails_with_timeout() -> None:
    builder = Builder(running_until(asyncio.Event(), BUILT), time_limit=0.05)
    await asyncio.wait_for(builder.handle(request_body()), 5)

    assert builder.build.stopped == 1
    doc = await builder.stored()
    assert doc.status == "failed"
    assert doc.error == {"code": "timeout", "message": "the build took longer than 0.05s"}
    (reported,) = builder.metadata.outbox.events("build.failed")
    assert reported.data == doc.result


async def test_a_running_build_renews_its_lease_and_saves_its_log_lines() -> None:
    clock, release = FakeClock(), asyncio.Event()
    builder = Builder(running_until(release, BUILT), now=clock)
    handling = asyncio.create_task(builder.handle(request_body()))
    await builder.build.started.wait()
    assert (await builder.stored()).lease_until == clock() + LEASE

    clock.advance(dt.timedelta(seconds=20))

    async def renewed_with_its_log() -> bool:
        doc = await builder.stored()
        return doc.lease_until == clock() + LEASE and any(
            line.endswith("working") for line in doc.logs
        )

    await eventually(renewed_with_its_log)
    assert (await builder.stored()).status == "running"
    release.set()
    await asyncio.wait_for(handling, 5)
    assert (await builder.stored()).status == "succeeded"


async def test_a_build_whose_builder_died_is_taken_over_once_its_lease_lapses() -> None:
    clock = FakeClock()
    builder = Builder(succeeding(BUILT), now=clock)
    await builder.metadata.builds.create(new_build(SPACE, BUILD_ID, None))
    assert await builder.metadata.builds.claim(SPACE, BUILD_ID, "builder-gone", LEASE)
    clock.advance(LEASE + dt.timedelta(seconds=1))

    await asyncio.wait_for(builder.handle(request_body()), 5)
    assert len(builder.build.requests) == 1
    doc = await builder.stored()
    assert (doc.status, doc.owner) == ("succeeded", OWNER)


async def test_a_builder_whose_build_was_taken_over_stops_it_and_records_nothing() -> None:
    clock = FakeClock()
    builder = Builder(running_until(asyncio.Event(), BUILT), now=clock)
    handling = asyncio.create_task(builder.handle(request_body()))
    await builder.build.started.wait()
    clock.advance(LEASE + dt.timedelta(seconds=1))  # as if this builder had stalled
    assert await builder.metadata.builds.claim(SPACE, BUILD_ID, "builder-2", LEASE)

    await asyncio.wait_for(handling, 5)
    assert builder.build.stopped == 1
    doc = await builder.stored()
    assert (doc.status, doc.owner, doc.result) == ("running", "builder-2", None)
    assert [event.kind for event in builder.metadata.outbox.events()] == ["build.started"]
