"""``/api/v1/spaces/{space}/builds``: ask for a Source Docker Image build, follow it, cancel it.

A request is stored as a queued build and published to ``spacedock.commands`` (key
``build.request``) in one transaction, through the outbox, so a builder always gets it; the
``build_id`` makes a repeated request in the same space return the first build instead of
building again (the same id in another space is another build). The command in the outbox
carries the sensitive values sealed (``SPACEDOCK_SEALING_KEY``), never in clear.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import metadata_key, principal_key, relay_key, settings_key
from services.registry.management.errors import ApiError, Conflict, Invalid, NotFound
from services.registry.management.guard import space_with_role
from services.registry.management.requests import json_object
from shared.build_requests import (
    BUILD_ID_RE,
    FIELDS,
    RequestInvalid,
    SealingUnavailable,
    build_key,
    parse_build_request,
)
from shared.events.envelope import COMMANDS_EXCHANGE, CloudEvent, build_event
from shared.metadata.builds import new_build
from shared.metadata.store import Document
from shared.sealing import Sealer

MAX_REQUEST_BYTES = 4 * 1024 * 1024


class SealingNotConfigured(ApiError):
    status, code = 503, "UNAVAILABLE"


def build_json(doc: Document) -> dict[str, Any]:
    def moment(key: str) -> str | None:
        value = doc.get(key)
        return value.isoformat() if isinstance(value, dt.datetime) else None

    return {
        "build_id": doc["build_id"],
        "space": doc["space"],
        "status": doc["status"],
        "created_at": moment("created_at"),
        "started_at": moment("started_at"),
        "finished_at": moment("finished_at"),
        "result": doc.get("result"),
        "error": doc.get("error"),
        "request": doc.get("request"),
    }


async def create_build(request: web.Request) -> web.Response:
    space = (await space_with_role(request, Role.WRITER))["_id"]
    body = await json_object(request, FIELDS, limit=MAX_REQUEST_BYTES)
    try:
        build = parse_build_request(body, space=space)
    except RequestInvalid as exc:
        raise Invalid(str(exc)) from exc
    settings = request.app[settings_key]
    sealer = Sealer(settings.sealing_key) if settings.sealing_key is not None else None
    try:
        data = build.command(sealer)
    except SealingUnavailable as exc:
        raise SealingNotConfigured(str(exc)) from exc
    command = CloudEvent("build.request", f"{settings.public_url}/api/v1", build.key, data)
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
        {"build_id": stored["build_id"], "status": stored["status"]},
        status=202,
        headers={"Location": f"/api/v1/spaces/{space}/builds/{stored['build_id']}"},
    )


async def get_build(request: web.Request) -> web.Response:
    return web.json_response(build_json(await _build(request, Role.READER)))


async def get_build_logs(request: web.Request) -> web.Response:
    doc = await _build(request, Role.READER)
    return web.json_response(
        {"build_id": doc["build_id"], "status": doc["status"], "logs": doc.get("logs") or []}
    )


async def cancel_build(request: web.Request) -> web.Response:
    """A queued build is cancelled at once; a running one when its builder next checks in."""
    doc = await _build(request, Role.WRITER)
    space, build_id = doc["space"], doc["build_id"]
    builds = request.app[metadata_key].builds
    marked = await builds.request_cancel(space, build_id)
    if marked is None:
        raise Conflict(f"build {build_id} has already finished ({doc['status']})")
    if marked["status"] == "queued":
        settings = request.app[settings_key]
        error = {"code": "cancelled", "message": "cancelled before it started"}
        event = build_event(
            "build.failed",
            source=f"{settings.public_url}/api/v1",
            build_id=build_key(space, build_id),
            data={"build_id": build_id, "space": space, "status": "cancelled", "error": error},
            correlation_id=doc.get("correlation_id"),
            reply_to=doc.get("reply_to"),
        )
        await builds.finish(space, build_id, None, "cancelled", {"error": error}, [event])
        request.app[relay_key].notify()
    current = await builds.get(space, build_id)
    assert current is not None
    return web.json_response({"build_id": build_id, "status": current["status"]}, status=202)


async def _build(request: web.Request, role: Role) -> Document:
    space = (await space_with_role(request, role))["_id"]
    build_id = request.match_info["build_id"]
    valid = BUILD_ID_RE.fullmatch(build_id) is not None
    doc = await request.app[metadata_key].builds.get(space, build_id) if valid else None
    if doc is None:
        raise NotFound(f"build {build_id[:128]} does not exist in {space}")
    return doc
