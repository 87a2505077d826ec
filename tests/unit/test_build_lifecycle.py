"""The build lifecycle (statuses, their moves, results and events) and the catalogue of build
error codes: the payloads of PRODUCT.md §7 key for key, and every code a raise site in the
builder uses is one class of the catalogue."""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

import services.builder.worker as worker_module
from services.builder.build import BuildFailed, BuildOutcome
from services.builder.worker import BuildWorker, Command
from shared.build_requests import RequestInvalid as RequestInvalidFromRequests
from shared.build_requests import parse_build_request
from shared.builds import lifecycle
from shared.builds.errors import (
    CATALOGUE,
    BuildError,
    Cancelled,
    InternalError,
    PackageMissing,
    RequestInvalid,
    SealingUnavailable,
    TimedOut,
)
from shared.builds.lifecycle import (
    TERMINAL,
    BuildStatus,
    Built,
    Outcome,
    may_become,
    statuses_before,
)
from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.metadata.builds import BuildRecord, new_build, refused_build

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "https://registry.example/builder"
BUILT = Built(
    "registry.example/spaces-1/web:1.2.0-deployments-75", "sha256:" + "a" * 64, "assembled"
)


# Statuses and their moves


@pytest.mark.parametrize(
    ("current", "new", "allowed"),
    [
        ("queued", "running", True),
        ("queued", "cancelled", True),  # cancelled before a builder took it
        ("queued", "failed", True),  # the builder cannot read the registry's command
        ("queued", "succeeded", False),  # nothing succeeds without running
        ("running", "running", True),  # a lapsed lease taken over by another builder
        ("running", "succeeded", True),
        ("running", "failed", True),
        ("running", "cancelled", True),
        ("running", "queued", False),
        *[(done, new, False) for done in TERMINAL for new in BuildStatus],
    ],
)
def test_a_build_moves_only_forward_and_a_finished_build_stays_finished(
    current: str, new: str, allowed: bool
) -> None:
    assert may_become(current, new) is allowed


def test_the_store_ends_a_build_only_from_the_statuses_that_may_end_so() -> None:
    assert statuses_before(BuildStatus.SUCCEEDED) == ["running"]
    assert sorted(statuses_before(BuildStatus.FAILED)) == ["queued", "running"]
    assert sorted(statuses_before(BuildStatus.CANCELLED)) == ["queued", "running"]
    assert {status.value for status in BuildStatus if status.finished} == {
        "succeeded",
        "failed",
        "cancelled",
    }


def test_statuses_are_their_text_in_documents_and_json() -> None:
    assert json.dumps({"status": BuildStatus.RUNNING}) == '{"status": "running"}'
    assert "succeeded" in TERMINAL and "queued" not in TERMINAL
    assert new_build("spaces-1", "b-1", None)["status"] == "queued"


# Results and events, as the deployment server reads them


def test_a_success_reports_image_digest_reference_and_strategy() -> None:
    outcome = lifecycle.succeeded("spaces-1", "b-1", BUILT, duration_ms=1234)
    assert list(outcome.data.items()) == [
        ("build_id", "b-1"),
        ("space", "spaces-1"),
        ("status", "succeeded"),
        ("image", BUILT.image),
        ("digest", BUILT.digest),
        ("reference", f"{BUILT.image}@{BUILT.digest}"),
        ("strategy", "assembled"),
        ("duration_ms", 1234),
    ]
    assert outcome.fields() == {"result": outcome.data, "error": None}
    event = outcome.event(source=SOURCE, correlation_id="corr-1", reply_to="replies")
    document = event.document()
    assert document["type"] == "io.spacedock.build.succeeded"
    assert document["subject"] == "spaces-1/b-1" and document["source"] == SOURCE
    assert document["data"] == outcome.data
    assert (event.kind, event.correlation_id, event.reply_to) == (
        "build.succeeded",
        "corr-1",
        "replies",
    )


def test_a_failure_carries_its_code_message_and_the_last_log_lines() -> None:
    logs = [f"line {n}" for n in range(50)]
    error = PackageMissing("package web has no versions in spaces-1")
    outcome = lifecycle.ended_by("spaces-1", "b-2", error, logs=logs, duration_ms=7)
    assert outcome.status is BuildStatus.FAILED
    assert list(outcome.data) == ["build_id", "space", "status", "error", "logs", "duration_ms"]
    assert outcome.data["error"] == {"code": "package_missing", "message": error.message}
    assert outcome.data["logs"] == logs[-lifecycle.LAST_LINES :]
    assert outcome.fields() == {"result": outcome.data, "error": outcome.data["error"]}
    event = outcome.event(source=SOURCE, correlation_id=None, reply_to=None)
    assert event.type == "io.spacedock.build.failed"


def test_a_build_cancelled_while_it_ran_is_cancelled_and_reported_as_failed() -> None:
    outcome = lifecycle.ended_by(
        "spaces-1", "b-3", Cancelled("the build was cancelled"), logs=["x"], duration_ms=1
    )
    assert outcome.status is BuildStatus.CANCELLED and outcome.data["status"] == "cancelled"
    assert outcome.data["error"]["code"] == "cancelled"
    assert outcome.kind == "build.failed"


def test_a_build_cancelled_before_it_started_keeps_no_result() -> None:
    outcome = lifecycle.cancelled_before_start("spaces-2", "b-4")
    assert outcome.data == {
        "build_id": "b-4",
        "space": "spaces-2",
        "status": "cancelled",
        "error": {"code": "cancelled", "message": "cancelled before it started"},
    }
    assert outcome.fields() == {"result": None, "error": outcome.data["error"]}
    assert outcome.event(source=SOURCE, correlation_id=None, reply_to=None).subject == (
        "spaces-2/b-4"
    )


def test_a_refused_request_is_failed_under_its_name_or_under_unknown() -> None:
    error = RequestInvalid("unknown fields: x")
    named = lifecycle.refused("spaces-1", "b-5", error)
    assert named.data == {
        "build_id": "b-5",
        "space": "spaces-1",
        "status": "failed",
        "error": {"code": "request_invalid", "message": "unknown fields: x"},
    }
    doc = refused_build(named)
    assert (doc["_id"], doc["status"], doc["request"]) == ("spaces-1/b-5", "failed", None)
    assert doc["result"] == named.data and doc["error"] == named.data["error"]
    assert doc["finished_at"] is not None
    anonymous = lifecycle.refused(None, None, error)
    assert anonymous.data["build_id"] is None and anonymous.data["space"] is None
    event = anonymous.event(source=SOURCE, correlation_id="garbage", reply_to=None)
    assert event.subject == "unknown" and event.type == "io.spacedock.build.failed"


def test_the_registry_asks_for_a_build_with_a_command_named_after_it() -> None:
    command = lifecycle.request_command("spaces-2", "b-0", {"build_id": "b-0"}, source=SOURCE)
    assert (command.type, command.subject, command.data) == (
        "io.spacedock.build.request",
        "spaces-2/b-0",
        {"build_id": "b-0"},
    )
    assert command.kind == lifecycle.REQUESTED  # the routing key builders consume


def test_a_build_that_starts_is_reported_running() -> None:
    event = lifecycle.started_event("spaces-1", "b-6", source=SOURCE, correlation_id="c")
    assert (event.type, event.subject, event.correlation_id, event.reply_to) == (
        "io.spacedock.build.started",
        "spaces-1/b-6",
        "c",
        None,
    )
    assert event.data == {"build_id": "b-6", "space": "spaces-1", "status": "running"}


@pytest.mark.parametrize(
    ("status", "kind"),
    [("succeeded", "build.succeeded"), ("failed", "build.failed"), ("cancelled", "build.failed")],
)
def test_a_repeated_request_is_answered_with_the_first_result(status: str, kind: str) -> None:
    result = {"build_id": "b-7", "space": "spaces-1", "status": status}
    event = lifecycle.result_event(status, result, source=SOURCE, correlation_id="again")
    assert (event.kind, event.subject, event.data, event.reply_to) == (
        kind,
        "spaces-1/b-7",
        result,
        None,
    )


# The catalogue of error codes


def test_each_code_is_one_class_and_each_class_renders_itself() -> None:
    assert len(CATALOGUE) == len({kind.code for kind in CATALOGUE.values()})
    for code, kind in CATALOGUE.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code), code
        error = BuildError.for_code(code, "why")
        assert type(error) is kind and error.as_dict() == {"code": code, "message": "why"}


def test_a_code_missing_from_the_catalogue_is_reported_as_an_internal_error() -> None:
    error = BuildError.for_code("no_such_code", "what happened")
    assert isinstance(error, InternalError)
    assert error.as_dict() == {"code": "internal_error", "message": "no_such_code: what happened"}


def test_how_the_management_api_answers_a_build_error() -> None:
    assert (RequestInvalid.http_status, RequestInvalid.api_code) == (422, "INVALID")
    assert (SealingUnavailable.http_status, SealingUnavailable.api_code) == (503, "UNAVAILABLE")
    assert (InternalError.http_status, InternalError.api_code) == (500, "UNKNOWN")
    assert TimedOut("t").code == "timeout"


def test_the_requests_module_raises_the_catalogues_request_invalid() -> None:
    assert RequestInvalidFromRequests is RequestInvalid
    with pytest.raises(RequestInvalid) as raised:
        parse_build_request({"space": "spaces-1"})
    assert raised.value.as_dict()["code"] == "request_invalid"
    assert isinstance(raised.value, ValueError)  # as before, for those that catch ValueError


# Every raise site's code is in the catalogue

# The exceptions the builder's modules carry a code in (code first, message second).
CARRIERS = {
    "BuildFailed", "FeatureError", "ArchiveError", "AssembleError", "DockerBuildError",
    "ImageRefused", "SdiRefused", "PreviewFailed",
}  # fmt: skip
CODE = re.compile(r"[a-z]+(_[a-z]+)+|[a-z]{4,}")


def _codes_in(path: Path) -> set[str]:
    """Codes passed to a carrier, assigned to ``code`` (also in a conditional), or held by
    an exception class as its ``code``."""
    codes: set[str] = set()
    text = path.read_text(encoding="utf-8")
    if "code" not in text:  # most feature modules: nothing to parse
        return codes
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            first = node.args[0] if node.args else None
            if name in CARRIERS and isinstance(first, ast.Constant):
                codes.add(str(first.value))
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "code" for target in node.targets
        ):
            values = (
                [node.value.body, node.value.orelse]
                if isinstance(node.value, ast.IfExp)
                else [node.value]
            )
            codes |= {
                value.value
                for value in values
                if isinstance(value, ast.Constant)
                and isinstance(value.value, str)
                and CODE.fullmatch(value.value)
            }
    return codes


def _build_modules() -> list[Path]:
    builder = ROOT / "services" / "builder"
    shared = [ROOT / "shared" / "sdi.py", ROOT / "shared" / "build_requests.py"]
    others = [
        ROOT / "services" / "registry" / "management" / "sdi_check.py",
        ROOT / "spacedock" / "sdi_preview.py",
    ]
    return [path for path in [*builder.rglob("*.py"), *shared, *others] if path.exists()]


def test_every_code_the_builder_raises_is_in_the_catalogue() -> None:
    found = {code: path for path in _build_modules() for code in _codes_in(path)}
    assert len(found) > 20  # the scan sees the raise sites
    missing = {
        code: str(path.relative_to(ROOT)) for code, path in found.items() if code not in CATALOGUE
    }
    assert missing == {}


# The builder's worker writes through the lifecycle (an in-memory build store, no processes)


class FakeOutbox:
    def __init__(self) -> None:
        self.sent: list[tuple[CloudEvent, str | None]] = []  # with the queue it goes to alone

    async def add(
        self,
        events: Sequence[CloudEvent],
        *,
        exchange: str = EVENTS_EXCHANGE,
        routing_key: str | None = None,
    ) -> None:
        self.sent += [(event, routing_key) for event in events]


class FakeBuilds:
    """The build store's moves, in memory, each one the lifecycle allows."""

    def __init__(self, outbox: FakeOutbox) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.outbox = outbox

    async def get(self, space: str, build_id: str) -> BuildRecord | None:
        doc = self.docs.get(f"{space}/{build_id}")
        return None if doc is None else BuildRecord.from_document(doc)

    async def create(
        self, doc: dict[str, Any], events: Sequence[CloudEvent] = (), **_: Any
    ) -> tuple[BuildRecord, bool]:
        if doc["_id"] in self.docs:
            return BuildRecord.from_document(self.docs[doc["_id"]]), False
        self.docs[doc["_id"]] = doc
        await self.outbox.add(events)
        return BuildRecord.from_document(doc), True

    async def attach_reply(self, *_: Any) -> None:
        return None

    async def claim(self, space: str, build_id: str, owner: str, _: Any) -> BuildRecord | None:
        doc = self.docs[f"{space}/{build_id}"]
        if doc["status"] != "queued" or doc["cancel_requested"]:
            return None
        doc.update(status="running", owner=owner)
        return BuildRecord.from_document(doc)

    async def renew(self, space: str, build_id: str, *_: Any) -> BuildRecord | None:
        return await self.get(space, build_id)

    async def append_logs(self, space: str, build_id: str, lines: Sequence[str]) -> None:
        self.docs[f"{space}/{build_id}"]["logs"] += lines

    async def finish(
        self,
        space: str,
        build_id: str,
        owner: str | None,
        outcome: Outcome,
        events: Sequence[CloudEvent],
    ) -> bool:
        doc = self.docs[f"{space}/{build_id}"]
        if not may_become(doc["status"], outcome.status) or owner not in (None, doc.get("owner")):
            return False
        doc.update(status=outcome.status.value, **outcome.fields())
        await self.outbox.add(events)
        return True


def _worker(
    monkeypatch: pytest.MonkeyPatch, build: Any, *, time_limit: float = 60
) -> tuple[BuildWorker, FakeOutbox]:
    """A worker over the in-memory store whose builds are ``build()`` (awaited when it
    returns an awaitable)."""
    outbox = FakeOutbox()
    metadata = SimpleNamespace(outbox=outbox, builds=FakeBuilds(outbox))

    async def run_build(*_: Any) -> Any:
        made = build()
        return await made if inspect.isawaitable(made) else made

    monkeypatch.setattr(worker_module, "run_build", run_build)
    monkeypatch.setattr(worker_module, "CANCEL_CHECK_SECONDS", 0.01)
    worker = BuildWorker(
        cast(Any, metadata),
        cast(Any, None),
        owner="builder-1",
        source=SOURCE,
        time_limit=time_limit,
    )
    return worker, outbox


def _docs(worker: BuildWorker) -> dict[str, dict[str, Any]]:
    return cast(FakeBuilds, worker.builds).docs


REQUEST = {
    "build_id": "deployments-75-web",
    "space": "spaces-1",
    "sdi": {"id": "web-sdi", "version": "1.2.0"},
    "deployment": {"id": "deployments-75"},
    "sensitive_variables": {"Db": "s3cret-value"},
}


async def test_the_worker_reports_start_and_success_with_the_lifecycles_payloads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, outbox = _worker(
        monkeypatch, lambda: BuildOutcome(BUILT.image, BUILT.digest, BUILT.strategy)
    )
    await worker.handle(Command(json.dumps(REQUEST).encode(), "corr", "replies"))
    (started, _), (finished, _) = outbox.sent
    assert started.kind == "build.started" and started.correlation_id == "corr"
    assert started.data == {
        "build_id": "deployments-75-web",
        "space": "spaces-1",
        "status": "running",
    }
    assert finished.kind == "build.succeeded" and finished.reply_to == "replies"
    assert finished.subject == "spaces-1/deployments-75-web"
    assert {key: value for key, value in finished.data.items() if key != "duration_ms"} == {
        "build_id": "deployments-75-web",
        "space": "spaces-1",
        "status": "succeeded",
        "image": BUILT.image,
        "digest": BUILT.digest,
        "reference": BUILT.reference,
        "strategy": "assembled",
    }
    doc = _docs(worker)["spaces-1/deployments-75-web"]
    assert doc["status"] == "succeeded" and doc["result"] == finished.data and doc["error"] is None
    # Asked again: the first result to the asker's queue, nothing built.
    await worker.handle(Command(json.dumps(REQUEST).encode(), "again", "replies-2"))
    (answer, queue) = outbox.sent[-1]
    assert (answer.kind, answer.data, answer.correlation_id, queue) == (
        "build.succeeded",
        finished.data,
        "again",
        "replies-2",
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [("package_missing", "package_missing"), ("no_such_code", "internal_error")],
)
async def test_a_failure_raised_anywhere_in_the_builder_ends_with_its_catalogued_code(
    monkeypatch: pytest.MonkeyPatch, code: str, expected: str
) -> None:
    def fail() -> Any:
        raise BuildFailed(code, "the secret s3cret-value leaked into the message")

    worker, outbox = _worker(monkeypatch, fail)
    await worker.handle(Command(json.dumps(REQUEST).encode()))
    (_, _), (finished, _) = outbox.sent
    assert finished.kind == "build.failed" and finished.data["status"] == "failed"
    assert finished.data["error"]["code"] == expected
    assert "s3cret-value" not in json.dumps(finished.data)  # masked, in the logs too
    assert finished.data["logs"][-1].endswith(
        f"failed: {expected}: {finished.data['error']['message']}"
    )


async def test_a_request_that_cannot_be_read_is_a_failed_build_born_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, outbox = _worker(monkeypatch, lambda: None)
    await worker.handle(Command(json.dumps({**REQUEST, "colour": "red"}).encode(), "c"))
    ((event, _),) = outbox.sent
    assert event.kind == "build.failed" and event.subject == "spaces-1/deployments-75-web"
    assert event.data == {
        "build_id": "deployments-75-web",
        "space": "spaces-1",
        "status": "failed",
        "error": {"code": "request_invalid", "message": "unknown fields: colour"},
    }
    doc = _docs(worker)["spaces-1/deployments-75-web"]
    assert doc["status"] == "failed" and doc["result"] == event.data
    await worker.handle(Command(b"{not json", "garbage"))
    (event, _) = outbox.sent[-1]
    assert event.subject == "unknown" and event.data["error"]["code"] == "request_invalid"


async def test_a_build_over_its_time_limit_ends_with_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, outbox = _worker(monkeypatch, lambda: asyncio.Event().wait(), time_limit=0.05)
    await worker.handle(Command(json.dumps(REQUEST).encode()))
    (_, _), (finished, _) = outbox.sent
    assert finished.kind == "build.failed" and finished.data["status"] == "failed"
    assert finished.data["error"] == {
        "code": "timeout",
        "message": "the build took longer than 0.05s",
    }


async def test_a_build_cancelled_while_it_runs_ends_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    holder: dict[str, BuildWorker] = {}

    async def build() -> Any:  # runs until its build is marked cancelled, as DELETE does
        _docs(holder["worker"])["spaces-1/deployments-75-web"]["cancel_requested"] = True
        await asyncio.Event().wait()

    worker, outbox = _worker(monkeypatch, build)
    holder["worker"] = worker
    await worker.handle(Command(json.dumps(REQUEST).encode()))
    (_, _), (finished, _) = outbox.sent
    assert finished.kind == "build.failed" and finished.data["status"] == "cancelled"
    assert finished.data["error"] == {"code": "cancelled", "message": "the build was cancelled"}
    doc = _docs(worker)["spaces-1/deployments-75-web"]
    assert doc["status"] == "cancelled" and doc["result"] == finished.data
