"""The build lifecycle (statuses, their moves, results and events) and the catalogue of build
error codes: the payloads of PRODUCT.md §7 key for key, and every raise in the build's modules
raises a class of the catalogue, with no code written outside it."""

from __future__ import annotations

import ast
import asyncio
import builtins
import importlib
import inspect
import json
import pickle
import re
from pathlib import Path
from types import ModuleType
from typing import Any, cast, get_args, get_type_hints

import pytest

import services.builder.worker as worker_module
from services.builder.build import BuildOutcome
from services.builder.features.pipeline import FeatureRun
from services.builder.worker import BuildWorker, Command
from services.registry.management.sdi_check import judge_sdi_file
from shared.build_requests import RequestInvalid as RequestInvalidFromRequests
from shared.build_requests import parse_build_request
from shared.builds import lifecycle
from shared.builds.errors import (
    CATALOGUE,
    ArchiveError,
    ArchiveLinkEscape,
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
    may_become,
    statuses_before,
)
from shared.events.envelope import CloudEvent
from shared.metadata.builds import new_build, refused_build
from tests.support.fakes.builds import InMemoryBuildMetadata, InMemoryBuildStore, InMemoryOutbox

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
        error = kind("why")
        assert error.as_dict() == {"code": code, "message": "why"}
        # A child process (the features, the upload check) hands its error back pickled.
        returned = pickle.loads(pickle.dumps(error))
        assert type(returned) is kind and returned.as_dict() == error.as_dict()


def test_a_group_of_codes_is_no_code_of_its_own() -> None:
    assert ArchiveError not in CATALOGUE.values()
    members = {kind.code for kind in CATALOGUE.values() if issubclass(kind, ArchiveError)}
    assert members == {
        "archive_invalid", "archive_absolute_path", "archive_path_traversal",
        "archive_link_escape", "archive_special_file", "archive_too_large",
    }  # fmt: skip


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


# Every raise in the build's modules raises an error of the catalogue, and no code is written
# outside it (shared/builds/errors.py)

# What the build's modules may raise that is not a build's error, by where it is defined:
# each is caught before it could end a build, or ends one as a bug (internal_error).
NOT_BUILD_ERRORS = {
    "services.builder.features.": "the features' engines (templates, filters, transforms, "
    "structured variables) raise their own; pipeline.py turns those into the catalogue's",
    "services.builder.registry_client.": "RegistryRefused: build.py says what it means for "
    "the build (RegistryFault, PackageMissing, BaseImageMissing, PushRefused)",
    "services.registry.management.sdi_check._Unjudged": "an archive the upload check lets through",
    "spacedock.sdi_preview.UsageError": "the preview's usage errors (exit status 2)",
    "builtins.": "Python's own, where the caller expects them (a number, a date) or as bugs",
    "yaml.": "PyYAML's, inside the structured variables' YAML reader",
}
# Errors a child process hands back whole, raised as they come: the attribute or function
# that carries them is typed BuildError (checked below).
HANDED_BACK = {
    ("services/builder/build.py", "features.error"),
    ("spacedock/sdi_preview.py", "type(features.error)"),
    ("services/registry/management/sdi_check.py", "verdict"),
}
# Strings of the build's modules that are a code's word but no code.
NOT_CODES = {("services/builder/assemble.py", "timeout")}  # HEALTHCHECK --timeout


def _build_modules() -> list[Path]:
    builder = sorted((ROOT / "services" / "builder").rglob("*.py"))
    others = [
        "services/registry/management/sdi_check.py",
        "shared/sdi.py",
        "shared/build_requests.py",
        "spacedock/sdi_preview.py",
    ]
    return [*builder, *(ROOT / path for path in others)]


def _module(path: Path) -> ModuleType:
    return importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))


def _resolve(node: ast.expr, namespace: dict[str, Any]) -> Any:
    """What a name or dotted name stands for in the module (None: a local, or no name)."""
    if isinstance(node, ast.Name):
        return namespace.get(node.id, getattr(builtins, node.id, None))
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, namespace)
        return None if owner is None else getattr(owner, node.attr, None)
    return None


def _made_problem(function: Any) -> str | None:
    """Why raising what ``function`` returns breaks the rule: it must be typed to return
    errors of the catalogue, or a group of them (one of its members, then)."""
    made = get_type_hints(function).get("return")
    for kind in [k for k in get_args(made) or [made] if k is not type(None)]:
        if not isinstance(kind, type) or kind is BuildError or not issubclass(kind, BuildError):
            return f"{function.__name__} returns {kind!r}, no error of the catalogue"
        if not any(issubclass(member, kind) for member in CATALOGUE.values()):
            return f"{function.__name__} returns {kind.__name__}, which no code is"
    return None


def _raised_problem(kind: Any) -> str | None:
    """Why raising ``kind`` (a class, or a function making the error) breaks the rule."""
    if inspect.isfunction(kind):
        return _made_problem(kind)
    if not (isinstance(kind, type) and issubclass(kind, BaseException)):
        return f"{kind!r} is no exception class"
    if issubclass(kind, BuildError):
        if any(issubclass(kind, coded) for coded in CATALOGUE.values()):
            return None
        return f"{kind.__name__} is a BuildError of no code of the catalogue (a group?)"
    where = f"{kind.__module__}.{kind.__qualname__}"
    if any(where.startswith(prefix) for prefix in NOT_BUILD_ERRORS):
        return None
    return f"{where} is neither a build's error nor one of NOT_BUILD_ERRORS"


def _caught_by(handlers: list[ast.ExceptHandler], name: str) -> ast.ExceptHandler | None:
    return next((handler for handler in reversed(handlers) if handler.name == name), None)


def _raise_problems(relative: str, source: str, namespace: dict[str, Any]) -> list[str]:
    """Each raise of the module (``relative``, its ``source`` and its globals) that breaks
    the rule, as ``path:line: why``."""
    engines = relative.startswith("services/builder/features/") and not relative.endswith(
        "pipeline.py"
    )
    problems: list[str] = []

    def visit(node: ast.AST, handlers: list[ast.ExceptHandler]) -> None:
        if isinstance(node, ast.ExceptHandler):
            handlers = [*handlers, node]
        if isinstance(node, ast.Raise) and node.exc is not None:
            problem = _raise_problem(node.exc, handlers)
            if problem is not None:
                problems.append(f"{relative}:{node.lineno}: {problem}")
        for child in ast.iter_child_nodes(node):
            visit(child, handlers)

    def _raise_problem(exc: ast.expr, handlers: list[ast.ExceptHandler]) -> str | None:
        target = exc.func if isinstance(exc, ast.Call) else exc
        text = ast.unparse(target)
        if (relative, text) in HANDED_BACK:
            return None
        if isinstance(target, ast.Call) and ast.unparse(target.func) == "type":
            # type(exc)(...): what was caught, again, with more to say
            (caught,) = target.args
            handler = _caught_by(handlers, ast.unparse(caught))
            if handler is None or handler.type is None:
                return f"{text}: not an error this handler caught"
            types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            kinds = [_resolve(t, namespace) for t in types]
            if all(isinstance(k, type) and issubclass(k, BuildError) for k in kinds):
                return None
            return f"{text}: re-raises what is not a build's error"
        kind = _resolve(target, namespace)
        if kind is None:
            if engines:
                return None  # an engine's own helper that makes its own error
            return f"{text}: cannot tell what it raises"
        return _raised_problem(kind)

    visit(ast.parse(source), [])
    return problems


def _code_literals(relative: str, source: str) -> list[str]:
    return [
        f"{relative}:{node.lineno}: {node.value!r}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in CATALOGUE
        and (relative, node.value) not in NOT_CODES
    ]


def _source(path: Path) -> tuple[str, str]:
    return path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def test_every_raise_in_the_build_modules_raises_an_error_of_the_catalogue() -> None:
    modules = _build_modules()
    assert len(modules) > 40  # the builder's and the others
    problems = [
        problem
        for path in modules
        for problem in _raise_problems(*_source(path), vars(_module(path)))
    ]
    assert problems == []


def test_no_build_module_writes_a_code_outside_the_catalogue() -> None:
    assert [
        literal for path in _build_modules() for literal in _code_literals(*_source(path))
    ] == []


def test_what_a_child_process_hands_back_is_typed_a_build_error() -> None:
    assert get_type_hints(FeatureRun)["error"] == BuildError | None
    assert get_type_hints(judge_sdi_file)["return"] == BuildError | None


RULEBREAKER = """
from shared.builds.errors import ArchiveError, BuildError, SdiInvalid
class Carrier(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
def old() -> None:
    raise Carrier("sdi_invalid", "the old way")
def group() -> None:
    raise ArchiveError("a group")
def again() -> None:
    try:
        old()
    except Carrier as exc:
        raise type(exc)("again") from exc
def made() -> BuildError:
    return SdiInvalid("made")
def uses_made() -> None:
    raise made()
def fine() -> None:
    try:
        old()
    except SdiInvalid as exc:
        raise type(exc)(f"{exc} in context") from exc
"""


def test_the_rules_see_what_breaks_them() -> None:
    """A module that raises a code the old way, a group, a stranger again, or what a function
    typed as any BuildError makes; a code written in it."""
    namespace: dict[str, Any] = {"__name__": "rulebreaker"}
    exec(compile(RULEBREAKER, "rulebreaker.py", "exec"), namespace)
    relative = "services/builder/rulebreaker.py"
    found = _raise_problems(relative, RULEBREAKER, namespace)
    assert [problem.split(": ", 1)[0] for problem in found] == [
        f"{relative}:{line}" for line in (8, 10, 15, 19)
    ]
    assert _code_literals(relative, RULEBREAKER) == [f"{relative}:8: 'sdi_invalid'"]


# The builder's worker writes through the lifecycle (an in-memory build store, no processes)


@pytest.fixture(autouse=True)
def prompt_cancel_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "CANCEL_CHECK_SECONDS", 0.01)


class SentEvents:
    """The events the worker recorded, each with the reply queue it goes to alone (None: the
    events exchange)."""

    def __init__(self, outbox: InMemoryOutbox) -> None:
        self._outbox = outbox

    @property
    def sent(self) -> list[tuple[CloudEvent, str | None]]:
        return [
            (r.event, r.routing_key if r.exchange == "" else None) for r in self._outbox.recorded
        ]


def _worker(build: Any, *, time_limit: float = 60) -> tuple[BuildWorker, SentEvents]:
    """A worker over the in-memory store whose builds are ``build()`` (awaited when it
    returns an awaitable)."""
    metadata = InMemoryBuildMetadata()

    async def run_build(*_: Any) -> Any:
        made = build()
        return await made if inspect.isawaitable(made) else made

    worker = BuildWorker(
        metadata,
        cast(Any, None),
        owner="builder-1",
        source=SOURCE,
        time_limit=time_limit,
        build=run_build,
    )
    return worker, SentEvents(metadata.outbox)


def _docs(worker: BuildWorker) -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = cast(InMemoryBuildStore, worker.builds).documents
    return documents


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
    worker, outbox = _worker(lambda: BuildOutcome(BUILT.image, BUILT.digest, BUILT.strategy))
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


LEAKED = "the secret s3cret-value leaked into the message"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (PackageMissing(LEAKED), "package_missing"),
        (ArchiveLinkEscape(LEAKED), "archive_link_escape"),  # one of a group
        (KeyError(LEAKED), "internal_error"),  # a bug
    ],
)
async def test_a_failure_raised_anywhere_in_the_builder_ends_with_its_catalogued_code(
    monkeypatch: pytest.MonkeyPatch, error: Exception, expected: str
) -> None:
    def fail() -> Any:
        raise error

    worker, outbox = _worker(fail)
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
    worker, outbox = _worker(lambda: None)
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
    worker, outbox = _worker(lambda: asyncio.Event().wait(), time_limit=0.05)
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

    worker, outbox = _worker(build)
    holder["worker"] = worker
    await worker.handle(Command(json.dumps(REQUEST).encode()))
    (_, _), (finished, _) = outbox.sent
    assert finished.kind == "build.failed" and finished.data["status"] == "cancelled"
    assert finished.data["error"] == {"code": "cancelled", "message": "the build was cancelled"}
    doc = _docs(worker)["spaces-1/deployments-75-web"]
    assert doc["status"] == "cancelled" and doc["result"] == finished.data
