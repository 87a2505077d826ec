"""Parsing of management API requests: JSON bodies and query parameters."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.registry.management.errors import ApiError, Invalid
from shared.storable import unstorable

MAX_BODY_BYTES = 64 * 1024


async def json_object(
    request: web.Request, allowed: set[str], limit: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError("request body too large")
    body = bytearray()
    async for chunk in request.content.iter_any():  # read() may stop at what has arrived
        body += chunk
        if len(body) > limit:
            raise ApiError("request body too large")
    raw = bytes(body)
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad JSON, bad UTF-8 and integers longer than Python converts.
        raise ApiError("body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise Invalid("body must be a JSON object")
    try:  # JSON may escape lone surrogates, which no string stored or hashed can hold
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise ApiError("body contains invalid Unicode (a lone surrogate)") from exc
    problem = unstorable(body)
    if problem is not None:
        raise ApiError(f"body cannot be stored: {problem}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(unknown)}", detail={"allowed": sorted(allowed)})
    return body


def int_param(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = parse_digits(raw)
    if value is None or not low <= value <= high:
        raise ApiError(f"{name} must be an integer from {low} to {high}")
    return value


def parse_digits(raw: str) -> int | None:
    """``raw`` as a non-negative integer, or None: not ASCII digits, or more digits than
    Python converts (4300)."""
    if not (raw.isascii() and raw.isdigit()):
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def bool_param(request: web.Request, name: str, default: bool) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError(f"{name} must be true or false")
