"""``/api/v1/spaces/{space}/members``: who holds which role in a space (space admins)."""

from __future__ import annotations

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import access_key, metadata_key
from services.registry.management.errors import Invalid, NotFound
from services.registry.management.guard import space_with_role
from services.registry.management.requests import json_object


async def list_members(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    members = await request.app[metadata_key].accounts.list_memberships(space["_id"])
    return web.json_response(
        {
            "space": space["_id"],
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
    accounts = request.app[metadata_key].accounts
    if await accounts.get_user(username) is None:
        raise NotFound(f"user {username} does not exist")
    created = await accounts.set_membership(space["_id"], username, role.label)
    request.app[access_key].forget(username)
    return web.json_response(
        {"space": space["_id"], "username": username, "role": role.label},
        status=201 if created else 200,
    )


async def delete_member(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    username = request.match_info["username"]
    if not await request.app[metadata_key].accounts.delete_membership(space["_id"], username):
        raise NotFound(f"{username} is not a member of {space['_id']}")
    request.app[access_key].forget(username)
    return web.Response(status=204)
