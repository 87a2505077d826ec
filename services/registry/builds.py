"""The builds model: Source Docker Image builds asked for, followed and cancelled.

A request is stored as a queued build and published to ``spacedock.commands`` (key
``build.request``) in one transaction, through the outbox, so a builder always gets it; the
``build_id`` makes a repeated request in the same space return the first build instead of
building again (the same id in another space is another build). The command in the outbox
carries the sensitive values sealed (``SPACEDOCK_SEALING_KEY``), never in clear. Statuses,
results and events are the lifecycle's (``shared.builds.lifecycle``), as in the builder.
"""

from __future__ import annotations

from collections.abc import Callable

from services.registry.management.errors import ApiError, Conflict, NotFound
from shared.build_requests import BUILD_ID_RE, BuildRequest
from shared.builds import lifecycle
from shared.builds.errors import BuildError
from shared.builds.lifecycle import BuildStatus
from shared.events.envelope import COMMANDS_EXCHANGE
from shared.metadata.builds import BuildRecord, new_build
from shared.metadata.store import MetadataStore
from shared.sealing import Sealer


def refusal(error: BuildError) -> ApiError:
    """A build error as the management API answers it (``http_status``, ``api_code``)."""
    answer = ApiError(error.message)
    answer.status, answer.code = error.http_status, error.api_code
    return answer


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
        under the same id in the same space, unchanged."""
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
        stored, created = await self.builds.create(doc, [command], exchange=COMMANDS_EXCHANGE)
        if created:
            self.notify()
        return stored

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
