"""What a document stored in MongoDB cannot hold, found before it is stored (pure): a NUL in
a key, which BSON refuses; a key starting with ``$`` (an operator to MongoDB, and ``$ref``
with ``$id`` reads back as a DBRef, not JSON); nesting past any use. A client's mistake,
never a 500."""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 32


def unstorable(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored, or None when it can."""
    if depth > MAX_DEPTH:
        return f"it nests deeper than {MAX_DEPTH} levels"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or "\x00" in key:
                return "a key holds a NUL character"
            if key.startswith("$"):
                return f"a key starts with $ ({key[:40]!r})"
            problem = unstorable(item, depth + 1)
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = unstorable(item, depth + 1)
            if problem is not None:
                return problem
    return None
