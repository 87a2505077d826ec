"""``/api/v1/spaces/{space}/builds``: ask for a Source Docker Image build, follow it, cancel it.

A request is stored as a queued build and published to ``spacedock.commands`` (key
``build.request``) in one transaction, through the outbox, so a builder always gets it; the
``build_id`` makes a repeated request in the same space return the first build instead of
building again (the same id in another space is another build). The command in the outbox
carries the sensitive values sealed (``SPACEDOCK_SEALING_KEY``), never in clear. Statuses,
results and events are the lifecycle's (``shared.builds.lifecycle``), as in the builder.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import metadata_key, principal_key, relay_key, settings_key
from services.registry.management.errors import ApiError, Conflict, NotFound
from services.registry.management.guard import space_with_role
from services.registry.management.requests import json_object
from shared.build_requests import BUILD_ID_RE, FIELDS, parse_build_request
from shared.builds import lifecycle
from shared.builds.errors import BuildError
from shared.builds.lifecycle import BuildStatus
from shared.events.envelope import COMMANDS_EXCHANGE
from shared.metadata.builds import BuildRecord, new_build
from shared.sealing import Sealer

MAX_REQUEST_BYTES = 4 * 1024 * 1024


def refusal(error: BuildError) -> ApiError:
    """A build error as the management API answers it (``http_status``, ``api_code``)."""
    answer = ApiError(error.message)
    answer.status, answer.code = error.http_status, error.api_code
    return answer


def build_json(build: BuildRecord) -> dict[str, Any]:
    def moment(value: dt.datetime | None) -> str | None:
        return value.isoformat() if isinstance(value, dt.datetime) else None

    return {
        "build_id": build.build_id,
        "space": build.space,
        "status": build.status.value,
        "created_at": moment(build.created_at),
        "started_at": moment(build.started_at),
        "finished_at": moment(build.finished_at),
        "result": build.result,
        "error": build.error,
        "request": build.request,
    }


async def create_build(request: web.Request) -> web.Response:
    space = (await space_with_role(request, Role.WRITER))["_id"]
    body = await json_object(request, FIELDS, limit=MAX_REQUEST_BYTES)
    settings = request.app[settings_key]
    sealer = Sealer(settings.sealing_key) if settings.sealing_key is not None else None
    try:
        build = parse_build_request(body, space=space)
        data = build.command(sealer)
    except BuildError as exc:
        raise refusal(exc) from exc
    command = lifecycle.request_command(
        space, build.build_id, data, source=f"{settings.public_url}/api/v1"
    )
    doc = new_build(
        space,
        build.build_id,
        build.public(),
        submitted_by=request[principal_key].username,
        command_id=command.id,
    )
    builds = request.app[metadata_key].builds
    stored, created = await builds.create(doc, [command], exchange=COMMANDS_EXCHANGE)
    if created:
        request.app[relay_key].notify()
    return web.json_response(
        {"build_id": stored.build_id, "status": stored.status.value},
        status=202,
        headers={"Location": f"/api/v1/spaces/{space}/builds/{stored.build_id}"},
    )


async def get_build(request: web.Request) -> web.Response:
    return web.json_response(build_json(await _build(request, Role.READER)))


async def get_build_logs(request: web.Request) -> web.Response:
    build = await _build(request, Role.READER)
    return web.json_response(
        {"build_id": build.build_id, "status": build.status.value, "logs": list(build.logs)}
    )


async def cancel_build(request: web.Request) -> web.Response:
    """A queued build is cancelled at once; a running one when its builder next checks in."""
    build = await _build(request, Role.WRITER)
    space, build_id = build.space, build.build_id
    builds = request.app[metadata_key].builds
    marked = await builds.request_cancel(space, build_id)
    if marked is None:
        raise Conflict(f"build {build_id} has already finished ({build.status.value})")
    if marked.status is BuildStatus.QUEUED:
        settings = request.app[settings_key]
        outcome = lifecycle.cancelled_before_start(space, build_id)
        event = outcome.event(
            source=f"{settings.public_url}/api/v1",
            correlation_id=build.correlation_id,
            reply_to=build.reply_to,
        )
        await builds.finish(space, build_id, None, outcome, [event])
        request.app[relay_key].notify()
    current = await builds.get(space, build_id)
    assert current is not None
    return web.json_response({"build_id": build_id, "status": current.status.value}, status=202)


async def _build(request: web.Request, role: Role) -> BuildRecord:
    space = (await space_with_role(request, role))["_id"]
    build_id = request.match_info["build_id"]
    valid = BUILD_ID_RE.fullmatch(build_id) is not None
    build = await request.app[metadata_key].builds.get(space, build_id) if valid else None
    if build is None:
        raise NotFound(f"build {build_id[:128]} does not exist in {space}")
    return build
