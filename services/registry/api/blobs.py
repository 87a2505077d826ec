"""``/v2/<name>/blobs/<digest>``: read (with ranges, or a redirect to storage) and unlink.

A download holds a storage thread only to read from storage (and, for a local file, to hand
the socket what it takes); it waits for a slow client on the event loop, and a client that
takes no bytes for ``send_timeout_seconds`` is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import select
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from services.registry.api.common import DOCKER_CONTENT_DIGEST, repository
from services.registry.identity.roles import Action
from services.registry.keys import registry_key, settings_key, store_key
from services.registry.registry import BlobHandle
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.ranges import parse_range
from shared.storage.port import StorageError

log = structlog.get_logger("spacedock.registry")

SEND_CHUNK = 1024 * 1024
# A storage thread sends at most this much at a turn, then queues again behind other I/O.
SEND_TURN_BYTES = 8 * SEND_CHUNK
# How long a thread waits for room in a full socket before it hands the wait to the event
# loop: a client that keeps up makes room sooner, and each hand-over costs a round trip.
SEND_ROOM_WAIT_MS = 2
# How often a write waiting in the transport's buffer looks for progress.
STALL_CHECK_SECONDS = 1.0


class ClientStalled(ConnectionResetError):
    """The client took no bytes for the send timeout, and was dropped."""


async def get_blob(request: web.Request) -> web.StreamResponse:
    name = await repository(request, Action.PULL)
    digest = Digest.parse(request.match_info["digest"])
    blob = await request.app[registry_key].blob(name, digest)
    settings = request.app[settings_key]
    if request.method == "GET" and settings.s3 is not None and settings.s3.redirect:
        url = await request.app[store_key].presigned_url(blob.digest)
        if url is not None:
            raise web.HTTPTemporaryRedirect(url, headers={DOCKER_CONTENT_DIGEST: blob.digest})
    return await send_blob(request, blob, {"Content-Type": "application/octet-stream"})


async def send_blob(
    request: web.Request, blob: BlobHandle, headers: dict[str, str]
) -> web.StreamResponse:
    """The blob (or the ``Range`` asked for), streamed from storage."""
    headers = {
        DOCKER_CONTENT_DIGEST: blob.digest,
        "Accept-Ranges": "bytes",
        "ETag": f'"{blob.digest}"',
        "Cache-Control": "max-age=31536000",
        **headers,
    }
    byte_range = parse_range(request.headers.get("Range"), blob.size)
    start, count, status = 0, blob.size, 200
    if byte_range is not None:
        start, count, status = byte_range.start, byte_range.length, 206
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{blob.size}"
    store = request.app[store_key]
    send_timeout = request.app[settings_key].send_timeout_seconds
    if blob.location.path is not None:
        try:
            handle = await store.run(blob.location.path.open, "rb")
        except FileNotFoundError as exc:
            raise errors.BlobUnknown(detail={"digest": blob.digest}) from exc
        return FileRangeResponse(handle, start, count, status, headers, store.run, send_timeout)

    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = count
    await response.prepare(request)
    if request.method != "HEAD":
        async with contextlib.aclosing(store.read(blob.digest, start, count)) as chunks:
            async for chunk in chunks:
                await write_or_drop(response, request, chunk, send_timeout)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request) -> web.Response:
    name = await repository(request, Action.DELETE)
    digest = Digest.parse(request.match_info["digest"])
    await request.app[registry_key].delete_blob(name, digest)
    return web.Response(status=202, headers={DOCKER_CONTENT_DIGEST: str(digest)})


async def write_or_drop(
    response: web.StreamResponse, request: web.BaseRequest, data: bytes, patience: float
) -> None:
    """``response.write(data)``, but a client that takes no bytes for ``patience`` seconds is
    dropped. (aiohttp waits for a slow client on the event loop, but for as long as it takes.)
    Progress is the transport's buffer shrinking; only this write adds to it meanwhile."""
    transport = request.transport
    if transport is None:
        await response.write(data)  # raises: the client is gone
        return
    loop = asyncio.get_running_loop()
    writing = asyncio.ensure_future(response.write(data))
    try:
        backlog = transport.get_write_buffer_size() + len(data)
        progressed = loop.time()
        while not (await asyncio.wait({writing}, timeout=min(STALL_CHECK_SECONDS, patience)))[0]:
            now, size = loop.time(), transport.get_write_buffer_size()
            if size < backlog:
                progressed = now
            elif now - progressed >= patience:
                raise drop(request, patience)
            backlog = size
    finally:
        if not writing.done():
            writing.cancel()
    writing.result()


def drop(request: web.BaseRequest, timeout: float) -> ClientStalled:
    """Reset the connection of a client that took no bytes for ``timeout`` seconds (what is
    queued for it is discarded); the exception to raise."""
    log.info("client_dropped", reason="send_timeout", method=request.method, path=request.path)
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return ClientStalled(f"client took no bytes for {timeout} s")


class FileRangeResponse(web.StreamResponse):
    """``count`` bytes of an open file from ``offset``, read and written to the socket by
    storage threads; closes the file.

    On this kind of host read(2) + send(2) in 1 MiB steps outruns sendfile(2) by more than
    half again, and threads keep the event loop free for other requests while a blob goes out.
    A thread only hands the socket what it takes: when the socket stays full (for
    ``SEND_ROOM_WAIT_MS``) the thread is released and the event loop waits for room, dropping
    a client that takes nothing for ``send_timeout`` seconds. The headers are flushed first
    and nothing else writes to the socket until the body is done, so the threads own the
    socket's sending side for that time.
    """

    def __init__(
        self,
        handle: io.BufferedIOBase,
        offset: int,
        count: int,
        status: int,
        headers: dict[str, str],
        run: Callable[..., Awaitable[Any]],
        send_timeout: float,
    ) -> None:
        super().__init__(status=status, headers=headers)
        self._handle, self._offset, self._count, self._run = handle, offset, count, run
        self._send_timeout = send_timeout
        self._sent_by_thread = 0
        self.content_length = count

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            if request.method != "HEAD" and self._count > 0:
                await self._send_body(request)
            await super().write_eof()
            return writer
        finally:
            await self._run(self._handle.close)

    async def _send_body(self, request: web.BaseRequest) -> None:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection lost")
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_extra_info("sslcontext") is not None:
            await self._copy_through_transport(request)
            return
        await self._run(self._handle.seek, self._offset)
        # A descriptor of its own: the transport closes its one when the client hangs up,
        # maybe while a thread writes, and the event loop watches each descriptor for one owner.
        fd = os.dup(sock.fileno())
        try:
            sender = FileSender(self._handle, fd, self._count)
        except BaseException:
            os.close(fd)
            raise
        try:
            # The headers must leave first; they are a few hundred bytes, so this rarely waits.
            while transport.get_write_buffer_size() > 0:
                await self._room(request, sender.fd)
            while not await self._turn(sender):
                if sender.full:
                    await self._room(request, sender.fd)
        except ConnectionResetError:
            transport.abort()  # the client went away mid-body: nothing else to send it
            raise
        finally:
            self._sent_by_thread = sender.sent
            os.close(sender.fd)

    async def _turn(self, sender: FileSender) -> bool:
        """One turn of a storage thread at sending; True when the range is sent."""
        turn = asyncio.ensure_future(self._run(sender.send))
        try:
            done: bool = await asyncio.shield(turn)
        except asyncio.CancelledError:
            # The thread must be done with the descriptor and the file before they close,
            # however often the wait itself is cancelled (as at shutdown).
            while not turn.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({turn})
            if not turn.cancelled():
                turn.exception()  # retrieved: the cancellation is what goes on
            raise
        return done

    async def _room(self, request: web.BaseRequest, fd: int) -> None:
        """Until the socket has room again, without a thread; drops a client that takes no
        bytes for the send timeout."""
        loop = asyncio.get_running_loop()
        room: asyncio.Future[None] = loop.create_future()

        def on_room() -> None:
            loop.remove_writer(fd)
            if not room.done():
                room.set_result(None)

        loop.add_writer(fd, on_room)
        try:
            await asyncio.wait_for(room, self._send_timeout)
        except TimeoutError:
            raise drop(request, self._send_timeout) from None
        finally:
            loop.remove_writer(fd)

    @property
    def body_length(self) -> int:
        return super().body_length + self._sent_by_thread

    async def _copy_through_transport(self, request: web.BaseRequest) -> None:
        """The portable path (TLS and other transports without a socket of their own)."""
        await self._run(self._handle.seek, self._offset)
        remaining = self._count
        while remaining > 0:
            chunk: bytes = await self._run(self._handle.read, min(SEND_CHUNK, remaining))
            if not chunk:
                raise StorageError("the blob file is shorter than its recorded size")
            remaining -= len(chunk)
            await write_or_drop(self, request, chunk, self._send_timeout)


class FileSender:
    """Copies ``count`` bytes of an open file, from where it stands, to a non-blocking socket:
    a turn on a storage thread sends until the socket stays full for ``SEND_ROOM_WAIT_MS``."""

    def __init__(self, handle: io.BufferedIOBase, fd: int, count: int) -> None:
        self.handle, self.fd = handle, fd
        self.unread = count
        self.sent = 0
        self.full = False
        self._buffer = memoryview(bytearray(SEND_CHUNK))
        self._start = self._end = 0  # read but not yet sent: _buffer[_start:_end]
        self._poller = select.poll()
        self._poller.register(fd, select.POLLOUT)

    def send(self) -> bool:
        """Blocking on the file only: True when every byte is sent; False when the socket is
        full (``full``) or the turn's bytes are sent."""
        self.full = False
        budget = SEND_TURN_BYTES
        while budget > 0:
            if self._start == self._end:
                if not self.unread:
                    return True
                read = self.handle.readinto(self._buffer[: min(SEND_CHUNK, self.unread)])
                if not read:
                    raise StorageError("the blob file is shorter than its recorded size")
                self._start, self._end = 0, read
                self.unread -= read
            try:
                written = os.write(self.fd, self._buffer[self._start : self._end])
            except BlockingIOError:
                if self._poller.poll(SEND_ROOM_WAIT_MS):
                    continue
                self.full = True
                return False
            except OSError as exc:  # EPIPE, ECONNRESET: the client hung up
                raise ConnectionResetError(f"client closed the connection: {exc}") from exc
            self._start += written
            self.sent += written
            budget -= written
        return False
