""".NET's text for numbers: ``double.TryParse``, ``int.TryParse`` and ``double.ToString()``
in the invariant culture."""

from __future__ import annotations

import math
import re
from decimal import Decimal

_DOTNET_DOUBLE = re.compile(r"\s*[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_DOTNET_INT = re.compile(r"\s*[+-]?\d+\s*")


def dotnet_parse_double(text: str) -> float | None:
    """``double.TryParse``: white space around, thousands separators, an exponent,
    Infinity, NaN; out of range is infinite."""
    if _DOTNET_DOUBLE.fullmatch(text):
        return float(text.strip().replace(",", ""))
    word = text.strip().lower()
    if word in ("infinity", "+infinity", "∞", "+∞"):
        return math.inf
    if word in ("-infinity", "-∞"):
        return -math.inf
    if word == "nan":
        return math.nan
    return None


def dotnet_parse_int(text: str) -> int | None:
    """``int.TryParse``."""
    if not _DOTNET_INT.fullmatch(text):
        return None
    value = int(text.strip())
    return value if -(2**31) <= value < 2**31 else None


def dotnet_double(value: float) -> str:
    """``double.ToString()``: the shortest text that reads back, in exponent form from
    1E+15 up and below 1E-04."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits_tuple = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(digits_tuple.exponent, int)
    digits = "".join(map(str, digits_tuple.digits))
    exponent = len(digits) + digits_tuple.exponent - 1
    digits = digits.rstrip("0") or "0"
    if exponent >= 15 or exponent < -4:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}E{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole = digits[: exponent + 1].ljust(exponent + 1, "0")
    fraction = digits[exponent + 1 :]
    return sign + whole + ("." + fraction if fraction else "")
