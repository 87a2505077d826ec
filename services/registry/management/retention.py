"""``/api/v1/spaces/{space}/retention`` and tag pins: what the reaper may remove.

The policy of PRODUCT.md §9 (defaults when a space has none); a pinned tag is never removed
by retention. Pinning protects, so writers may pin; unpinning exposes a tag again, so it
takes a space admin.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import principal_key, retention_key
from services.registry.management.errors import ApiError, Invalid
from services.registry.management.guard import space_with_role
from services.registry.management.requests import bool_param, json_object
from services.registry.retention import space_policy
from shared.metadata.pins import PinRecord
from shared.oci.errors import RegistryError
from shared.oci.names import RepositoryName, parse_tag
from shared.retention import PolicyInvalid, RetentionPolicy


async def get_retention(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.READER)
    return web.json_response({"space": space.id, **space_policy(space).document()})


async def put_retention(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    body = await json_object(request, {"deployment_tags", "untagged_manifests", "gc"})
    try:
        policy = RetentionPolicy.parse(body)
    except PolicyInvalid as exc:
        raise Invalid(str(exc)) from exc
    await request.app[retention_key].set_policy(space.id, policy)
    return web.json_response({"space": space.id, **policy.document()})


async def run_retention_now(request: web.Request) -> web.Response:
    """Apply the policy now; with ``dry_run=true`` only say what would go."""
    space = await space_with_role(request, Role.ADMIN)
    dry_run = bool_param(request, "dry_run", False)
    document = await request.app[retention_key].run(
        space, dry_run=dry_run, actor=request[principal_key].username
    )
    return web.json_response(document)


async def pin_tag(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.WRITER)
    name, tag = _tag_path(request, space.id)
    pin, created = await request.app[retention_key].pin(name, tag, request[principal_key].username)
    return web.json_response(_pin_json(pin), status=201 if created else 200)


async def unpin_tag(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    name, tag = _tag_path(request, space.id)
    await request.app[retention_key].unpin(name, tag)
    return web.Response(status=204)


def _tag_path(request: web.Request, space: str) -> tuple[RepositoryName, str]:
    try:
        name = RepositoryName.parse(f"{space}/{request.match_info['repository']}")
        tag = parse_tag(request.match_info["tag"])
    except RegistryError as exc:
        raise ApiError(f"invalid repository or tag: {exc.message}") from exc
    return name, tag


def _pin_json(pin: PinRecord) -> dict[str, Any]:
    return {
        "repository": pin.repository,
        "tag": pin.tag,
        "pinned": True,
        "pinned_by": pin.pinned_by,
        "pinned_at": pin.pinned_at.isoformat(),
    }
