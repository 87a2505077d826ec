"""JSON as the server reads a variable's value (Json.NET, leniently) and writes it back.

Json.NET reads a string that is a date (ISO 8601 ``2020-01-02T03:04:05``, with an optional
fraction and zone, or ``/Date(ms)/``) as a date: read as text it is then the invariant
culture's ``01/02/2020 03:04:05``, and written back as JSON it is ISO again, fraction
trimmed. A date with a zone becomes local time, and the server's local time is taken to be
UTC."""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

from services.builder.features.octostache.budget import MAX_JSON_DEPTH
from services.builder.features.octostache.dotnet_numbers import dotnet_double

INVALID: Any = object()  # what read_json returns for a value that is not JSON


@dataclass(frozen=True, slots=True)
class JsonDate:
    """A string Json.NET reads as a date: to the second, the rest in ticks (100 ns), and
    whether it is UTC ("Z", or ``/Date()/``), local (it had an offset) or neither."""

    moment: dt.datetime
    ticks: int  # the fraction of a second, 0 to 9_999_999
    kind: str  # "utc", "local" or "unspecified"

    def text(self) -> str:
        """As text, as the invariant culture writes a date."""
        return (
            self.moment.strftime("%m/%d/")
            + f"{self.moment.year:04d}"
            + self.moment.strftime(" %H:%M:%S")
        )

    def json(self) -> str:
        """As Json.NET writes it: ISO 8601, the fraction without its trailing zeros."""
        text = f"{self.moment.year:04d}" + self.moment.strftime("-%m-%dT%H:%M:%S")
        if self.ticks:
            text += "." + f"{self.ticks:07d}".rstrip("0")
        return text + {"utc": "Z", "local": "+00:00", "unspecified": ""}[self.kind]


_ISO_DATE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?"
    r"(Z|z|[+-]\d\d(?::?\d\d)?)?",
    re.ASCII,
)
_MS_DATE = re.compile(r"/Date\((-?\d{1,19})(?:([+-])(\d\d)(\d\d))?\)/", re.ASCII)
_EPOCH = dt.datetime(1970, 1, 1)


def read_date(text: str) -> JsonDate | None:
    """``text`` as the date Json.NET would read it as, or None."""
    if text.startswith("/"):
        return _ms_date(text)
    if not 19 <= len(text) <= 40 or not text[0].isdigit() or text[10] != "T":
        return None
    match = _ISO_DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zone = match.group(7), match.group(8)
    ticks = int(fraction.ljust(7, "0")) if fraction else 0
    if minute > 59 or second > 59 or hour > 24 or (hour == 24 and (minute or second or ticks)):
        return None
    try:
        moment = dt.datetime(year, month, day) + dt.timedelta(
            hours=hour, minutes=minute, seconds=second
        )
    except (ValueError, OverflowError):
        return None
    if not zone:
        return JsonDate(moment, ticks, "unspecified")
    if zone in "Zz":
        return JsonDate(moment, ticks, "utc")
    digits = zone[1:].replace(":", "")
    offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    try:
        utc = moment - offset if zone[0] == "+" else moment + offset
    except OverflowError:
        return None
    return JsonDate(utc, ticks, "local")


def _ms_date(text: str) -> JsonDate | None:
    match = _MS_DATE.fullmatch(text)
    if match is None:
        return None
    milliseconds = int(match.group(1))
    try:
        moment = _EPOCH + dt.timedelta(milliseconds=milliseconds)
    except OverflowError:
        return None
    whole = moment.replace(microsecond=0)
    return JsonDate(whole, moment.microsecond * 10, "local" if match.group(2) else "utc")


def json_value_text(value: Any) -> str:
    """A JSON value as text: strings as they are, dates in the invariant culture, booleans
    True/False, null empty."""
    if value is None:
        return ""
    if isinstance(value, JsonDate):
        return value.text()
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return dotnet_double(value)
    if isinstance(value, (dict, list)):
        return json_text(value)
    return str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}  # fmt: skip
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f\x85\u2028\u2029]')


def _json_string(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _JSON_ESCAPES.get(char) or f"\\u{ord(char):04x}"

    return '"' + _JSON_ESCAPED.sub(escape, text) + '"'


def json_text(value: Any) -> str:
    """Compact JSON, as the server writes an object or array read from a value."""
    if isinstance(value, dict):
        return "{" + ",".join(_json_string(k) + ":" + json_text(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, JsonDate):
        return _json_string(value.json())
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = dotnet_double(value)
        if math.isfinite(value) and not any(c in text for c in ".E"):
            text += ".0"
        return {"∞": "Infinity", "-∞": "-Infinity"}.get(text, text)
    return str(value)


_JSON_TOKEN = re.compile(
    r"""(?P<space>(?:\s|//[^\n]*|/\*.*?\*/)+)
    |(?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<word>[A-Za-z_$][\w$]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<punct>[{}\[\],:])""",
    re.VERBOSE | re.DOTALL,
)
_JSON_STRING_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_JSON_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None, "undefined": None,
                               "NaN": math.nan, "Infinity": math.inf}  # fmt: skip


def read_json(text: str) -> Any:
    """``text`` read as the server reads a value as JSON (leniently: unquoted property
    names, single quotes, comments, trailing commas; at most MAX_JSON_DEPTH deep), or
    INVALID. A value that is empty or null is not JSON."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _JSON_TOKEN.match(text, position)
        if match is None:
            return INVALID
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    if not tokens:
        return INVALID
    reader = _JsonReader(tokens)
    try:
        value = reader.value(0)
    except ValueError:
        return INVALID
    if reader.position != len(tokens) or value is None:
        return INVALID
    return value


class _JsonReader:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def next(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ValueError("unexpected end")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def value(self, depth: int) -> Any:
        kind, text = self.next()
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            string = _json_unquote(text)
            return read_date(string) or string
        if kind == "word":
            if text not in _JSON_WORDS:
                raise ValueError(f"unexpected {text}")
            return _JSON_WORDS[text]
        if text not in "{[" or depth >= MAX_JSON_DEPTH:
            raise ValueError(f"unexpected {text}")
        return self.object(depth + 1) if text == "{" else self.array(depth + 1)

    def object(self, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            kind, text = self.next()
            if text == "}" and kind == "punct":
                return result
            if kind == "string":
                name = _json_unquote(text)
            elif kind == "word" or (kind == "number" and text.isdigit()):
                name = text
            else:
                raise ValueError("a property name is expected")
            if self.next() != ("punct", ":"):
                raise ValueError(": is expected")
            result[name] = self.value(depth)
            kind, text = self.next()
            if text == "}" and kind == "punct":
                return result
            if (kind, text) != ("punct", ","):
                raise ValueError(", is expected")

    def array(self, depth: int) -> list[Any]:
        result: list[Any] = []
        while True:
            if self.position < len(self.tokens) and self.tokens[self.position] == ("punct", "]"):
                self.position += 1
                return result
            result.append(self.value(depth))
            kind, text = self.next()
            if (kind, text) == ("punct", "]"):
                return result
            if (kind, text) != ("punct", ","):
                raise ValueError(", is expected")


def _json_unquote(text: str) -> str:
    def unescape(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "u":
            return chr(int(code[1:], 16))
        return {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}.get(code, code)

    return _JSON_STRING_ESCAPE.sub(unescape, text[1:-1])
