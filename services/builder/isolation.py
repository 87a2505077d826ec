"""Running an SDI's own logic where it can be stopped.

The configuration features evaluate what the SDI brings — regular expressions in ``Match``
and ``Replace`` filters, templates, YAML — and a pathological one can run for hours. A
thread cannot be interrupted, so the features run in child processes, kept warm and reused
(a call costs a pickled message each way); a child whose call is cancelled or runs out of
time is killed and replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

PRELOAD = ["services.builder.features.pipeline"]
DEFAULT_WORKERS = 2


class IsolatedFailure(Exception):
    """The call raised in the child, or the child ended without an answer."""


class IsolatedTimeout(IsolatedFailure):
    """The call ran past its time budget; the child was killed (a fresh one takes its place)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the call took longer than {seconds:g}s and was stopped")
        self.seconds = seconds


def _serve(connection: Connection) -> None:
    """A child's loop: calls in, results (or failures, as data) out, until told to stop."""
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        function, args = message
        try:
            connection.send(("ok", function(*args)))
        except BaseException as exc:
            connection.send(
                ("error", (type(exc).__name__, str(exc), traceback.format_exc(limit=5)))
            )


class _Child:
    def __init__(self, context: Any) -> None:
        self.connection, child_end = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(child_end,), daemon=True)
        self.process.start()
        child_end.close()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class IsolatedRunner:
    def __init__(self, workers: int = DEFAULT_WORKERS) -> None:
        self.workers = workers
        self._context: Any = None
        self._idle: list[_Child] = []
        self._live = 0
        self._available: asyncio.Condition | None = None

    def _ctx(self) -> Any:
        if self._context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
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
        after ``timeout`` seconds as IsolatedTimeout. The seconds count from when a child
        takes the call (waiting for a free one is not the call's fault), and the failure is
        named, where a cancel scope around the call could say neither."""
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
            except EOFError as exc:
                raise IsolatedFailure(f"the child process ended without an answer ({exc})") from exc
            healthy = True
        finally:
            await self._give_back(child, healthy)
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
            return await asyncio.to_thread(_Child, self._ctx())
        except BaseException:
            async with self._available:
                self._live -= 1
                self._available.notify()
            raise

    async def _give_back(self, child: _Child, healthy: bool) -> None:
        assert self._available is not None
        if not healthy:  # cancelled, timed out or broken: it may still be running
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


_default = IsolatedRunner()


async def run_isolated(
    function: Callable[..., Any],
    *args: Any,
    timeout: float | None = None,  # noqa: ASYNC109 - as IsolatedRunner.run
) -> Any:
    """``IsolatedRunner.run`` on the process's shared children."""
    return await _default.run(function, *args, timeout=timeout)


def close_isolated() -> None:
    """Stop the warm children (at shutdown; they are daemons and would die with us anyway)."""
    _default.close()
