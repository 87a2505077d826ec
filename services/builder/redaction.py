"""Finding sensitive values where they must not be: in decoded text, not in an encoding of it
(JSON escapes non-ASCII, quotes and backslashes, so searching serialised bytes misses them)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def strings(document: Any) -> Iterator[str]:
    """Every string in a JSON-like document, keys included."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(document, (list, tuple)):
        for item in document:
            yield from strings(item)


def holds_secret(document: Any, secrets: Iterable[str]) -> bool:
    wanted = [secret for secret in secrets if secret]
    return any(secret in text for text in strings(document) for secret in wanted)
