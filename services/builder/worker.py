"""Build requests in, results out: one message is one build, at most once.

For each ``build.request`` the worker makes sure a build document exists (the space and
``build_id`` together are the idempotency key: a request is never answered with, nor attached
to, another space's build), takes it with a lease, runs it under the time limit while
renewing the lease (and noticing a cancellation), and records the outcome with its
``build.succeeded`` or ``build.failed`` event in one transaction. A request that cannot be
read fails with ``request_invalid`` and is acknowledged: a poison message is never
redelivered forever. Statuses, results and events are the lifecycle's
(``shared.builds.lifecycle``); every failure is an error of its catalogue
(``shared.builds.errors``), raised as such by whichever of the builder's modules found it;
anything else a build raises is a bug, reported as ``internal_error``.
Sensitive values come in clear from the deployment server, or sealed in the registry's
commands (opened here with ``SPACEDOCK_SEALING_KEY``); log lines and everything else that
leaves the builder have them masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.builder.build import BuildEnvironment, BuildOutcome, Log, run_build
from services.builder.redaction import Masker
from shared.build_requests import BuildRequest, build_id_of, parse_build_request
from shared.builds import lifecycle
from shared.builds.errors import (
    BuildError,
    Cancelled,
    InternalError,
    RequestInvalid,
    TimedOut,
)
from shared.builds.lifecycle import TERMINAL, Built, Outcome
from shared.events.envelope import EVENTS_EXCHANGE, CloudEvent
from shared.metadata.builds import BuildRecord, BuildRepository, new_build, refused_build
from shared.metadata.errors import SpaceMissing
from shared.oci.names import SPACE_RE
from shared.sealing import Sealer

log = structlog.get_logger("spacedock.builder")
LEASE = dt.timedelta(seconds=30)
RENEW_SECONDS = 10.0
CANCEL_CHECK_SECONDS = 1.0

# One build, from request to pushed image, in a scratch directory of its own (``run_build``).
BuildFunction = Callable[[BuildRequest, Path, BuildEnvironment, Log], Awaitable[BuildOutcome]]
# The strategy label of a build that ended before one was chosen (or never built).
NO_STRATEGY = "none"
BUILD_SECONDS_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
FEATURE_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class BuildMetrics:
    """What the builders of a process count, one group of its metrics (``shared.metrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.builds = Counter(
            "spacedock_builds",
            "Builds ended, by final status and the strategy that built them "
            f"({NO_STRATEGY} when the build ended before one was chosen)",
            ["status", "strategy"],
            registry=registry,
        )
        self.duration = Histogram(
            "spacedock_build_duration_seconds",
            "Time from a build's start to its outcome, by final status",
            ["status"],
            buckets=BUILD_SECONDS_BUCKETS,
            registry=registry,
        )
        self.features = Histogram(
            "spacedock_build_features_seconds",
            "Time a build's configuration features took (substitution, transforms, "
            "structured variables), whether they succeeded or not",
            buckets=FEATURE_SECONDS_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "spacedock_build_queue_depth",
            "Build requests waiting for a builder: the broker queue's ready messages "
            "(every builder's), or the requests of this process waiting for a slot",
            registry=registry,
        )

    def ended(self, outcome: Outcome, strategy: str, seconds: float | None) -> None:
        """A build's outcome; ``seconds`` when it ran (a refused request never started)."""
        self.builds.labels(outcome.status.value, strategy).inc()
        if seconds is not None:
            self.duration.labels(outcome.status.value).observe(seconds)


class EventOutbox(Protocol):
    """Where the worker's events leave from: ``shared.events.outbox.Outbox``."""

    async def add(
        self,
        events: Sequence[CloudEvent],
        *,
        exchange: str = EVENTS_EXCHANGE,
        routing_key: str | None = None,
    ) -> None: ...


class BuildMetadata(Protocol):
    """What the worker keeps in metadata (``MetadataStore`` has both): the builds, and the
    outbox their events and answers are written to."""

    @property
    def builds(self) -> BuildRepository: ...

    @property
    def outbox(self) -> EventOutbox: ...


@dataclass(frozen=True, slots=True)
class Command:
    body: bytes
    correlation_id: str | None = None
    reply_to: str | None = None


class BuildLog:
    """A build's log lines, masked, kept in memory and flushed to its document."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s]
        self.masker = Masker(self.secrets)  # the values and their encodings (base64, hex, ...)
        self.lines: list[str] = []
        self._flushed = 0
        self._started = time.monotonic()

    def __call__(self, line: str) -> None:
        line = self.masker.mask(line)
        self.lines.append(f"[{time.monotonic() - self._started:7.3f}s] {line[:4000]}")

    def unflushed(self) -> list[str]:
        lines, self._flushed = self.lines[self._flushed :], len(self.lines)
        return lines


class BuildWorker:
    def __init__(
        self,
        metadata: BuildMetadata,
        environment: BuildEnvironment,
        *,
        owner: str,
        source: str,
        time_limit: float,
        notify: Any = None,
        sealer: Sealer | None = None,
        build: BuildFunction | None = None,
        metrics: BuildMetrics | None = None,
    ) -> None:
        """``build`` is ``run_build`` unless a test stands in for it; ``metrics`` are the
        process's (without them the worker counts into its own)."""
        self.metrics = metrics or BuildMetrics(CollectorRegistry())
        self.metadata = metadata
        self.sealer = sealer
        self.builds = metadata.builds
        self.environment = environment
        self._build = build or run_build
        self.owner = owner
        self.source = source
        self.time_limit = time_limit
        self._notify = notify or (lambda: None)

    async def handle(self, command: Command) -> None:
        """Process one request to its end; never raises for a bad request."""
        data: Any = None
        command_id: str | None = None
        try:
            data, command_id = _request_data(command.body)
            request = parse_build_request(data, sealer=self.sealer)
        except RequestInvalid as exc:
            await self._refuse(command, data, command_id, exc)
            return
        try:
            doc = await self._document(request, command)
        except SpaceMissing:
            gone = RequestInvalid(f"space {request.space} does not exist")
            await self._refuse(command, data, command_id, gone)
            return
        deadline = time.monotonic() + self.time_limit + 3 * LEASE.total_seconds()
        while True:
            if doc.status in TERMINAL:
                log.info("build_already_done", build_id=request.build_id, status=doc.status.value)
                await self._answer_again(doc, command)
                return
            claimed = await self.builds.claim(request.space, request.build_id, self.owner, LEASE)
            if claimed is not None:
                await self._run(request, claimed)
                return
            # Another builder holds it (this is a redelivery or a repeat): wait for its result,
            # or for its lease to lapse if it died, keeping this message unacknowledged.
            if time.monotonic() > deadline:
                log.warning("build_held_too_long", build_id=request.build_id)
                return
            await asyncio.sleep(_wait_for(doc))
            current = await self.builds.get(request.space, request.build_id)
            if current is None:
                return
            doc = current

    async def _document(self, request: BuildRequest, command: Command) -> BuildRecord:
        doc, created = await self.builds.create(
            new_build(
                request.space,
                request.build_id,
                request.public(),
                correlation_id=command.correlation_id,
                reply_to=command.reply_to,
            )
        )
        if not created and (command.correlation_id or command.reply_to) and not doc.reply_to:
            attached = await self.builds.attach_reply(
                request.space, request.build_id, command.correlation_id, command.reply_to
            )
            doc = attached or doc
        return doc

    async def _run(self, request: BuildRequest, doc: BuildRecord) -> None:
        build_log = BuildLog(sorted(request.sensitive_variables.values(), key=len, reverse=True))
        correlation, reply_to = doc.correlation_id, doc.reply_to
        started = time.monotonic()
        space, build_id = request.space, request.build_id
        await self.metadata.outbox.add(
            [
                lifecycle.started_event(
                    space, build_id, source=self.source, correlation_id=correlation
                )
            ]
        )
        self._notify()
        log.info("build_started", build_id=build_id, space=space)
        task = asyncio.ensure_future(self._execute(request, build_log))
        cancelled = asyncio.Event()
        watcher = asyncio.ensure_future(self._watch(request, task, build_log, cancelled))
        error: BuildError | None = None
        try:
            built: BuildOutcome = await asyncio.wait_for(asyncio.shield(task), self.time_limit)
        except TimeoutError:
            await _stop(task)
            error = TimedOut(f"the build took longer than {self.time_limit:g}s")
        except asyncio.CancelledError:
            if not cancelled.is_set():
                await _stop(task)
                raise  # the worker itself is stopping: the lease lapses and another resumes
            error = Cancelled("the build was cancelled")
        except BuildError as exc:
            error = exc
        except Exception as exc:  # a bug: the build fails, the worker goes on
            log.exception("build_crashed", build_id=build_id)
            error = InternalError(type(exc).__name__)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        seconds = time.monotonic() - started
        duration_ms = int(seconds * 1000)
        strategy = NO_STRATEGY
        if error is None:
            made = Built(built.image, built.digest, built.strategy)
            outcome = lifecycle.succeeded(space, build_id, made, duration_ms=duration_ms)
            strategy = built.strategy
        else:
            outcome = self._failure(space, build_id, error, build_log, duration_ms)
        await self.builds.append_logs(space, build_id, build_log.unflushed())
        event = outcome.event(source=self.source, correlation_id=correlation, reply_to=reply_to)
        await self.builds.finish(space, build_id, self.owner, outcome, [event])
        self.metrics.ended(outcome, strategy, seconds)
        self._notify()
        log.info(
            "build_finished",
            build_id=build_id,
            status=outcome.status.value,
            code=None if outcome.error is None else outcome.error.code,
        )

    @staticmethod
    def _failure(
        space: str, build_id: str, error: BuildError, build_log: BuildLog, duration_ms: int
    ) -> Outcome:
        """The failure, its message masked, written last in the log the result ends with."""
        error = type(error)(build_log.masker.mask(error.message))
        build_log(f"failed: {error.code}: {error.message}")
        return lifecycle.ended_by(
            space, build_id, error, logs=build_log.lines, duration_ms=duration_ms
        )

    async def _execute(self, request: BuildRequest, build_log: BuildLog) -> Any:
        with tempfile.TemporaryDirectory(
            prefix=f"spacedock-build-{request.build_id[:40]}-"
        ) as scratch:
            return await self._build(request, Path(scratch), self.environment, build_log)

    async def _watch(
        self,
        request: BuildRequest,
        task: asyncio.Future[Any],
        build_log: BuildLog,
        cancelled: asyncio.Event,
    ) -> None:
        """Notice a cancellation within a second; renew the lease and save log lines."""
        space, build_id = request.space, request.build_id
        last_renewal = time.monotonic()
        while not task.done():
            await asyncio.sleep(CANCEL_CHECK_SECONDS)
            try:
                if time.monotonic() - last_renewal >= RENEW_SECONDS:
                    await self.builds.append_logs(space, build_id, build_log.unflushed())
                    doc = await self.builds.renew(space, build_id, self.owner, LEASE)
                    last_renewal = time.monotonic()
                else:
                    doc = await self.builds.get(space, build_id)
            except Exception as exc:  # a metadata blip: the build goes on, try again soon
                log.warning("build_watch_failed", build_id=build_id, error=str(exc)[:200])
                continue
            if doc is None or doc.cancel_requested or doc.owner != self.owner:
                cancelled.set()
                task.cancel()
                return

    async def _refuse(
        self, command: Command, data: Any, command_id: str | None, error: RequestInvalid
    ) -> None:
        """Fail the request with ``request_invalid``: recorded as a failed build under its
        space and id when it names both (and they are free), else only reported. It never
        writes onto, nor answers with, a build another request made, except the queued build
        that this very command is the registry's request for."""
        build_id = build_id_of(data)
        named = data.get("space") if isinstance(data, dict) else None
        space = named if isinstance(named, str) and SPACE_RE.fullmatch(named) else None
        outcome = lifecycle.refused(space, build_id, error)
        event = outcome.event(
            source=self.source,
            correlation_id=command.correlation_id,
            reply_to=command.reply_to,
        )
        log.warning("build_request_invalid", build_id=build_id, space=space, error=error.message)
        self.metrics.ended(outcome, NO_STRATEGY, None)
        if build_id is None or space is None:
            await self.metadata.outbox.add([event])
            self._notify()
            return
        try:
            existing, created = await self.builds.create(refused_build(outcome), [event])
        except SpaceMissing:  # nowhere to record it: only reported
            await self.metadata.outbox.add([event])
            self._notify()
            return
        if not created and command_id is not None and existing.command_id == command_id:
            # The registry queued this build with this command, which cannot be read here
            # (a sealing key that differs from the registry's): the build fails with it.
            answer = dataclasses.replace(
                event,
                correlation_id=existing.correlation_id,
                reply_to=existing.reply_to,
            )
            await self.builds.finish(space, build_id, None, outcome, [answer])
        elif not created and command.reply_to:
            # The id belongs to another request: answer this one, report nothing on it.
            await self.metadata.outbox.add(
                [dataclasses.replace(event, reply_to=None)],
                exchange="",
                routing_key=command.reply_to,
            )
        self._notify()

    async def _answer_again(self, doc: BuildRecord, command: Command) -> None:
        """A repeated request gets the first result (to its reply queue) and builds nothing."""
        if not command.reply_to or doc.result is None:
            return
        event = lifecycle.result_event(
            doc.status, doc.result, source=self.source, correlation_id=command.correlation_id
        )
        # Only to the requester's queue (the default exchange routes by queue name).
        await self.metadata.outbox.add([event], exchange="", routing_key=command.reply_to)
        self._notify()


def _wait_for(doc: BuildRecord) -> float:
    """Until the holder's lease ends (it renews while alive), within 0.5 to 5 seconds."""
    until = doc.lease_until
    if not isinstance(until, dt.datetime):
        return 1.0
    if until.tzinfo is None:
        until = until.replace(tzinfo=dt.UTC)
    remaining = (until - dt.datetime.now(dt.UTC)).total_seconds()
    return min(max(remaining, 0.5), 5.0)


async def _stop(task: asyncio.Future[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _request_data(body: bytes) -> tuple[Any, str | None]:
    """The request's data (a CloudEvent's ``data``, or the bare request) and the event's id."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise RequestInvalid("the message is not JSON (or nests too deeply)") from exc
    if isinstance(document, dict) and "specversion" in document:
        event_id = document.get("id")
        return document.get("data"), event_id if isinstance(event_id, str) else None
    return document, None
