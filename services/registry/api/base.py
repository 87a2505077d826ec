"""``/v2/``: the API version check, which is also how clients discover the auth scheme."""

from __future__ import annotations

from aiohttp import web

from services.registry.identity.access import AuthenticationRequired
from services.registry.keys import principal_key


async def version_check(request: web.Request) -> web.Response:
    if not request[principal_key].presented_credentials:
        raise AuthenticationRequired()
    return web.json_response({})
