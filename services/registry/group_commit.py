"""Group commit: the writes that arrive while one transaction runs go together in the next.

Each manifest PUT needs a transaction, and a transaction costs its round trips whatever it
holds, so one per PUT caps the rate at what the metadata server commits one at a time, and
concurrent PUTs that touch the same documents (the links of shared layers) conflict and retry.
A ``GroupCommit`` keeps at most one transaction of its kind in flight per process: a lone
caller commits at once, as before; callers that arrive meanwhile wait for it and then share
the next one, so the work per request falls as load rises.

Each caller gets its own outcome. A caller whose request is cancelled (its client went away)
still has its item committed with the others if the batch already took it, as a transaction
already under way would have been.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

# Enough to carry every client of a busy instance in one transaction, small enough that one
# transaction stays short.
MAX_BATCH = 64


class GroupCommit(Generic[Item, Outcome]):
    def __init__(
        self,
        commit: Callable[[Sequence[Item]], Awaitable[Sequence[Outcome]]],
        max_batch: int = MAX_BATCH,
    ) -> None:
        """``commit`` records a batch in one transaction and gives one outcome per item, in
        order; when it raises, every caller of the batch gets the exception."""
        self._commit = commit
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Outcome:
        """Commit ``item`` with whatever else is waiting; its outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._commit_batch(batch)
        except BaseException:  # cancelled (shutdown): nobody is left to commit for them
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._flusher = None

    async def _commit_batch(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> None:
        try:
            outcomes = await self._commit([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
