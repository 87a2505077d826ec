"""``/v2/``: the API version check."""

from __future__ import annotations

from aiohttp import web


async def version_check(request: web.Request) -> web.Response:
    return web.json_response({})
