""".NET's view of strings and numbers as the filters need it: white space as
Char.IsWhiteSpace sees it, lengths and cuts in UTF-16 code units, lone surrogates as its UTF-8
encoder writes them, and int.TryParse / double.TryParse in the invariant culture."""

from __future__ import annotations

import math
import re

_SURROGATE = re.compile("[\ud800-\udfff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Char.IsWhiteSpace: Python's str.isspace also counts U+001C..U+001F, .NET does not.
DOTNET_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def scalar(text: str) -> str:
    """``text`` with any lone surrogate as U+FFFD, as .NET encodes it."""
    return _SURROGATE.sub("\ufffd", text)


def utf16_length(text: str) -> int:
    if text.isascii() or not _ASTRAL.search(text):
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def utf16_slice(text: str, start: int, length: int) -> str:
    """``text.Substring(start, length)`` in UTF-16 code units."""
    if not _ASTRAL.search(text):
        return text[start : start + length]
    units = text.encode("utf-16-le", "surrogatepass")
    piece = units[2 * start : 2 * (start + length)]
    return scalar(piece.decode("utf-16-le", "surrogatepass"))


def _utf16_units(char: str) -> list[int]:
    code = ord(char)
    if code < 0x10000:
        return [code]
    code -= 0x10000
    return [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]


def u_escape(char: str) -> str:
    return "".join(f"\\u{unit:04x}" for unit in _utf16_units(char))


def dotnet_int(text: str) -> int | None:
    """``int.TryParse(text)``: white space, a sign and ASCII digits, in 32 bits."""
    match = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)[ \t\n\v\f\r]*", text)
    if match is None or len(match.group(2).lstrip("0")) > 10:
        return None
    number = int(match.group(2)) * (-1 if match.group(1) == "-" else 1)
    return number if -(2**31) <= number < 2**31 else None


_FLOAT = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\v\f\r]*"
)


def dotnet_double(text: str, thousands: bool = False) -> float | None:
    """``double.TryParse``: invariant culture, Float style (``thousands``: also ``,``)."""
    stripped = text.strip(" \t\n\v\f\r")
    if stripped in ("NaN", "Infinity", "+Infinity", "-Infinity", "∞", "-∞"):
        return float(stripped.replace("∞", "Infinity"))
    candidate = text
    if thousands:
        head = re.match(r"[ \t\n\v\f\r]*[+-]?[0-9,]*", text)
        if head is not None and head.group().lstrip(" \t\n\v\f\r+-").startswith(","):
            return None
        candidate = text.replace(",", "", text[: head.end()].count(",") if head else 0)
    if _FLOAT.fullmatch(candidate) is None:
        return None
    number = float(candidate)
    return number if math.isfinite(number) else None
