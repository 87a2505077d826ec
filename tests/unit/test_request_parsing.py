"""Query integers and JSON bodies of the management API, and aiohttp's own error bodies."""

from __future__ import annotations

import pytest

from services.registry.management.requests import parse_digits
from services.registry.middleware import protocol_error_body


@pytest.mark.parametrize(
    ("raw", "value"),
    [("0", 0), ("42", 42), ("007", 7), ("9" * 4300, int("9" * 4300))],
)
def test_digits_are_integers(raw: str, value: int) -> None:
    assert parse_digits(raw) == value


@pytest.mark.parametrize(
    "raw", ["", "-1", "+1", "1.0", " 1", "\u0661", "²", "9" * 4301, "9" * 100_000]
)
def test_other_text_is_not_an_integer(raw: str) -> None:
    """Signs, spaces, non-ASCII digits and integers past Python's 4300-digit limit."""
    assert parse_digits(raw) is None


def test_protocol_error_body_has_both_envelopes() -> None:
    """aiohttp answers before the path is known: OCI clients and API clients both find theirs."""
    body = protocol_error_body(400, "header too long")
    assert body["errors"] == [{"code": "BAD_REQUEST", "message": "header too long"}]
    assert body["error"] == {"code": "BAD_REQUEST", "message": "header too long"}
    assert protocol_error_body(500, "internal server error")["error"]["code"] == "UNKNOWN"
