"""The feed view: a space's repositories, searchable, and a repository's tags as versions
(``services.registry.feed``). Cursors are the API's: opaque to clients, a repository name or
a version's feed key here.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import feed_key
from services.registry.management.errors import ApiError
from services.registry.management.guard import space_with_role
from services.registry.management.requests import bool_param, int_param
from shared.oci.errors import NameInvalid
from shared.oci.names import RepositoryName

# A cursor encodes a repository name or a feed key: neither comes near this.
MAX_CURSOR_LENGTH = 2048


async def list_repositories(request: web.Request) -> web.Response:
    limit = int_param(request, "limit", 50, low=1, high=500)
    after = _decode_cursor(request.query.get("cursor"))
    query = request.query.get("q") or None
    space = await _space(request)
    page = await request.app[feed_key].repositories(space, query=query, after=after, limit=limit)
    repositories = [
        {
            "name": repository.name.split("/", 1)[1],
            "full_name": repository.name,
            "created_at": repository.created_at.isoformat(),
        }
        for repository in page.repositories
    ]
    next_cursor = None if page.next_after is None else _encode_cursor(page.next_after)
    return web.json_response({"repositories": repositories, "next_cursor": next_cursor})


async def list_versions(request: web.Request) -> web.Response:
    space = await _space(request)
    return await versions_response(request, space, request.match_info["repository"])


async def versions_response(request: web.Request, space: str, path: str) -> web.Response:
    """The tags of ``<space>/<path>`` read as Octopus versions, newest first."""
    include_prerelease = bool_param(request, "prerelease", True)
    limit = int_param(request, "limit", 100, low=1, high=10_000)
    before = _decode_cursor(request.query.get("cursor"))
    try:
        name = RepositoryName.parse(f"{space}/{path}")
    except NameInvalid as exc:
        raise ApiError("invalid repository name") from exc
    page = await request.app[feed_key].versions(
        name, include_prerelease=include_prerelease, limit=limit, before=before
    )
    entries = page.versions
    versions = [
        {
            "tag": entry.tag,
            "prerelease": entry.prerelease,
            "digest": entry.digest,
            "size": entry.size,
            "pushed_at": entry.pushed_at.isoformat(),
        }
        for entry in entries
    ]
    next_cursor = None if page.next_before is None else _encode_cursor(page.next_before)
    return web.json_response(
        {"repository": name.full, "versions": versions, "next_cursor": next_cursor}
    )


async def _space(request: web.Request) -> str:
    return (await space_with_role(request, Role.READER)).id


def _encode_cursor(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ApiError("invalid cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError("invalid cursor") from exc
    if not decoded:
        raise ApiError("invalid cursor")
    return decoded
