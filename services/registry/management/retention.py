"""``/api/v1/spaces/{space}/retention`` and tag pins: what the reaper may remove.

The policy of PRODUCT.md §9 (defaults when a space has none); a pinned tag is never removed
by retention. Pinning protects, so writers may pin; unpinning exposes a tag again, so it
takes a space admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import metadata_key, principal_key
from services.registry.management.errors import ApiError, Invalid, NotFound
from services.registry.management.guard import space_with_role
from services.registry.management.requests import json_object
from shared.metadata.store import Document
from shared.oci.errors import RegistryError
from shared.oci.names import RepositoryName, parse_tag
from shared.retention import PolicyInvalid, RetentionPolicy


def _policy(space: Document) -> RetentionPolicy:
    stored = space.get("retention")
    return RetentionPolicy.parse(stored) if stored else RetentionPolicy()


async def get_retention(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.READER)
    return web.json_response({"space": space["_id"], **_policy(space).document()})


async def put_retention(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    body = await json_object(request, {"deployment_tags", "untagged_manifests", "gc"})
    try:
        policy = RetentionPolicy.parse(body)
    except PolicyInvalid as exc:
        raise Invalid(str(exc)) from exc
    await request.app[metadata_key].set_retention(space["_id"], policy.document())
    return web.json_response({"space": space["_id"], **policy.document()})


async def pin_tag(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.WRITER)
    name, tag = _tag_path(request, space["_id"])
    metadata = request.app[metadata_key]
    if await metadata.get_tag(name.full, tag) is None:
        raise NotFound(f"{name.full}:{tag} does not exist")
    pin, created = await metadata.pin_tag(name.full, tag, request[principal_key].username)
    return web.json_response(_pin_json(pin), status=201 if created else 200)


async def unpin_tag(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    name, tag = _tag_path(request, space["_id"])
    if not await request.app[metadata_key].unpin_tag(name.full, tag):
        raise NotFound(f"{name.full}:{tag} is not pinned")
    return web.Response(status=204)


def _tag_path(request: web.Request, space: str) -> tuple[RepositoryName, str]:
    try:
        name = RepositoryName.parse(f"{space}/{request.match_info['repository']}")
        tag = parse_tag(request.match_info["tag"])
    except RegistryError as exc:
        raise ApiError(f"invalid repository or tag: {exc.message}") from exc
    return name, tag


def _pin_json(pin: Document) -> dict[str, Any]:
    return {
        "repository": pin["repository"],
        "tag": pin["tag"],
        "pinned": True,
        "pinned_by": pin.get("pinned_by"),
        "pinned_at": pin["pinned_at"].isoformat(),
    }
