"""``/api/v1/spaces/{space}/members``: who holds which role in a space (space admins)."""

from __future__ import annotations

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import accounts_key
from services.registry.management.errors import Invalid
from services.registry.management.guard import space_with_role
from services.registry.management.requests import json_object


async def list_members(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    members = await request.app[accounts_key].members(space.id)
    return web.json_response(
        {
            "space": space.id,
            "members": [{"username": m["username"], "role": m["role"]} for m in members],
        }
    )


async def put_member(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    body = await json_object(request, {"role"})
    role = Role.parse(body.get("role"))
    if role is None:
        raise Invalid("role must be reader, writer or admin")
    username = request.match_info["username"]
    created = await request.app[accounts_key].set_member(space.id, username, role)
    return web.json_response(
        {"space": space.id, "username": username, "role": role.label},
        status=201 if created else 200,
    )


async def delete_member(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    await request.app[accounts_key].remove_member(space.id, request.match_info["username"])
    return web.Response(status=204)
