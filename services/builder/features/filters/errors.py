"""What the filters share: the shape of a filter, the errors they raise and the bound on
what they make.

MAX_RESULT is read from the package at each check, so that one setting (which tests lower)
bounds every filter."""

from __future__ import annotations

from collections.abc import Callable

import services.builder.features.filters as _package


class FilterError(ValueError):
    """The filter is unknown or its arguments do not fit."""


class FilterFailed(FilterError):
    """Octostache's function throws here: the deployment server reports an error."""


class ResultTooLarge(FilterError):
    """The result would hold more than MAX_RESULT characters."""


FilterFunction = Callable[[str | None, tuple[str, ...]], str | None]


def result_limit() -> int:
    """MAX_RESULT as the package holds it now."""
    return _package.MAX_RESULT


def bounded(size: int, what: str) -> None:
    limit = result_limit()
    if size > limit:
        raise ResultTooLarge(f"{what} would make more than {limit} characters")
