"""``batched``: every item once, in order, in pieces no larger than asked."""

from __future__ import annotations

import pytest

from shared.batches import batched


def test_pieces_keep_the_order_and_the_last_holds_the_rest() -> None:
    digests = [f"sha256:{n:02d}" for n in range(7)]
    assert list(batched(digests, 3)) == [digests[0:3], digests[3:6], digests[6:7]]


def test_an_exact_multiple_leaves_no_empty_piece_and_nothing_gives_none() -> None:
    assert list(batched("abcd", 2)) == [["a", "b"], ["c", "d"]]
    assert list(batched([], 64)) == []


def test_a_piece_is_a_list_of_its_own() -> None:
    ids = ("tag-a", "tag-b")
    [piece] = batched(ids, 5)
    piece.append("tag-c")
    assert piece == ["tag-a", "tag-b", "tag-c"] and ids == ("tag-a", "tag-b")


@pytest.mark.parametrize("size", [0, -3])
def test_a_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="at least one"):
        next(batched(["tag-a"], size))
