"""What the metadata repositories raise that callers tell apart, instead of PyMongo's errors."""

from __future__ import annotations

from pymongo.errors import ConnectionFailure


class MetadataError(Exception):
    pass


class AlreadyExists(MetadataError):
    """A document with this identity exists already (an insert lost a race, or the name is
    taken)."""


class SpaceMissing(MetadataError):
    """The space a write would add to does not exist (it was deleted meanwhile)."""


class SpaceNotEmpty(MetadataError):
    """A space that still has repositories, or builds under way, cannot be deleted."""

    def __init__(self, space: str, reason: str) -> None:
        super().__init__(f"space {space}: {reason}")
        self.reason = reason


class MetadataUnavailable(MetadataError):
    """The server cannot be reached or did not answer."""


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the server could not be reached (every operation would fail
    alike), rather than that one operation could not be done."""
    return isinstance(exc, (MetadataUnavailable, ConnectionFailure))


class TransactionsUnsupported(MetadataError, RuntimeError):
    """The server cannot run multi-document transactions."""
