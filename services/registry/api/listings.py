"""``/v2/<name>/tags/list`` and ``/v2/_catalog``: lexical order, ``n``/``last``, ``Link``."""

from __future__ import annotations

from aiohttp import web

from services.registry.api.common import next_link, page_size, repository
from services.registry.identity.roles import Action
from services.registry.keys import access_key, principal_key, registry_key
from shared.oci.names import RepositoryName


async def list_tags(request: web.Request) -> web.Response:
    name = await repository(request, Action.PULL)
    n = page_size(request)
    last = request.query.get("last") or None
    if n == 0:
        return web.json_response({"name": name.full, "tags": []})
    tags = await request.app[registry_key].tags(name, last, n)
    headers = {}
    if len(tags) == n:
        headers["Link"] = next_link(f"/v2/{name}/tags/list", tags[-1], n)
    return web.json_response({"name": name.full, "tags": tags}, headers=headers)


async def catalog(request: web.Request) -> web.Response:
    """Only repositories of spaces the caller has a role in."""
    spaces = await request.app[access_key].authorize_catalog(request[principal_key])
    n = page_size(request)
    last = request.query.get("last") or None
    if n == 0:
        return web.json_response({"repositories": []})
    if last is not None:
        RepositoryName.parse(last)
    names = await request.app[registry_key].catalog(last, n, spaces)
    headers = {}
    if len(names) == n:
        headers["Link"] = next_link("/v2/_catalog", names[-1], n)
    return web.json_response({"repositories": names}, headers=headers)
