"""What MongoDB cannot hold is found before it is stored."""

from __future__ import annotations

from typing import Any

import pytest

from shared.storable import MAX_DEPTH, unstorable


def nested(depth: int) -> Any:
    value: Any = {}
    for _ in range(depth):
        value = {"n": value}
    return value


@pytest.mark.parametrize(
    "value",
    [{"a\x00b": 1}, {"x": [{"$ref": "a", "$id": 1}]}, {"$where": "1"}, nested(MAX_DEPTH + 2)],
    ids=["nul", "dbref", "operator", "deep"],
)
def test_what_mongodb_cannot_hold_is_named(value: Any) -> None:
    assert unstorable(value) is not None


def test_ordinary_documents_and_dotted_variable_names_are_fine() -> None:
    document = {"variables": {"Octopus.Environment.Name": "x", "Logging:LogLevel": "y"}}
    assert unstorable({**document, "deep": nested(MAX_DEPTH - 2)}) is None
