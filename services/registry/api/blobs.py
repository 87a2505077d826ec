"""``/v2/<name>/blobs/<digest>``: read (with ranges, or a redirect to storage) and unlink."""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from services.registry.api.common import DOCKER_CONTENT_DIGEST, repository
from services.registry.keys import registry_key, settings_key, store_key
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.ranges import parse_range

SENDFILE_FALLBACK_CHUNK = 1024 * 1024


async def get_blob(request: web.Request) -> web.StreamResponse:
    name = await repository(request)
    digest = Digest.parse(request.match_info["digest"])
    blob = await request.app[registry_key].blob(name, digest)
    settings = request.app[settings_key]
    if request.method == "GET" and settings.s3 is not None and settings.s3.redirect:
        url = await request.app[store_key].presigned_url(blob.digest)
        if url is not None:
            raise web.HTTPTemporaryRedirect(url, headers={DOCKER_CONTENT_DIGEST: blob.digest})

    headers = {
        DOCKER_CONTENT_DIGEST: blob.digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{blob.digest}"',
        "Cache-Control": "max-age=31536000",
    }
    byte_range = parse_range(request.headers.get("Range"), blob.size)
    start, count, status = 0, blob.size, 200
    if byte_range is not None:
        start, count, status = byte_range.start, byte_range.length, 206
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{blob.size}"
    if blob.location.path is not None:
        try:
            handle = await asyncio.to_thread(blob.location.path.open, "rb")
        except FileNotFoundError as exc:
            raise errors.BlobUnknown(detail={"digest": blob.digest}) from exc
        return FileRangeResponse(handle, start, count, status, headers)

    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = count
    await response.prepare(request)
    if request.method != "HEAD":
        async for chunk in request.app[store_key].read(blob.digest, start, count):
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request) -> web.Response:
    name = await repository(request)
    digest = Digest.parse(request.match_info["digest"])
    await request.app[registry_key].delete_blob(name, digest)
    return web.Response(status=202, headers={DOCKER_CONTENT_DIGEST: str(digest)})


class FileRangeResponse(web.StreamResponse):
    """``count`` bytes of an open file from ``offset``, sent with sendfile(2); closes it."""

    def __init__(
        self, handle: BinaryIO, offset: int, count: int, status: int, headers: dict[str, str]
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._handle, self._offset, self._count = handle, offset, count
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        loop = asyncio.get_running_loop()
        handle = self._handle
        try:
            writer = await super().prepare(request)
            if request.method == "HEAD" or self._count == 0:
                await super().write_eof()
                return writer
            transport = request.transport
            if transport is None:
                raise ConnectionResetError("connection lost")
            try:
                await loop.sendfile(transport, handle, self._offset, self._count)
            except NotImplementedError:
                await self._copy(loop, handle)
            await super().write_eof()
            return writer
        finally:
            await loop.run_in_executor(None, handle.close)

    async def _copy(self, loop: asyncio.AbstractEventLoop, handle: BinaryIO) -> None:
        await loop.run_in_executor(None, handle.seek, self._offset)
        remaining = self._count
        while remaining > 0:
            chunk = await loop.run_in_executor(
                None, handle.read, min(SENDFILE_FALLBACK_CHUNK, remaining)
            )
            if not chunk:
                raise ConnectionResetError("blob file shorter than expected")
            remaining -= len(chunk)
            await super().write(chunk)
