"""The builder's child processes for an SDI's own logic (``shared.isolation``): its
configuration features can run for hours or grow a document without bound, so they run where
they can be stopped. The children's forkserver preloads the features."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.isolation import (
    DEFAULT_MEMORY_BYTES,
    DEFAULT_WORKERS,
    IsolatedFailure,
    IsolatedMemoryError,
    IsolatedTimeout,
)
from shared.isolation import IsolatedRunner as _SharedRunner

__all__ = [
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_WORKERS",
    "PRELOAD",
    "IsolatedFailure",
    "IsolatedMemoryError",
    "IsolatedRunner",
    "IsolatedTimeout",
    "close_isolated",
    "run_isolated",
]

PRELOAD = ("services.builder.features.pipeline",)


class IsolatedRunner(_SharedRunner):
    """``shared.isolation.IsolatedRunner`` whose children start with the features loaded."""

    def __init__(
        self, workers: int = DEFAULT_WORKERS, memory_bytes: int | None = DEFAULT_MEMORY_BYTES
    ) -> None:
        super().__init__(workers, memory_bytes, preload=PRELOAD)


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
