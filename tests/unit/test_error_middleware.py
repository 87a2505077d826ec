"""The error middleware on a real aiohttp server: a failure after a response began drops the
connection instead of writing a second response into the first one's body."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from services.registry.middleware import error_bodies
from shared.storage.port import StorageError


async def streams_then_fails(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100"})
    await response.prepare(request)
    await response.write(b"A" * 40)
    raise StorageError("the object store went away mid-blob")


async def fails_at_once(request: web.Request) -> web.StreamResponse:
    raise StorageError("the object store is down")


async def exchange(server: BaseTestServer, path: str) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\nGET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    await writer.drain()
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 1):
            received += chunk
    except (ConnectionError, TimeoutError):
        pass
    writer.close()
    return received


async def test_a_failure_mid_body_drops_the_connection() -> None:
    app = web.Application(middlewares=[error_bodies])
    app.router.add_get("/mid", streams_then_fails)
    app.router.add_get("/first", fails_at_once)
    async with TestServer(app) as server:
        received = await exchange(server, "/mid")
        assert received.startswith(b"HTTP/1.1 200")
        assert received.count(b"HTTP/1.1") == 1  # no 503 inside the body, no second answer
        assert received.endswith(b"A" * 40)
        # Before anything was sent, the failure is an ordinary 503 with its body.
        answered = await exchange(server, "/first")
        assert answered.startswith(b"HTTP/1.1 503") and b"UNAVAILABLE" in answered
