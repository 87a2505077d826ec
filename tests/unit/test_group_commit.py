"""Group commit: a lone write commits at once; writes that arrive while a commit runs share the
next one; each caller gets its own outcome, or its batch's failure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.registry.group_commit import GroupCommit


class Recorder:
    """A commit that records its batches and waits for the test to let each one finish."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_on: set[int] = set()

    async def commit(self, items: Sequence[int]) -> list[str]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail_on & set(items):
            raise RuntimeError("the transaction failed")
        return [f"done {item}" for item in items]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_write_commits_at_once_and_gets_its_outcome() -> None:
    recorder = Recorder()
    recorder.release.set()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    assert await group.submit(1) == "done 1"
    assert recorder.batches == [[1]]


async def test_writes_arriving_during_a_commit_share_the_next_in_order() -> None:
    recorder = Recorder()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    first = asyncio.create_task(group.submit(1))
    await settle()
    others = [asyncio.create_task(group.submit(n)) for n in (2, 3, 4)]
    await settle()
    assert recorder.batches == [[1]]  # the others wait for the running commit
    recorder.release.set()
    assert await first == "done 1"
    assert [await task for task in others] == ["done 2", "done 3", "done 4"]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_batches_are_bounded() -> None:
    recorder = Recorder()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit, max_batch=2)
    tasks = [asyncio.create_task(group.submit(n)) for n in range(5)]
    await settle()
    recorder.release.set()
    assert [await task for task in tasks] == [f"done {n}" for n in range(5)]
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_commit_fails_its_caller_and_the_group_goes_on() -> None:
    recorder = Recorder()
    recorder.fail_on = {1}
    recorder.release.set()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    with pytest.raises(RuntimeError, match="transaction failed"):
        await group.submit(1)
    assert await group.submit(4) == "done 4"


async def test_a_caller_that_goes_away_leaves_the_others_their_outcomes() -> None:
    recorder = Recorder()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    first = asyncio.create_task(group.submit(1))
    await settle()
    gone = asyncio.create_task(group.submit(2))
    staying = asyncio.create_task(group.submit(3))
    await settle()
    gone.cancel()
    recorder.release.set()
    assert await first == "done 1"
    assert await staying == "done 3"
    assert gone.cancelled()


async def test_batches_are_bounded_by_weight_and_a_heavy_item_goes_alone() -> None:
    recorder = Recorder()
    group: GroupCommit[int, str] = GroupCommit(
        recorder.commit, weigh=lambda item: item, max_weight=10
    )
    tasks = [asyncio.create_task(group.submit(n)) for n in (4, 5, 3, 30, 2)]
    await settle()
    recorder.release.set()
    assert [await task for task in tasks] == ["done 4", "done 5", "done 3", "done 30", "done 2"]
    assert recorder.batches == [[4, 5], [3], [30], [2]]


async def test_an_item_that_fails_its_batch_fails_alone() -> None:
    """Another tenant's push that cannot be stored (too large for one transaction, say) must
    not fail the pushes that shared its transaction: the batch goes again, item by item."""
    recorder = Recorder()
    recorder.fail_on = {13}
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    first = asyncio.create_task(group.submit(1))
    await settle()
    others = [asyncio.create_task(group.submit(n)) for n in (2, 13, 3)]
    await settle()
    recorder.release.set()
    assert await first == "done 1"
    assert await others[0] == "done 2" and await others[2] == "done 3"
    with pytest.raises(RuntimeError, match="transaction failed"):
        await others[1]
    assert recorder.batches == [[1], [2, 13, 3], [2], [13], [3]]


async def test_a_failure_every_item_shares_is_not_tried_item_by_item() -> None:
    """The server unreachable fails the whole batch at once, not once per item."""
    recorder = Recorder()
    recorder.fail_on = {2}
    group: GroupCommit[int, str] = GroupCommit(recorder.commit, shared_failure=lambda _: True)
    first = asyncio.create_task(group.submit(1))
    await settle()
    others = [asyncio.create_task(group.submit(n)) for n in (2, 3)]
    await settle()
    recorder.release.set()
    await first
    for task in others:
        with pytest.raises(RuntimeError):
            await task
    assert recorder.batches == [[1], [2, 3]]


async def test_a_flusher_cancelled_before_it_ran_is_replaced() -> None:
    recorder = Recorder()
    recorder.release.set()
    group: GroupCommit[int, str] = GroupCommit(recorder.commit)
    waiting = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)  # submit has started the flusher, which has not run yet
    assert group._flusher is not None
    group._flusher.cancel()  # as a shutdown sweep of tasks would
    await asyncio.sleep(0)
    assert await group.submit(2) == "done 2"
    assert await waiting == "done 1"
