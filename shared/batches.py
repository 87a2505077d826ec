"""Work in bounded pieces: ids sent to the metadata server in one statement (its ``$in`` lists
cost it more than their length), removals written in one transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

Item = TypeVar("Item")


def batched(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    """``items`` in order, ``size`` at a time (the last piece may be shorter)."""
    if size < 1:
        raise ValueError(f"a batch holds at least one item, not {size}")
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
