"""Text filters: case, Trim, Truncate, Substring, Append, Prepend, Indent, Null and the
comparisons StartsWith, EndsWith and Contains."""

from __future__ import annotations

import re
from collections.abc import Callable

from services.builder.features.filters.dotnet import (
    DOTNET_WHITESPACE,
    dotnet_int,
    utf16_length,
    utf16_slice,
)
from services.builder.features.filters.errors import FilterFailed, FilterFunction, bounded


def _case(text: str, upper: bool) -> str:
    """ToUpper/ToLower in the invariant culture: one character for one (``ß`` stays)."""
    if text.isascii():
        return text.upper() if upper else text.lower()
    out = []
    for char in text:
        mapped = char.upper() if upper else char.lower()
        if len(mapped) != 1:
            titled = char.title()
            mapped = titled if upper and len(titled) == 1 else char
            if not upper and char == "\u0130":
                mapped = "i"
        out.append(mapped)
    return "".join(out)


def to_upper(value: str | None, args: tuple[str, ...]) -> str | None:
    return None if args or value is None else _case(value, upper=True)


def to_lower(value: str | None, args: tuple[str, ...]) -> str | None:
    return None if args or value is None else _case(value, upper=False)


def trim(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    side = args[0].lower() if args else ""
    if side == "":
        return value.strip(DOTNET_WHITESPACE) if not args else None
    if side == "start":
        return value.lstrip(DOTNET_WHITESPACE)
    if side == "end":
        return value.rstrip(DOTNET_WHITESPACE)
    return None


def truncate(value: str | None, args: tuple[str, ...]) -> str | None:
    """Only the first argument counts; the text cut gets ``...``."""
    limit = dotnet_int(args[0]) if args else None
    if value is None or limit is None or limit < 0:
        return None
    if limit < utf16_length(value):
        return utf16_slice(value, 0, limit) + "..."
    return value


def substring(value: str | None, args: tuple[str, ...]) -> str | None:
    """``Substring length`` or ``Substring start length``; a cut that would reach past the
    end gives nothing."""
    if value is None or not 1 <= len(args) <= 2:
        return None
    numbers = [dotnet_int(arg) for arg in args]
    if any(number is None or number < 0 for number in numbers):
        return None
    size = utf16_length(value)
    start, length = (0, numbers[0]) if len(numbers) == 1 else numbers
    assert start is not None and length is not None
    if start + length >= 2**31:  # the 32-bit sum wraps, and String.Substring throws
        raise FilterFailed("the start and length of Substring are out of range")
    if start + length > size:
        return None
    return utf16_slice(value, start, length)


def append(value: str | None, args: tuple[str, ...]) -> str | None:
    if not args:
        return None
    bounded(len(value or "") + sum(map(len, args)), "Append")
    return (value or "") + "".join(args)


def prepend(value: str | None, args: tuple[str, ...]) -> str | None:
    if not args:
        return None
    bounded(len(value or "") + sum(map(len, args)), "Prepend")
    return "".join(args) + (value or "")


_INDENT_SIZES = re.compile(r"^(?:([0-9]{1,3})?/)?([0-9]{1,3})$")


def indent(value: str | None, args: tuple[str, ...]) -> str | None:
    """``Indent`` (four spaces), ``Indent n``, ``Indent /n`` (lines after the first),
    ``Indent m/n``, ``Indent text``, ``Indent first others``. Sizes are 0 to 255; a size
    out of range is taken as text."""
    if value is None:
        return None
    if value == "":
        return ""
    if not args:
        first = others = "    "
    elif len(args) == 1:
        first = others = args[0]
        match = _INDENT_SIZES.match(args[0])
        if match is not None:
            initial, subsequent = match.group(1), int(match.group(2))
            slashed = "/" in args[0]
            if slashed and initial is not None:
                if int(initial) <= 255 and subsequent <= 255:
                    first, others = " " * int(initial), " " * subsequent
            elif subsequent <= 255:
                first, others = ("" if slashed else " " * subsequent), " " * subsequent
    elif len(args) == 2:
        first, others = args
    else:
        return None
    bounded(len(first) + len(value) + value.count("\n") * len(others), "Indent")
    return first + value.replace("\n", "\n" + others)


def null(value: str | None, args: tuple[str, ...]) -> None:
    return None


def comparison(test: Callable[[str, str], bool]) -> FilterFunction:
    def compare(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is None or len(args) != 1:
            return None
        return "true" if test(value, args[0]) else "false"

    return compare
