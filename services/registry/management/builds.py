"""``/api/v1/spaces/{space}/builds``: ask for a Source Docker Image build, follow it, cancel it
(``services.registry.builds``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from services.registry.builds import refusal
from services.registry.identity.roles import Role
from services.registry.keys import builds_key, principal_key
from services.registry.management.guard import space_with_role
from services.registry.management.requests import json_object
from shared.build_requests import FIELDS, parse_build_request
from shared.builds.errors import BuildError
from shared.metadata.builds import BuildRecord

MAX_REQUEST_BYTES = 4 * 1024 * 1024


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
    space = (await space_with_role(request, Role.WRITER)).id
    body = await json_object(request, FIELDS, limit=MAX_REQUEST_BYTES)
    try:
        build = parse_build_request(body, space=space)
    except BuildError as exc:
        raise refusal(exc) from exc
    stored = await request.app[builds_key].submit(build, request[principal_key].username)
    return web.json_response(
        {"build_id": stored.build_id, "status": stored.status.value},
        status=202,
        headers={"Location": f"/api/v1/spaces/{space}/builds/{stored.build_id}"},
    )


async def get_build(request: web.Request) -> web.Response:
    return web.json_response(build_json(await _build(request)))


async def get_build_logs(request: web.Request) -> web.Response:
    build = await _build(request)
    return web.json_response(
        {"build_id": build.build_id, "status": build.status.value, "logs": list(build.logs)}
    )


async def cancel_build(request: web.Request) -> web.Response:
    """A queued build is cancelled at once; a running one when its builder next checks in."""
    space = (await space_with_role(request, Role.WRITER)).id
    build_id = request.match_info["build_id"]
    status = await request.app[builds_key].cancel(space, build_id)
    return web.json_response({"build_id": build_id, "status": status.value}, status=202)


async def _build(request: web.Request) -> BuildRecord:
    space = (await space_with_role(request, Role.READER)).id
    return await request.app[builds_key].get(space, request.match_info["build_id"])
