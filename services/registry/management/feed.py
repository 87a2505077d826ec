"""The feed view: a space's repositories, searchable, and a repository's tags as versions.

This is how the deployment server lists images and picks versions: tags read as Octopus
versions (``shared.versions``), newest first.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import metadata_key
from services.registry.management.errors import ApiError, NotFound
from services.registry.management.guard import space_with_role
from services.registry.management.requests import bool_param, int_param
from shared.oci.errors import NameInvalid
from shared.oci.names import RepositoryName


async def list_repositories(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 50, low=1, high=500)
    after = _decode_cursor(request.query.get("cursor"))
    query = request.query.get("q") or None
    space = await _space(request)
    docs = await request.app[metadata_key].search_repositories(
        space, query=query, after=after, limit=limit + 1
    )
    page = docs[:limit]
    repositories = [
        {
            "name": doc["_id"].split("/", 1)[1],
            "full_name": doc["_id"],
            "created_at": doc["created_at"].isoformat(),
        }
        for doc in page
    ]
    next_cursor = _encode_cursor(page[-1]["_id"]) if len(docs) > limit else None
    return web.json_response({"repositories": repositories, "next_cursor": next_cursor})


async def list_versions(request: web.Request) -> web.Response:
    space = await _space(request)
    return await versions_response(request, space, request.match_info["repository"])


async def versions_response(request: web.Request, space: str, path: str) -> web.Response:
    """The tags of ``<space>/<path>`` read as Octopus versions, newest first."""
    include_prerelease = bool_param(request, "prerelease", True)
    limit = int_param(request, "limit", 100, low=1, high=10_000)
    try:
        name = RepositoryName.parse(f"{space}/{path}")
    except NameInvalid as exc:
        raise ApiError("invalid repository name") from exc
    metadata = request.app[metadata_key]
    if not await metadata.repository_exists(name.full):
        raise NotFound(f"repository {name.full} does not exist")
    # The order is kept with each tag (shared.versions.order_key) and served by an index,
    # so the newest page costs the same at 20 tags and at 20,000.
    entries = await metadata.newest_versions(
        name.full, include_prerelease=include_prerelease, before=None, limit=limit
    )
    versions = [
        {
            "tag": entry["tag"],
            "prerelease": entry["prerelease"],
            "digest": entry["digest"],
            "size": entry["size"],
            "pushed_at": entry["pushed_at"].isoformat(),
        }
        for entry in entries
    ]
    return web.json_response({"repository": name.full, "versions": versions})


async def _space(request: web.Request) -> str:
    space: str = (await space_with_role(request, Role.READER))["_id"]
    return space


def _encode_cursor(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError("invalid cursor") from exc
