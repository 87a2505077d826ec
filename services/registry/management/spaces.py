"""``/api/v1/spaces``: list, create, read, rename or open to anonymous pulls, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import spaces_key
from services.registry.management.errors import Invalid
from services.registry.management.guard import (
    caller,
    require_scope,
    require_superuser,
    space_with_role,
)
from services.registry.management.requests import json_object
from shared.metadata.spaces import SpaceRecord
from shared.oci.names import SPACE_RE

MAX_ID_LENGTH = 63
MAX_NAME_LENGTH = 200


def space_json(space: SpaceRecord) -> dict[str, Any]:
    return {
        "id": space.id,
        "name": space.name,
        "anonymous_pull": space.anonymous_pull,
        "created_at": space.created_at.isoformat(),
    }


async def list_spaces(request: web.Request) -> web.Response:
    """The spaces the caller has a role in."""
    require_scope(request, "registry", "catalog", "*")
    spaces = await request.app[spaces_key].visible_to(caller(request))
    return web.json_response({"spaces": [space_json(space) for space in spaces]})


async def create_space(request: web.Request) -> web.Response:
    await require_superuser(request)
    body = await json_object(request, {"id", "name", "anonymous_pull"})
    name = _name(body.get("name"))
    anonymous_pull = _flag(body.get("anonymous_pull", False))
    requested = body.get("id")
    space_id = None if requested is None else _space_id(requested)
    space = await request.app[spaces_key].create(space_id, name, anonymous_pull)
    return web.json_response(
        space_json(space), status=201, headers={"Location": f"/api/v1/spaces/{space.id}"}
    )


async def get_space(request: web.Request) -> web.Response:
    return web.json_response(space_json(await space_with_role(request, Role.READER)))


async def update_space(request: web.Request) -> web.Response:
    await space_with_role(request, Role.ADMIN)
    body = await json_object(request, {"name", "anonymous_pull"})
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = _name(body["name"])
    if "anonymous_pull" in body:
        changes["anonymous_pull"] = _flag(body["anonymous_pull"])
    space = await request.app[spaces_key].update(request.match_info["space"], changes)
    return web.json_response(space_json(space))


async def delete_space(request: web.Request) -> web.Response:
    """Only an empty space other than the default can go (``Spaces.delete``)."""
    await require_superuser(request)
    await request.app[spaces_key].delete(request.match_info["space"])
    return web.Response(status=204)


def _space_id(value: Any) -> str:
    if (
        not isinstance(value, str)
        or len(value) > MAX_ID_LENGTH
        or SPACE_RE.fullmatch(value) is None
    ):
        raise Invalid("id must be lowercase letters and digits joined by single dashes")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise Invalid(f"name must be a non-empty string of at most {MAX_NAME_LENGTH} characters")
    return value.strip()


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("anonymous_pull must be true or false")
    return value
