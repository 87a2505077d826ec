"""``/api/v1/spaces/{space}/builds``: ask for a Source Docker Image build, follow it, cancel it.

A request is stored as a queued build and published to ``spacedock.commands`` (key
``build.request``) in one transaction, through the outbox, so a builder always gets it; the
``build_id`` makes a repeated request return the first build instead of building again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import metadata_key, principal_key, relay_key, settings_key
from services.registry.management.errors import Conflict, Invalid, NotFound
from services.registry.management.guard import space_with_role
from services.registry.management.requests import json_object
from shared.build_requests import FIELDS, RequestInvalid, parse_build_request
from shared.events.envelope import COMMANDS_EXCHANGE, CloudEvent, build_event
from shared.metadata.builds import new_build
from shared.metadata.store import Document

MAX_REQUEST_BYTES = 4 * 1024 * 1024


def build_json(doc: Document) -> dict[str, Any]:
    def moment(key: str) -> str | None:
        value = doc.get(key)
        return value.isoformat() if isinstance(value, dt.datetime) else None

    return {
        "build_id": doc["_id"],
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
    doc = new_build(
        build.build_id, space, build.public(), submitted_by=request[principal_key].username
    )
    command = CloudEvent(
        "build.request",
        f"{settings.public_url}/api/v1",
        build.build_id,
        {**body, "build_id": build.build_id, "space": space},
    )
    builds = request.app[metadata_key].builds
    stored, created = await builds.create(doc, [command], exchange=COMMANDS_EXCHANGE)
    if stored["space"] != space:
        raise Conflict(f"build id {build.build_id} is taken")
    if created:
        request.app[relay_key].notify()
    return web.json_response(
        {"build_id": stored["_id"], "status": stored["status"]},
        status=202,
        headers={"Location": f"/api/v1/spaces/{space}/builds/{stored['_id']}"},
    )


async def get_build(request: web.Request) -> web.Response:
    return web.json_response(build_json(await _build(request, Role.READER)))


async def get_build_logs(request: web.Request) -> web.Response:
    doc = await _build(request, Role.READER)
    return web.json_response(
        {"build_id": doc["_id"], "status": doc["status"], "logs": doc.get("logs") or []}
    )


async def cancel_build(request: web.Request) -> web.Response:
    """A queued build is cancelled at once; a running one when its builder next checks in."""
    doc = await _build(request, Role.WRITER)
    builds = request.app[metadata_key].builds
    marked = await builds.request_cancel(doc["_id"])
    if marked is None:
        raise Conflict(f"build {doc['_id']} has already finished ({doc['status']})")
    if marked["status"] == "queued":
        settings = request.app[settings_key]
        error = {"code": "cancelled", "message": "cancelled before it started"}
        event = build_event(
            "build.failed",
            source=f"{settings.public_url}/api/v1",
            build_id=doc["_id"],
            data={
                "build_id": doc["_id"],
                "space": doc["space"],
                "status": "cancelled",
                "error": error,
            },
            correlation_id=doc.get("correlation_id"),
            reply_to=doc.get("reply_to"),
        )
        await builds.finish(doc["_id"], None, "cancelled", {"error": error}, [event])
        request.app[relay_key].notify()
    current = await builds.get(doc["_id"])
    assert current is not None
    return web.json_response({"build_id": doc["_id"], "status": current["status"]}, status=202)


async def _build(request: web.Request, role: Role) -> Document:
    space = (await space_with_role(request, role))["_id"]
    build_id = request.match_info["build_id"]
    doc = await request.app[metadata_key].builds.get(build_id)
    if doc is None or doc["space"] != space:
        raise NotFound(f"build {build_id[:128]} does not exist in {space}")
    return doc
