"""Group commit: the writes that arrive while one transaction runs go together in the next.

Each manifest PUT needs a transaction, and a transaction costs its round trips whatever it
holds, so one per PUT caps the rate at what the metadata server commits one at a time, and
concurrent PUTs that touch the same documents (the links of shared layers) conflict and retry.
A ``GroupCommit`` keeps at most one transaction of its kind in flight per process: a lone
caller commits at once, as before; callers that arrive meanwhile wait for it and then share
the next one, so the work per request falls as load rises.

Each caller gets its own outcome, and only its own failure: a batch is bounded by count and
by weight (a manifest's bytes and references), an item heavier than the bound commits alone,
and when a batch of several fails, each of its items is committed again alone, so a push that
cannot be stored (too large for one transaction, say) fails only its own request, never
another tenant's that happened to share its transaction. A caller whose request is cancelled
(its client went away) still has its item committed with the others if the batch already took
it, as a transaction already under way would have been.
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
# What one transaction carries at most, in the units of ``weigh`` (bytes, for pushes).
MAX_WEIGHT = 4 * 1024 * 1024


class GroupCommit(Generic[Item, Outcome]):
    def __init__(
        self,
        commit: Callable[[Sequence[Item]], Awaitable[Sequence[Outcome]]],
        *,
        weigh: Callable[[Item], int] = lambda _: 1,
        shared_failure: Callable[[Exception], bool] = lambda _: False,
        max_batch: int = MAX_BATCH,
        max_weight: int = MAX_WEIGHT,
    ) -> None:
        """``commit`` records a batch in one transaction and gives one outcome per item, in
        order. ``weigh`` says what an item costs a transaction (at most ``max_weight`` a
        batch); ``shared_failure`` tells a failure that is every item's (the server
        unreachable) from one that may be a single item's."""
        self._commit = commit
        self._weigh = weigh
        self._shared_failure = shared_failure
        self._max_batch = max_batch
        self._max_weight = max_weight
        self._waiting: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Outcome:
        """Commit ``item`` with whatever else is waiting; its outcome."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    def _next_batch(self) -> list[tuple[Item, asyncio.Future[Outcome]]]:
        """The oldest waiting items that fit the bounds (at least one)."""
        taken, weight = 0, 0
        for item, _ in self._waiting[: self._max_batch]:
            weight += self._weigh(item)
            if taken and weight > self._max_weight:
                break
            taken += 1
        batch = self._waiting[:taken]
        del self._waiting[:taken]
        return batch

    async def _flush(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                if not await self._commit_batch(batch):
                    for one in batch:  # find whose item failed: each on its own
                        await self._commit_batch([one])
        except BaseException:  # cancelled (shutdown): nobody is left to commit for them
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting.clear()
            raise
        finally:
            self._flusher = None

    async def _commit_batch(self, batch: list[tuple[Item, asyncio.Future[Outcome]]]) -> bool:
        """Commit ``batch`` and hand out its outcomes; whether it is settled. A lone item's
        failure is its caller's, as is every caller's a failure that is nobody's item (the
        server unreachable: ``shared_failure``); otherwise a batch's failure is not settled
        (its items go again, alone)."""
        try:
            outcomes = await self._commit([item for item, _ in batch])
        except Exception as exc:
            if len(batch) > 1 and not self._shared_failure(exc):
                return False
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return True
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)
        return True
