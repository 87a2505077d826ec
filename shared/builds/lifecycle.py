"""The build lifecycle, in one place: a build's statuses and the moves between them, what
each end records as the result, and the events that report them (PRODUCT.md §6 and §7).

::

    queued ──claim──► running ──► succeeded | failed | cancelled
      │                  └──► running   (its lease lapsed: another builder takes it over)
      ├──► cancelled     (cancelled before a builder took it)
      └──► failed        (the builder cannot read the registry's command for it)

A request the builder cannot read at all is recorded as a build born ``failed``
(``request_invalid``) when it names a free space and id. The builder's worker and the
registry's management API both build results and events through this module alone: their
payloads are the contract of §7 and stay what they were, key for key.

Pure: the build documents and the transactions that move them live in
``shared.metadata.builds``, whose conditional updates match only the statuses a move may
start from (``statuses_before``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.build_requests import build_key
from shared.builds.errors import BuildError, Cancelled, RequestInvalid
from shared.events.envelope import CloudEvent

REQUESTED = "build.request"  # the command that asks for a build (spacedock.commands)
STARTED, SUCCEEDED, FAILED = "build.started", "build.succeeded", "build.failed"  # event kinds
LAST_LINES = 20  # of the log, in a failure's result
UNKNOWN_SUBJECT = "unknown"  # a refused request that names no build


class BuildStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.CANCELLED})
UNFINISHED = frozenset({BuildStatus.QUEUED, BuildStatus.RUNNING})
_NEXT: Mapping[BuildStatus, frozenset[BuildStatus]] = {
    BuildStatus.QUEUED: frozenset({BuildStatus.RUNNING, BuildStatus.FAILED, BuildStatus.CANCELLED}),
    BuildStatus.RUNNING: frozenset({BuildStatus.RUNNING, *TERMINAL}),
    **{status: frozenset() for status in TERMINAL},
}


def may_become(current: str, new: str) -> bool:
    """Whether a build in ``current`` may move to ``new`` (a finished build stays as it is)."""
    return BuildStatus(new) in _NEXT[BuildStatus(current)]


def statuses_before(status: BuildStatus) -> list[str]:
    """The statuses a build may move to ``status`` from (for the store's queries)."""
    return [current.value for current, nexts in _NEXT.items() if status in nexts]


@dataclass(frozen=True, slots=True)
class Built:
    """What a successful build made: ``image`` is ``<host>/<repository>:<tag>``."""

    image: str
    digest: str
    strategy: str  # assembled | docker

    @property
    def reference(self) -> str:
        return f"{self.image}@{self.digest}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a build ended: its status, the result its events carry, and its error.

    ``recorded`` says whether the build keeps ``data`` as its ``result`` (a build cancelled
    before it started has none: nothing ran)."""

    status: BuildStatus
    data: dict[str, Any]
    error: BuildError | None = None
    recorded: bool = True

    @property
    def kind(self) -> str:
        return event_kind(self.status)

    @property
    def result(self) -> dict[str, Any] | None:
        return self.data if self.recorded else None

    def fields(self) -> dict[str, Any]:
        """What the build document records besides its status."""
        return {
            "result": self.result,
            "error": None if self.error is None else self.error.as_dict(),
        }

    def event(self, *, source: str, correlation_id: str | None, reply_to: str | None) -> CloudEvent:
        return result_event(
            self.status,
            self.data,
            source=source,
            correlation_id=correlation_id,
            reply_to=reply_to,
        )


def _about(space: str | None, build_id: str | None, status: BuildStatus) -> dict[str, Any]:
    return {"build_id": build_id, "space": space, "status": status.value}


def succeeded(space: str, build_id: str, built: Built, *, duration_ms: int) -> Outcome:
    data = {
        **_about(space, build_id, BuildStatus.SUCCEEDED),
        "image": built.image,
        "digest": built.digest,
        "reference": built.reference,
        "strategy": built.strategy,
        "duration_ms": duration_ms,
    }
    return Outcome(BuildStatus.SUCCEEDED, data)


def ended_by(
    space: str, build_id: str, error: BuildError, *, logs: Sequence[str], duration_ms: int
) -> Outcome:
    """A build that ran and failed, or was cancelled while it ran, with its last log lines
    (those of ``logs`` the result keeps)."""
    status = BuildStatus.CANCELLED if isinstance(error, Cancelled) else BuildStatus.FAILED
    data = {
        **_about(space, build_id, status),
        "error": error.as_dict(),
        "logs": list(logs[-LAST_LINES:]),
        "duration_ms": duration_ms,
    }
    return Outcome(status, data, error)


def refused(space: str | None, build_id: str | None, error: RequestInvalid) -> Outcome:
    """A request that cannot be read: failed before it was a build (it may name none)."""
    data = {**_about(space, build_id, BuildStatus.FAILED), "error": error.as_dict()}
    return Outcome(BuildStatus.FAILED, data, error)


def cancelled_before_start(space: str, build_id: str) -> Outcome:
    error = Cancelled("cancelled before it started")
    data = {**_about(space, build_id, BuildStatus.CANCELLED), "error": error.as_dict()}
    return Outcome(BuildStatus.CANCELLED, data, error, recorded=False)


def event_kind(status: str) -> str:
    """The event a finished build is reported with."""
    return SUCCEEDED if status == BuildStatus.SUCCEEDED else FAILED


def subject_of(data: Mapping[str, Any]) -> str:
    """An event's subject: the build's name, when the data names one."""
    space, build_id = data.get("space"), data.get("build_id")
    if isinstance(space, str) and isinstance(build_id, str):
        return build_key(space, build_id)
    return UNKNOWN_SUBJECT


def request_command(space: str, build_id: str, data: dict[str, Any], *, source: str) -> CloudEvent:
    """``build.request``: the registry's command for a build it queued (``data`` as
    ``BuildRequest.command`` makes it, sensitive values sealed)."""
    return CloudEvent(REQUESTED, source, build_key(space, build_id), data)


def started_event(
    space: str, build_id: str, *, source: str, correlation_id: str | None
) -> CloudEvent:
    """``build.started``: a builder took the build."""
    data = _about(space, build_id, BuildStatus.RUNNING)
    return CloudEvent(
        STARTED, source, build_key(space, build_id), data, correlation_id=correlation_id
    )


def result_event(
    status: str,
    data: dict[str, Any],
    *,
    source: str,
    correlation_id: str | None,
    reply_to: str | None = None,
) -> CloudEvent:
    """``build.succeeded`` or ``build.failed`` with the result ``data`` of a build that
    finished with ``status`` (also to answer a repeated request with the first result)."""
    return CloudEvent(
        event_kind(status),
        source,
        subject_of(data),
        data,
        correlation_id=correlation_id,
        reply_to=reply_to,
    )
