"""``/api/v1/spaces/{space}/builds``: ask for a Source Docker Image build, follow it, cancel it,
list a space's builds (``services.registry.builds``). Cursors are the API's: opaque to
clients, a build's place in the listing here."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

from aiohttp import web

from services.registry.builds import refusal
from services.registry.identity.roles import Role
from services.registry.keys import builds_key, principal_key
from services.registry.management.errors import ApiError
from services.registry.management.guard import space_with_role
from services.registry.management.requests import int_param, json_object
from shared.build_requests import BUILD_ID_RE, FIELDS, parse_build_request
from shared.builds.errors import BuildError
from shared.builds.lifecycle import BuildStatus
from shared.metadata.builds import BuildRecord

MAX_REQUEST_BYTES = 4 * 1024 * 1024
MAX_PAGE = 500
# A build's place in the listing (shared.metadata.builds.listing_key): what a cursor holds.
LISTING_KEY_RE = re.compile(rf"[0-9]{{13}}\|(?:{BUILD_ID_RE.pattern})")
STATUSES = ", ".join(status.value for status in BuildStatus)


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
        build = parse_build_request(body, space=space, deployment_required=True)
    except BuildError as exc:
        raise refusal(exc) from exc
    stored = await request.app[builds_key].submit(build, request[principal_key].username)
    return web.json_response(
        {"build_id": stored.build_id, "status": stored.status.value},
        status=202,
        headers={"Location": f"/api/v1/spaces/{space}/builds/{stored.build_id}"},
    )


async def list_builds(request: web.Request) -> web.Response:
    """The space's builds, newest first, a page at a time (reader)."""
    limit = int_param(request, "limit", 50, low=1, high=MAX_PAGE)
    status = _status(request.query.get("status"))
    after = _decode_cursor(request.query.get("cursor"))
    space = (await space_with_role(request, Role.READER)).id
    page = await request.app[builds_key].page(space, status=status, after=after, limit=limit)
    next_cursor = None if page.next_before is None else _encode_cursor(page.next_before)
    return web.json_response(
        {"builds": [build_json(build) for build in page.builds], "next_cursor": next_cursor}
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


def _status(raw: str | None) -> BuildStatus | None:
    if raw is None:
        return None
    try:
        return BuildStatus(raw)
    except ValueError:
        raise ApiError(f"status must be one of {STATUSES}") from None


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    """The listing key a cursor holds; one this API did not give is refused, not looked up."""
    if not cursor:
        return None
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not LISTING_KEY_RE.fullmatch(key):
        raise ApiError("invalid cursor: pass the next_cursor of a previous page")
    return key
