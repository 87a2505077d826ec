"""The builds model: Source Docker Image builds asked for, followed and cancelled.

A request is stored as a queued build and published to ``spacedock.commands`` (key
``build.request``) in one transaction, through the outbox, so a builder always gets it; the
``build_id`` makes a repeated request in the same space return the first build instead of
building again (the same id in another space is another build); a request that reuses an id
with other inputs is refused (``BuildIdTaken``), so a pipeline that reuses ids by mistake is
told instead of following a build of something else. The command in the outbox carries the
sensitive values sealed (``SPACEDOCK_SEALING_KEY``), never in clear. Statuses, results and
events are the lifecycle's (``shared.builds.lifecycle``), as in the builder.

A space's builds are listed newest first, a page at a time (``page``); the cursor is the last
build's place in that order (``shared.metadata.builds.listing_key``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.registry.management.errors import ApiError, Conflict, NotFound
from shared.build_requests import BUILD_ID_RE, BuildRequest
from shared.builds import lifecycle
from shared.builds.errors import BuildError
from shared.builds.lifecycle import BuildStatus
from shared.events.envelope import COMMANDS_EXCHANGE
from shared.metadata.builds import BuildRecord, new_build
from shared.metadata.errors import SpaceMissing
from shared.metadata.store import MetadataStore
from shared.sealing import Sealer


def refusal(error: BuildError) -> ApiError:
    """A build error as the management API answers it (``http_status``, ``api_code``)."""
    answer = ApiError(error.message)
    answer.status, answer.code = error.http_status, error.api_code
    return answer


class BuildIdTaken(Conflict):
    """The build id is the space's build of other inputs: repeating a request returns its
    build, but a different request under the same id would silently follow the wrong one."""

    code = "BUILD_ID_TAKEN"


@dataclass(frozen=True, slots=True)
class BuildPage:
    """Builds newest first, and where the next page starts (None on the last page)."""

    builds: list[BuildRecord]
    next_before: str | None


def inputs_differing(recorded: dict[str, Any], offered: dict[str, Any]) -> list[str]:
    """The fields in which a request (``BuildRequest.public``) differs from the one a build
    was recorded with. Sensitive values are compared by name: the registry keeps no trace of
    them. A field the record lacks (``build_args``, before requests kept them) is not
    compared: what an older version did not record cannot be told apart."""
    return sorted(name for name, value in recorded.items() if value != offered.get(name))


class Builds:
    def __init__(
        self,
        metadata: MetadataStore,
        *,
        source: str,
        sealer: Sealer | None,
        notify: Callable[[], None],
    ) -> None:
        self.builds = metadata.builds
        self.source = source  # the CloudEvents source of the commands and events sent here
        self.sealer = sealer
        self.notify = notify  # after a commit: wakes the relay

    async def submit(self, build: BuildRequest, submitted_by: str | None) -> BuildRecord:
        """The queued build, with its command in the outbox; or the build already stored
        under the same id in the same space, unchanged, when it was asked for with the same
        inputs (``BuildIdTaken`` otherwise)."""
        try:
            data = build.command(self.sealer)
        except BuildError as exc:
            raise refusal(exc) from exc
        command = lifecycle.request_command(build.space, build.build_id, data, source=self.source)
        doc = new_build(
            build.space,
            build.build_id,
            build.public(),
            submitted_by=submitted_by,
            command_id=command.id,
        )
        try:
            stored, created = await self.builds.create(doc, [command], exchange=COMMANDS_EXCHANGE)
        except SpaceMissing as exc:  # deleted since the caller's role in it was checked
            raise NotFound(f"space {build.space} does not exist") from exc
        if created:
            self.notify()
        elif stored.request is not None:  # a refused request recorded none: nothing to compare
            differing = inputs_differing(stored.request, build.public())
            if differing:
                raise BuildIdTaken(
                    f"build {build.build_id} already exists in {build.space} with other inputs "
                    f"({', '.join(differing)}); repeat the same request to follow it, or give "
                    "a new build_id",
                    detail={"build_id": build.build_id, "differing": differing},
                )
        return stored

    async def page(
        self, space: str, *, status: BuildStatus | None, after: str | None, limit: int
    ) -> BuildPage:
        """Up to ``limit`` builds of ``space`` newest first (those with ``status`` when given),
        after the build whose place is ``after``."""
        # One more than the page tells whether another page follows without a count.
        found = await self.builds.newest(space, status=status, before=after, limit=limit + 1)
        page = found[:limit]
        return BuildPage(page, page[-1].listing_key if len(found) > limit else None)

    async def get(self, space: str, build_id: str) -> BuildRecord:
        # An id no build can have is not looked up: it may be anything the path held.
        valid = BUILD_ID_RE.fullmatch(build_id) is not None
        build = await self.builds.get(space, build_id) if valid else None
        if build is None:
            raise NotFound(f"build {build_id[:128]} does not exist in {space}")
        return build

    async def cancel(self, space: str, build_id: str) -> BuildStatus:
        """A queued build is cancelled at once (``build.failed``, cancelled); a running one
        when its builder next checks in. The build's status afterwards."""
        build = await self.get(space, build_id)
        marked = await self.builds.request_cancel(space, build_id)
        if marked is None:
            raise Conflict(f"build {build_id} has already finished ({build.status.value})")
        if marked.status is BuildStatus.QUEUED:
            outcome = lifecycle.cancelled_before_start(space, build_id)
            event = outcome.event(
                source=self.source,
                correlation_id=build.correlation_id,
                reply_to=build.reply_to,
            )
            await self.builds.finish(space, build_id, None, outcome, [event])
            self.notify()
        current = await self.builds.get(space, build_id)
        assert current is not None
        return current.status
