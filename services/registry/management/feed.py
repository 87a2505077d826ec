"""The feed view: a space's repositories, searchable, and a repository's tags as versions.

This is how the deployment server lists images and picks versions: tags read as Octopus
versions (``shared.versions``), newest first.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import metadata_key
from services.registry.management.errors import ApiError, NotFound
from services.registry.management.guard import space_with_role
from services.registry.management.requests import bool_param, int_param
from shared.oci.errors import NameInvalid
from shared.oci.names import RepositoryName
from shared.versions import try_parse_docker_tag


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

    versions: list[tuple[Any, dict[str, Any]]] = []
    for entry in await metadata.tagged_manifests(name.full):
        version = try_parse_docker_tag(entry["tag"])
        if version is None or (version.is_prerelease and not include_prerelease):
            continue
        versions.append(
            (
                (version.sort_key, entry["pushed_at"], entry["tag"]),
                {
                    "tag": entry["tag"],
                    "prerelease": version.is_prerelease,
                    "digest": entry["digest"],
                    "size": entry["size"],
                    "pushed_at": entry["pushed_at"].isoformat(),
                },
            )
        )
    versions.sort(key=lambda item: item[0], reverse=True)
    return web.json_response(
        {"repository": name.full, "versions": [body for _, body in versions[:limit]]}
    )


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
