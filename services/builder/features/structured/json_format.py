"""JSON: values replaced by their path of keys and indexes, written back as the server's
JSON writer writes a document (two-space indentation, .NET doubles, its date format).

A value replaces only what its slot can hold as the server's replacer decides: a number or
boolean keeps its type when the value parses as one, an object or array takes the value
parsed as JSON; once a structure is replaced, nothing below it can be. The file itself is
read by ``json_reader``."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.builder.features.structured.common import (
    Context,
    NotThisFormat,
    Replacement,
    StructuredError,
    fold,
    skips_octopus,
)
from services.builder.features.structured.encoding import (
    UTF8,
    decode_text,
    encode_text,
    line_break_of,
)
from services.builder.features.structured.json_dates import JsonDate
from services.builder.features.structured.json_reader import (
    UNDEFINED,
    JsonBigInteger,
    JsonComment,
    JsonFloat,
    parse_json,
)


@dataclass(slots=True)
class _JsonSlot:
    """Where a value sits: its container and key, and the containers above it (to tell
    whether a replacement of an ancestor has detached it)."""

    chain: list[tuple[Any, Any]]
    kind: str  # object, array, integer, float, boolean, other


def replace_json(content: bytes, context: Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content)
    root: Any = {} if not text else parse_json(text)
    line_break = line_break_of(text) if text else "\r\n"
    encoding = encoding if text else UTF8
    slots: dict[str, _JsonSlot] = {}
    _map_json(root, [], "", slots, context.longest)
    replaced_slots: set[tuple[int, Any]] = set()
    for name in context.names:
        slot = slots.get(fold(name))
        if slot is None or skips_octopus(name):
            continue
        value = context.value(name, name, "json")
        new = _typed_json(slot.kind, value)
        if new is _UNCHANGED or not _attached(slot.chain, replaced_slots):
            continue  # the server warns and leaves the value as it was
        container, key = slot.chain[-1]
        container[key] = new
        replaced_slots.add((id(container), key))
    out = _write_json(root, line_break)
    data, _ = encode_text(out, encoding)
    return data, context.replaced


def _map_json(
    node: Any, chain: list[tuple[Any, Any]], path: str, slots: dict[str, _JsonSlot], longest: int
) -> None:
    """Every path no longer than ``longest`` (the longest name) into ``slots``: a longer
    one, and so everything below it, cannot match a name."""
    items: Iterable[tuple[Any, Any]]
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, child in items:
        text = str(key)
        if len(path) + len(text) + (1 if path else 0) > longest:
            continue
        child_path = f"{path}:{text}" if path else text
        child_chain = [*chain, (node, key)]
        slots[fold(child_path)] = _JsonSlot(child_chain, _json_kind(child))
        _map_json(child, child_chain, child_path, slots, longest)


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, JsonFloat):
        return "float"
    if isinstance(value, (int, JsonBigInteger)):
        return "integer"
    return "other"


def _attached(chain: list[tuple[Any, Any]], replaced: set[tuple[int, Any]]) -> bool:
    """Whether every container on the way down still holds the next one, and the slot
    itself was not replaced already (the server replaces a value once)."""
    for (container, key), (child, _) in itertools.pairwise(chain):
        if (id(container), key) in replaced or container[key] is not child:
            return False
    container, key = chain[-1]
    return (id(container), key) not in replaced


_UNCHANGED = object()
_LONG = re.compile(r"[ \t\n\v\f\r]*[+-]?[0-9]+[ \t\n\v\f\r]*\Z")
_DOUBLE = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:(?:[0-9][0-9,]*)?\.?[0-9]*)(?:[eE][+-]?[0-9]+)?[ \t\n\v\f\r]*\Z"
)


def _typed_json(kind: str, value: str | None) -> Any:
    if kind in ("object", "array"):
        if value is None:
            return _UNCHANGED
        try:
            parsed = parse_json(value)
        except (NotThisFormat, StructuredError):
            return _UNCHANGED  # the server warns that the value does not parse
        # A comment alone is not a value the server can write in its place.
        return _UNCHANGED if isinstance(parsed, JsonComment) else parsed
    if value is None:
        return None
    if kind in ("integer", "float"):
        whole = _as_long(value)
        if whole is not None:
            return whole
        number = _parse_double(value)
        return value if number is None else JsonFloat(number)
    if kind == "boolean":
        lowered = value.strip(" \t\n\v\f\r\0").lower()
        return {"true": True, "false": False}.get(lowered, value)
    return value


def _as_long(value: str) -> int | None:
    """``value`` as .NET's ``long.TryParse`` reads it, or None."""
    if not _LONG.match(value):
        return None
    digits = value.strip(" \t\n\v\f\r").lstrip("+-").lstrip("0")
    if len(digits) > 19:
        return None
    number = int(value)
    return number if -(2**63) <= number < 2**63 else None


def _parse_double(value: str) -> float | None:
    stripped = value.strip(" \t\n\v\f\r")
    special = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "+infinity": math.inf}
    if stripped.lower() in special:
        return special[stripped.lower()]
    if not _DOUBLE.match(value) or not any(c.isdigit() for c in stripped):
        return None
    mantissa = re.split(r"[eE]", stripped)[0]
    if mantissa.lstrip("+-").startswith(","):
        return None
    try:
        return float(stripped.replace(",", ""))
    except ValueError:
        return None


def _write_json(root: Any, line_break: str) -> str:
    out: list[str] = []
    _write_json_value(root, 0, line_break, out)
    return "".join(out)


def _write_json_value(value: Any, depth: int, line_break: str, out: list[str]) -> None:
    if isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        out.append("{")
        for position, (key, child) in enumerate(value.items()):
            out.append(("," if position else "") + line_break + "  " * (depth + 1))
            out.append(_json_string(str(key)) + ": ")
            _write_json_value(child, depth + 1, line_break, out)
        out.append(line_break + "  " * depth + "}")
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        out.append("[")
        for position, child in enumerate(value):
            out.append(("," if position else "") + line_break + "  " * (depth + 1))
            _write_json_value(child, depth + 1, line_break, out)
        out.append(line_break + "  " * depth + "]")
    else:
        out.append(_json_scalar(value))


def _json_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, JsonFloat):
        return dotnet_double(float(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (JsonDate, JsonBigInteger)):
        return f'"{value.text}"' if isinstance(value, JsonDate) else value.text
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, JsonComment):
        return f"/*{value.text}*/"
    return _json_string(str(value))


_JSON_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
                 "\\": "\\\\"}  # fmt: skip
_JSON_ESCAPED = re.compile('[\x00-\x1f"\\\\\x85\u2028\u2029]')


def _json_string(text: str) -> str:
    return (
        '"'
        + _JSON_ESCAPED.sub(
            lambda m: _JSON_ESCAPES.get(m.group(0), f"\\u{ord(m.group(0)):04x}"), text
        )
        + '"'
    )


def dotnet_double(number: float) -> str:
    """A double as the server's JSON writer writes it: the shortest round-trip digits,
    exponent form from 1E+15 up and below 1E-05, and always a decimal point or exponent."""
    if math.isnan(number):
        return '"NaN"'
    if math.isinf(number):
        return '"Infinity"' if number > 0 else '"-Infinity"'
    if number == 0:
        return "-0.0" if math.copysign(1, number) < 0 else "0.0"
    sign, digits, exponent = Decimal(repr(number)).as_tuple()
    text_digits = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len(digits) + exponent  # digits before the decimal point
    magnitude = point - 1
    prefix = "-" if sign else ""
    if -5 < magnitude < 15:
        if point <= 0:
            body = "0." + "0" * -point + text_digits
        elif point >= len(text_digits):
            body = text_digits + "0" * (point - len(text_digits))
        else:
            body = text_digits[:point] + "." + text_digits[point:]
    else:
        mantissa = text_digits[0] + ("." + text_digits[1:] if len(text_digits) > 1 else "")
        body = f"{mantissa}E{'+' if magnitude >= 0 else '-'}{abs(magnitude):02d}"
    if not any(c in body for c in ".E"):
        body += ".0"
    return prefix + body
