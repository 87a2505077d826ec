"""``/api/v1/spaces``: list, create, read, rename or open to anonymous pulls, delete."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pymongo.errors import DuplicateKeyError

from services.registry.bootstrap import DEFAULT_SPACE
from services.registry.identity.roles import Role
from services.registry.keys import access_key, metadata_key, registry_key
from services.registry.management.errors import Conflict, Invalid, NotFound
from services.registry.management.guard import (
    caller,
    require_scope,
    require_superuser,
    space_with_role,
)
from services.registry.management.requests import json_object
from shared.metadata.store import Document
from shared.oci.names import SPACE_RE

GENERATED_PREFIX = "spaces-"
MAX_ID_LENGTH = 63
MAX_NAME_LENGTH = 200


def space_json(doc: Document) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "name": doc["name"],
        "anonymous_pull": bool(doc.get("anonymous_pull", False)),
        "created_at": doc["created_at"].isoformat(),
    }


async def list_spaces(request: web.Request) -> web.Response:
    """The spaces the caller has a role in."""
    require_scope(request, "registry", "catalog", "*")
    visible = await request.app[access_key].visible_spaces(caller(request))
    spaces = await request.app[metadata_key].list_spaces()
    return web.json_response(
        {"spaces": [space_json(doc) for doc in spaces if visible is None or doc["_id"] in visible]}
    )


async def create_space(request: web.Request) -> web.Response:
    await require_superuser(request)
    body = await json_object(request, {"id", "name", "anonymous_pull"})
    name = _name(body.get("name"))
    anonymous_pull = _flag(body.get("anonymous_pull", False))
    metadata = request.app[metadata_key]
    requested = body.get("id")
    if requested is not None:
        space_id = _space_id(requested)
        try:
            doc = await metadata.create_space(space_id, name, anonymous_pull)
        except DuplicateKeyError as exc:
            raise Conflict(f"space {space_id} already exists") from exc
    else:
        doc = await _create_numbered(request, name, anonymous_pull)
    return web.json_response(
        space_json(doc), status=201, headers={"Location": f"/api/v1/spaces/{doc['_id']}"}
    )


async def _create_numbered(request: web.Request, name: str, anonymous_pull: bool) -> Document:
    """The next free ``spaces-N``; a concurrent create of the same N makes this try N+1."""
    metadata = request.app[metadata_key]
    for _ in range(10):
        taken = await metadata.space_ids(GENERATED_PREFIX)
        numbers = [int(m.group(1)) for m in map(_NUMBERED.fullmatch, taken) if m is not None]
        space_id = f"{GENERATED_PREFIX}{max(numbers, default=0) + 1}"
        try:
            return await metadata.create_space(space_id, name, anonymous_pull)
        except DuplicateKeyError:
            continue
    raise Conflict("could not allocate a space id; retry")


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
    space_id = request.match_info["space"]
    doc = await request.app[metadata_key].update_space(space_id, changes)
    if doc is None:
        raise NotFound(f"space {space_id} does not exist")
    request.app[registry_key].forget_space(space_id)
    return web.json_response(space_json(doc))


async def delete_space(request: web.Request) -> web.Response:
    """Only an empty space other than the default can go: nothing is deleted implicitly."""
    await require_superuser(request)
    space_id = (await _existing(request))["_id"]
    metadata = request.app[metadata_key]
    if space_id == DEFAULT_SPACE[0]:
        raise Conflict("the default space cannot be deleted")
    if await metadata.space_has_repositories(space_id):
        raise Conflict(f"space {space_id} still has repositories")
    members = await metadata.delete_space(space_id)
    request.app[registry_key].forget_space(space_id)
    for username in members or []:
        request.app[access_key].forget(username)
    return web.Response(status=204)


async def _existing(request: web.Request) -> Document:
    space_id = request.match_info["space"]
    doc = await request.app[metadata_key].get_space(space_id)
    if doc is None:
        raise NotFound(f"space {space_id} does not exist")
    return doc


_NUMBERED = re.compile(rf"{re.escape(GENERATED_PREFIX)}(\d{{1,9}})")


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
