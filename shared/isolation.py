"""Running tenant-driven work where it can be stopped.

The builder's configuration features evaluate what an SDI brings — regular expressions in
``Match`` and ``Replace`` filters, templates, YAML — and the registry reads uploaded archives
whose headers can make a parser run for minutes or hold gigabytes. A thread cannot be
interrupted, and holds the GIL while it works, so such work runs in child processes, kept
warm and reused (a call costs a pickled message each way); a child whose call is cancelled or
runs out of time is killed and replaced. Each child has an address-space limit: a call that
reaches it fails with IsolatedMemoryError, and that child is replaced too. The parent waits
for an answer on the child's pipe from its event loop: no thread is held while a call runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import resource
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

DEFAULT_WORKERS = 2
DEFAULT_MEMORY_BYTES = 2 * 1024**3  # a child's address space; an idle one uses about 40 MiB


class IsolatedFailure(Exception):
    """The call raised in the child, or the child ended without an answer."""


class IsolatedTimeout(IsolatedFailure):
    """The call ran past its time budget; the child was killed (a fresh one takes its place)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the call took longer than {seconds:g}s and was stopped")
        self.seconds = seconds


class IsolatedMemoryError(IsolatedFailure):
    """The call ran out of memory (the child's limit, when it has one); the child was
    stopped (a fresh one takes its place)."""

    def __init__(self, limit: int | None) -> None:
        within = "" if limit is None else f" (a limit of {limit / 1024**2:g} MiB)"
        super().__init__(f"the call ran out of memory{within} and was stopped")
        self.limit = limit


def _serve(connection: Connection, memory_bytes: int | None) -> None:
    """A child's loop: calls in, results (or failures, as data) out, until told to stop, or
    until a call runs out of memory (the process is ended rather than trusted again)."""
    if memory_bytes is not None:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            memory_bytes = min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        function, args = message
        reply = _call(function, args)  # out of the handler: the failed call's frames are gone
        try:
            connection.send(reply)
        except MemoryError:  # the answer is too large to pickle
            reply = ("memory", None)
            connection.send(reply)
        if reply[0] == "memory":
            return


def _call(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", function(*args)
    except MemoryError:
        return "memory", None
    except BaseException as exc:
        return "error", (type(exc).__name__, str(exc), traceback.format_exc(limit=5))


class _Child:
    def __init__(self, context: Any, memory_bytes: int | None) -> None:
        self.connection, child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(child_end, memory_bytes), daemon=True)
        self.process.start()
        child_end.close()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class IsolatedRunner:
    """Up to ``workers`` children, each limited to ``memory_bytes`` of address space (None:
    no limit of its own). ``preload`` names the modules the process's forkserver imports
    once, so a child starts with them (the first runner of a process to start a child sets
    them: there is one forkserver per process)."""

    def __init__(
        self,
        workers: int = DEFAULT_WORKERS,
        memory_bytes: int | None = DEFAULT_MEMORY_BYTES,
        preload: Sequence[str] = (),
    ) -> None:
        self.workers = workers
        self.memory_bytes = memory_bytes
        self.preload = list(preload)
        self._context: Any = None
        self._idle: list[_Child] = []
        self._live = 0
        self._available: asyncio.Condition | None = None

    def _ctx(self) -> Any:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            if self.preload:
                context.set_forkserver_preload(self.preload)
            self._context = context
        return self._context

    async def run(
        self,
        function: Callable[..., Any],
        *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - a budget the child is killed at
    ) -> Any:
        """``function(*args)`` in a child; its (picklable) return value. A failure in the
        child comes back as IsolatedFailure with its type and message; a call still running
        after ``timeout`` seconds as IsolatedTimeout; one out of memory as
        IsolatedMemoryError. The seconds count from when a child takes the call (waiting for
        a free one is not the call's fault), and the failure is named, where a cancel scope
        around the call could say neither."""
        child = await self._take()
        loop = asyncio.get_running_loop()
        healthy = False
        try:
            child.connection.send((function, args))
            ready: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not ready.done():
                    ready.set_result(None)

            loop.add_reader(child.connection.fileno(), readable)
            try:
                await asyncio.wait_for(ready, timeout)
            except TimeoutError:
                assert timeout is not None
                raise IsolatedTimeout(timeout) from None
            finally:
                loop.remove_reader(child.connection.fileno())
            try:
                status, value = child.connection.recv()
            except (EOFError, OSError) as exc:  # killed, or it crashed
                raise IsolatedFailure(
                    f"the child process ended without an answer ({exc!r})"
                ) from exc
            healthy = status != "memory"
        finally:
            await self._give_back(child, healthy)
        if status == "memory":
            raise IsolatedMemoryError(self.memory_bytes)
        if status == "error":
            kind, message, _ = value
            raise IsolatedFailure(f"{kind}: {message}")
        return value

    async def _take(self) -> _Child:
        if self._available is None:
            self._available = asyncio.Condition()
        async with self._available:
            while not self._idle and self._live >= self.workers:
                await self._available.wait()
            if self._idle:
                return self._idle.pop()
            self._live += 1
        try:
            return await asyncio.to_thread(_Child, self._ctx(), self.memory_bytes)
        except BaseException:
            async with self._available:
                self._live -= 1
                self._available.notify()
            raise

    async def _give_back(self, child: _Child, healthy: bool) -> None:
        assert self._available is not None
        if not healthy:  # cancelled, timed out, out of memory or broken: it may still run
            await asyncio.to_thread(child.kill)
        async with self._available:
            if healthy:
                self._idle.append(child)
            else:
                self._live -= 1
            self._available.notify()

    def close(self) -> None:
        """Stop the idle children. Their places are free again, and once none is busy the
        runner is as new (usable from another event loop)."""
        for child in self._idle:
            with contextlib.suppress(Exception):
                child.connection.send(None)
            child.kill()
        self._live -= len(self._idle)
        self._idle.clear()
        if self._live == 0:
            self._available = None
