"""What the metadata repositories raise that callers tell apart, instead of PyMongo's errors."""

from __future__ import annotations


class MetadataError(Exception):
    pass


class AlreadyExists(MetadataError):
    """A document with this identity exists already (an insert lost a race, or the name is
    taken)."""


class MetadataUnavailable(MetadataError):
    """The server cannot be reached or did not answer."""


class TransactionsUnsupported(MetadataError, RuntimeError):
    """The server cannot run multi-document transactions."""
