"""Octostache filters: ``#{Name | Filter arg "another arg"}``, chainable, names
case-insensitive, each behaving as the deployment server's (Octostache on .NET, invariant
culture).

``apply_filter`` receives the value (None when the variable is not defined, or when the
previous filter gave nothing) and the arguments as Octostache tokenizes them. It returns the
result, or None where Octostache's function returns null: the evaluator then leaves the
expression as written. It raises

- FilterError for a filter Octostache does not have (also left as written);
- FilterFailed where Octostache's function throws (text that is not base64, a pattern that is
  not a regular expression, a version that cannot be parsed): the deployment server reports
  an error there rather than a value;
- ResultTooLarge when a result would grow past MAX_RESULT characters (``Replace``, ``Indent``,
  ``Append``, wide numeric precisions): the evaluator reports a spent budget.

Strings are measured as .NET measures them, in UTF-16 code units: ``Substring`` and
``Truncate`` count a character outside the Basic Multilingual Plane as two, and the escapes
that write ``\\uXXXX`` write it as its surrogate pair. A lone surrogate that such a cut leaves
is written as U+FFFD, as .NET's UTF-8 encoder writes it.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime as dt
import decimal
import hashlib
import math
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element

import markdown
from markdown.extensions import Extension
from markdown.inlinepatterns import InlineProcessor, SimpleTagInlineProcessor

MAX_RESULT = 64 * 1024 * 1024  # characters
MAX_PRECISION = 99  # digits in a standard numeric format ("N2", "D8"), as .NET Framework


class FilterError(ValueError):
    """The filter is unknown or its arguments do not fit."""


class FilterFailed(FilterError):
    """Octostache's function throws here: the deployment server reports an error."""


class ResultTooLarge(FilterError):
    """The result would hold more than MAX_RESULT characters."""


FilterFunction = Callable[[str | None, tuple[str, ...]], str | None]


def apply_filter(name: str, value: str | None, args: tuple[str, ...]) -> str | None:
    function = _FILTERS.get(name.lower())
    if function is None:
        raise FilterError(f"unknown filter {name!r}")
    try:
        return function(value, args)
    except FilterError:
        raise
    except (ValueError, IndexError, ArithmeticError, re.error) as exc:
        raise FilterFailed(f"{name}: {exc}") from exc


def _bounded(size: int, what: str) -> None:
    if size > MAX_RESULT:
        raise ResultTooLarge(f"{what} would make more than {MAX_RESULT} characters")


# --- .NET strings ------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Char.IsWhiteSpace: Python's str.isspace also counts U+001C..U+001F, .NET does not.
_DOTNET_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _scalar(text: str) -> str:
    """``text`` with any lone surrogate as U+FFFD, as .NET encodes it."""
    return _SURROGATE.sub("\ufffd", text)


def _utf16_length(text: str) -> int:
    if text.isascii() or not _ASTRAL.search(text):
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _utf16_slice(text: str, start: int, length: int) -> str:
    """``text.Substring(start, length)`` in UTF-16 code units."""
    if not _ASTRAL.search(text):
        return text[start : start + length]
    units = text.encode("utf-16-le", "surrogatepass")
    piece = units[2 * start : 2 * (start + length)]
    return _scalar(piece.decode("utf-16-le", "surrogatepass"))


def _utf16_units(char: str) -> list[int]:
    code = ord(char)
    if code < 0x10000:
        return [code]
    code -= 0x10000
    return [0xD800 + (code >> 10), 0xDC00 + (code & 0x3FF)]


def _u_escape(char: str) -> str:
    return "".join(f"\\u{unit:04x}" for unit in _utf16_units(char))


def _dotnet_int(text: str) -> int | None:
    """``int.TryParse(text)``: white space, a sign and ASCII digits, in 32 bits."""
    match = re.fullmatch(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)[ \t\n\v\f\r]*", text)
    if match is None or len(match.group(2).lstrip("0")) > 10:
        return None
    number = int(match.group(2)) * (-1 if match.group(1) == "-" else 1)
    return number if -(2**31) <= number < 2**31 else None


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


# --- text ----------------------------------------------------------------------------------


def _to_upper(value: str | None, args: tuple[str, ...]) -> str | None:
    return None if args or value is None else _case(value, upper=True)


def _to_lower(value: str | None, args: tuple[str, ...]) -> str | None:
    return None if args or value is None else _case(value, upper=False)


def _trim(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    side = args[0].lower() if args else ""
    if side == "":
        return value.strip(_DOTNET_WHITESPACE) if not args else None
    if side == "start":
        return value.lstrip(_DOTNET_WHITESPACE)
    if side == "end":
        return value.rstrip(_DOTNET_WHITESPACE)
    return None


def _truncate(value: str | None, args: tuple[str, ...]) -> str | None:
    """Only the first argument counts; the text cut gets ``...``."""
    limit = _dotnet_int(args[0]) if args else None
    if value is None or limit is None or limit < 0:
        return None
    if limit < _utf16_length(value):
        return _utf16_slice(value, 0, limit) + "..."
    return value


def _substring(value: str | None, args: tuple[str, ...]) -> str | None:
    """``Substring length`` or ``Substring start length``; a length past the end stops at
    the end, a start past it (or a length alone past it) gives nothing."""
    if value is None or not 1 <= len(args) <= 2:
        return None
    numbers = [_dotnet_int(arg) for arg in args]
    if any(number is None or number < 0 for number in numbers):
        return None
    size = _utf16_length(value)
    if len(numbers) == 1:
        (length,) = numbers
        assert length is not None
        return None if length > size else _utf16_slice(value, 0, length)
    start, length = numbers
    assert start is not None and length is not None
    if start > size:
        return None
    return _utf16_slice(value, start, min(length, size - start))


def _append(value: str | None, args: tuple[str, ...]) -> str | None:
    if not args:
        return None
    _bounded(len(value or "") + sum(map(len, args)), "Append")
    return (value or "") + "".join(args)


def _prepend(value: str | None, args: tuple[str, ...]) -> str | None:
    if not args:
        return None
    _bounded(len(value or "") + sum(map(len, args)), "Prepend")
    return "".join(args) + (value or "")


_INDENT_SIZES = re.compile(r"^(?:([0-9]{1,3})?/)?([0-9]{1,3})$")


def _indent(value: str | None, args: tuple[str, ...]) -> str | None:
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
    _bounded(len(first) + len(value) + value.count("\n") * len(others), "Indent")
    return first + value.replace("\n", "\n" + others)


def _null(value: str | None, args: tuple[str, ...]) -> None:
    return None


# --- escapes -------------------------------------------------------------------------------

_HTML = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "/": "&#x2F;"}
)
_XML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"})
_JSON = str.maketrans({'"': '\\"', "\r": "\\r", "\t": "\\t", "\n": "\\n", "\\": "\\\\"})
_YAML_NEWLINES = re.compile(r"(?:\r?\n)+")
_YAML_DOUBLE = re.compile(r'[^\x20-\x7e]|[\\"]')
_YAML_DOUBLE_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\", '"': '\\"'}
_PROPERTIES = re.compile(r"[\\\r\n\t]|[^\x00-\xfe]")
_PROPERTIES_NAMED = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", "\t": "\\t"}
_URI_RESERVED = ":/?#[]@!$&'()*+,;="


def _escape(function: Callable[[str], str], grows: str, by: int) -> FilterFunction:
    """An escape, which takes no options: each character matching ``grows`` becomes at most
    ``by`` characters longer, which is checked before a large result is made."""
    growing = re.compile(grows)

    def escape(value: str | None, args: tuple[str, ...]) -> str | None:
        if args or value is None:
            return None
        if len(value) * (by + 1) > MAX_RESULT:
            matched = len(value) - len(growing.sub("", value))
            _bounded(len(value) + matched * by, "the escape")
        return function(value)

    return escape


def _yaml_single_quote(text: str) -> str:
    """A newline inside single quotes reads as a space, so each run of them gets one more."""
    doubled = _YAML_NEWLINES.sub(
        lambda m: ("\r\n" if m.group().startswith("\r") else "\n") + m.group(), text
    )
    return doubled.replace("'", "''")


def _yaml_double_quote(text: str) -> str:
    return _YAML_DOUBLE.sub(lambda m: _YAML_DOUBLE_NAMED.get(m.group()) or _u_escape(m[0]), text)


def _properties(text: str) -> str:
    return _PROPERTIES.sub(lambda m: _PROPERTIES_NAMED.get(m.group()) or _u_escape(m[0]), text)


def _properties_key(text: str) -> str:
    return _properties(text).replace(" ", "\\ ").replace(":", "\\:").replace("=", "\\=")


def _properties_value(text: str) -> str:
    escaped = _properties(text)
    return "\\" + escaped if escaped.startswith(" ") else escaped


def _uri_escape(text: str) -> str:
    return urllib.parse.quote(_scalar(text), safe=_URI_RESERVED)


def _uri_data_escape(text: str) -> str:
    return urllib.parse.quote(_scalar(text), safe="")


# --- encodings and hashes ---------------------------------------------------------------------

_ENCODINGS = {"utf8": "utf-8", "utf-8": "utf-8", "unicode": "utf-16-le"}
_BASE64_WHITESPACE = re.compile(r"[ \t\r\n]")


def _from_base64_bytes(text: str) -> bytes:
    """``Convert.FromBase64String``: white space anywhere is ignored, padding is needed."""
    compact = _BASE64_WHITESPACE.sub("", text)
    if len(compact) % 4:
        raise FilterFailed("the input is not a valid Base-64 string")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise FilterFailed("the input is not a valid Base-64 string") from exc


def _to_base64(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None or len(args) > 1:
        return None
    encoding = _ENCODINGS.get(args[0].lower() if args else "utf8")
    if encoding is None:
        return None
    return base64.b64encode(_scalar(value).encode(encoding)).decode("ascii")


def _from_base64(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None or len(args) > 1:
        return None
    data = _from_base64_bytes(value)  # decoded before the encoding is looked at
    encoding = _ENCODINGS.get(args[0].lower() if args else "utf8")
    if encoding is None:
        return None
    return data.decode(encoding, "replace")


def _hash(algorithm: str) -> FilterFunction:
    """``Sha256``, ``Sha256 utf8|utf-8|unicode|base64``, ``Sha256 size`` (bytes of the
    digest kept), both in either order: lower-case hex."""

    def digest(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is None or len(args) > 2:
            return None
        size: int | None = None
        encoding = "utf8"
        first = _dotnet_int(args[0]) if args else None
        if args and first is not None and first > 0:
            size = first
            if len(args) > 1:
                encoding = args[1].lower()
        elif args:
            encoding = args[0].lower()
            if len(args) > 1:
                size = _dotnet_int(args[1])
                if size is None or size <= 0:
                    return None
        if encoding == "base64":
            try:
                data = _from_base64_bytes(value)
            except FilterFailed:  # Octostache catches this one
                return None
        elif encoding in _ENCODINGS:
            data = _scalar(value).encode(_ENCODINGS[encoding])
        else:
            return None
        raw = hashlib.new(algorithm, data).digest()
        return raw[: size or len(raw)].hex()

    return digest


# --- comparisons and regular expressions -----------------------------------------------------


def _dotnet_pattern(pattern: str) -> re.Pattern[str]:
    """A .NET pattern in Python's syntax: named groups ``(?<n>)``/``(?'n')``, ``\\k<n>``,
    ``\\z`` and ``\\Z``. Other .NET-only syntax (``\\p{L}``, class subtraction, inline
    options in the middle) is refused by Python's parser: a FilterFailed, as .NET's parser
    would refuse what it does not know."""
    translated = re.sub(
        r"\\\\|\\k<(\w+)>|\\k'(\w+)'|\(\?<(?![=!])(\w+)>|\(\?'(\w+)'|\\z|\\Z",
        _translate_pattern_piece,
        pattern,
    )
    return re.compile(translated)


def _translate_pattern_piece(match: re.Match[str]) -> str:
    text = match.group()
    if text == "\\\\":
        return text
    if text == "\\z":
        return "\\Z"
    if text == "\\Z":
        return "(?=\\n?\\Z)"
    if match.group(1) or match.group(2):
        return f"(?P={match.group(1) or match.group(2)})"
    return f"(?P<{match.group(3) or match.group(4)}>"


def _substitution(pattern: re.Pattern[str], replacement: str) -> Callable[[re.Match[str]], str]:
    """.NET's replacement syntax: ``$1``, ``${name}``, ``$&``, ``$0``, ``$```, ``$'``,
    ``$+``, ``$_`` and ``$$``; anything else is literal."""
    pieces: list[str | Callable[[re.Match[str]], str]] = []
    position, literal = 0, []
    while position < len(replacement):
        char = replacement[position]
        if char != "$" or position + 1 == len(replacement):
            literal.append(char)
            position += 1
            continue
        taken, piece = _dollar(pattern, replacement, position + 1)
        if piece is None:
            literal.append("$")
            position += 1
            continue
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append(piece)
        position = taken
    if literal:
        pieces.append("".join(literal))

    def expand(match: re.Match[str]) -> str:
        return "".join(p if isinstance(p, str) else p(match) for p in pieces)

    return expand


def _dollar(
    pattern: re.Pattern[str], text: str, at: int
) -> tuple[int, str | Callable[[re.Match[str]], str] | None]:
    """The ``$`` reference starting at ``text[at]``: where it ends and what it stands for."""
    char = text[at]
    if char == "$":
        return at + 1, "$"
    if char in "&0" and not (char == "0" and at + 1 < len(text) and text[at + 1].isdigit()):
        return at + 1, lambda m: m.group(0)
    if char == "`":
        return at + 1, lambda m: m.string[: m.start()]
    if char == "'":
        return at + 1, lambda m: m.string[m.end() :]
    if char == "_":
        return at + 1, lambda m: m.string
    if char == "+":
        return at + 1, lambda m: (m.group(m.lastindex) or "") if m.lastindex else ""
    if char == "{":
        end = text.find("}", at)
        name = text[at + 1 : end] if end > 0 else ""
        if name.isascii() and name.isdigit() and int(name) <= pattern.groups:
            number = int(name)
            return end + 1, lambda m: m.group(number) or ""
        if name in pattern.groupindex:
            return end + 1, lambda m: m.group(name) or ""
        return at, None
    if "0" <= char <= "9":
        number, end, position = -1, at, at
        while position < len(text) and "0" <= text[position] <= "9" and position - at < 10:
            candidate = int(text[at : position + 1])
            position += 1
            if candidate <= pattern.groups:
                number, end = candidate, position
        if number >= 0:
            found = number
            return end, lambda m: m.group(found) or ""
    return at, None


def _replace(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None or not args:
        return None
    pattern = _dotnet_pattern(args[0])
    expand = _substitution(pattern, args[1] if len(args) > 1 else "")
    produced = 0

    def counted(match: re.Match[str]) -> str:
        # An empty pattern matches between every two characters: count as pieces are made.
        nonlocal produced
        piece = expand(match)
        produced += len(piece)
        _bounded(produced, "Replace")
        return piece

    return pattern.sub(counted, value)


def _comparison(test: Callable[[str, str], bool]) -> FilterFunction:
    def compare(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is None or len(args) != 1:
            return None
        return "true" if test(value, args[0]) else "false"

    return compare


# --- Octopus versions ----------------------------------------------------------------------

# The deployment server's OctopusVersionParser, groups as it names them.
_VERSION = re.compile(
    r"^\s*(?:\s*(?P<prefix>v|V)?\s*(?P<major>\d+\b)\s*(?:\.\s*(?P<minor>\d+\b)\s*)?"
    r"(?:\.\s*(?P<patch>\d+\b)\s*)?(?:\.\s*(?P<revision>\d+\b)\s*)?)?"
    r"(?:[.\-_\\])?(?P<prerelease>(?P<prereleaseprefix>[A-Za-z0-9]*?)"
    r"([.\-_\\](?P<prereleasecounter>[A-Za-z0-9.\-_\\]*?)?)?)?"
    r"(?:\+(?P<buildmetadata>[A-Za-z0-9_\-.\\+]*?))?\s*$"
)


def _version(part: str) -> FilterFunction:
    def version(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise FilterFailed("The version can not be an empty string")
        match = _VERSION.match(value)
        if match is None:
            raise FilterFailed("The supplied version was not valid")
        if part in ("major", "minor", "patch", "revision"):
            digits = match.group(part)
            if digits is None:
                return "0"
            number = _dotnet_int(digits)
            if number is None:  # too large, or digits .NET does not read as digits
                raise FilterFailed(f"the {part} of {value.strip()!r} is not a 32-bit number")
            return str(number)
        return match.group(part) or ""

    return version


# --- dates -----------------------------------------------------------------------------------

TICKS_PER_SECOND = 10_000_000
_TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
_MAX_TICKS = 3_155_378_975_999_999_999  # 9999-12-31T23:59:59.9999999
_EPOCH = dt.datetime(1, 1, 1)


@dataclass(frozen=True, slots=True)
class Moment:
    """A .NET DateTime or DateTimeOffset: wall-clock ticks since 0001-01-01 and what the
    wall clock is. ``kind`` is "unspecified", "utc" or "local" for a DateTime, "offset" for a
    DateTimeOffset (``offset`` minutes from UTC)."""

    ticks: int
    kind: str
    offset: int = 0

    @property
    def wall(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self.ticks // 10)

    def shifted(self, ticks: int) -> Moment:
        moved = self.ticks + ticks
        if not 0 <= moved <= _MAX_TICKS:
            raise OverflowError("the date is out of range")
        return replace(self, ticks=moved)


def _ticks(wall: dt.datetime, extra: int = 0) -> int:
    delta = wall - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * TICKS_PER_SECOND + delta.microseconds * 10 + extra


def local_offset(wall: dt.datetime) -> int:
    """Minutes the local time zone is ahead of UTC at the local wall-clock time ``wall``."""
    try:
        aware = wall.astimezone()
    except (OverflowError, ValueError, OSError):
        aware = dt.datetime.now().astimezone()
    offset = aware.utcoffset()
    assert offset is not None
    return int(offset.total_seconds() // 60)


def now() -> dt.datetime:
    """The current UTC time (a seam for tests)."""
    return dt.datetime.now(dt.UTC)


def _now_moment(utc: bool) -> Moment:
    current = now()
    if utc:
        return Moment(_ticks(current.replace(tzinfo=None)), "utc")
    offset = local_offset(current.replace(tzinfo=None))
    local = current.replace(tzinfo=None) + dt.timedelta(minutes=offset)
    return Moment(_ticks(local), "unspecified")


_MONTHS = [calendar.month_name[i] for i in range(1, 13)]  # the invariant culture's names
_MONTHS_ABBR = [calendar.month_abbr[i] for i in range(1, 13)]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_DAYS_ABBR = [day[:3] for day in _DAYS]
_MONTH_NUMBERS = {
    **{name.lower(): i + 1 for i, name in enumerate(_MONTHS)},
    **{name.lower(): i + 1 for i, name in enumerate(_MONTHS_ABBR)},
    "sept": 9,
}
_DAY_NUMBERS = {
    **{name.lower(): i for i, name in enumerate(_DAYS)},
    **{name.lower(): i for i, name in enumerate(_DAYS_ABBR)},
}
_TIME = re.compile(
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{1,2})(?::(?P<second>\d{1,2})"
    r"(?:\.(?P<fraction>\d{1,7})\d*)?)?)?\s*(?P<ampm>[AaPp][Mm])?"
)
_ZONE = re.compile(r"(?P<z>Z|GMT|UTC)|(?P<sign>[+-])(?P<hh>\d{1,2})(?::?(?P<mm>\d{2}))?", re.I)


@dataclass(frozen=True, slots=True)
class _Written:
    """What DateTime.TryParse read: the wall clock as written and the zone, if any."""

    wall_ticks: int
    zone: int | None  # minutes ahead of UTC; None when the text names no zone
    utc: bool  # written with Z or GMT


def _parse_written(text: str) -> _Written | None:
    """The forms DateTime.TryParse reads in the invariant culture: ISO 8601, year/month/day,
    month/day/year, day or month names (``22 May 2030``, ``May 22, 2030``, an optional
    weekday that has to be right), an optional time (``9:05``, ``09:05:00.1234567``,
    ``9:05 PM``) and zone (``Z``, ``GMT``, ``+02:00``). A time alone is today's."""
    rest = text.strip(_DOTNET_WHITESPACE)
    if not rest or len(rest) > 200:
        return None
    date, rest = _take_date(rest)
    rest = rest.lstrip(" ,")
    if rest[:1] in ("T", "t") and date is not None:
        rest = rest[1:]
    hour = minute = second = fraction = 0
    time_given = False
    match = _TIME.match(rest)
    if match is not None and (match.group("minute") or match.group("ampm")):
        time_given = True
        hour, minute = int(match.group("hour")), int(match.group("minute") or 0)
        second = int(match.group("second") or 0)
        fraction = int((match.group("fraction") or "").ljust(7, "0"))
        ampm = (match.group("ampm") or "").upper()
        if ampm:
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if ampm == "PM" else 0)
        rest = rest[match.end() :].lstrip()
    zone: int | None = None
    utc = False
    zone_match = _ZONE.match(rest)
    if zone_match is not None and (time_given or date is not None):
        if zone_match.group("z"):
            zone, utc = 0, True
        else:
            hours, minutes = int(zone_match.group("hh")), int(zone_match.group("mm") or 0)
            if hours > 14 or minutes > 59:
                return None
            zone = (hours * 60 + minutes) * (-1 if zone_match.group("sign") == "-" else 1)
        rest = rest[zone_match.end() :].strip()
    if rest or (date is None and not time_given):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    if date is None:
        today = now().replace(tzinfo=None) + dt.timedelta(minutes=local_offset(dt.datetime.now()))
        date = today.date()
    wall = dt.datetime(date.year, date.month, date.day, hour, minute, second)
    return _Written(_ticks(wall) + fraction, zone, utc)


def _take_date(text: str) -> tuple[dt.date | None, str]:
    """A date at the start of ``text`` and what follows it."""
    weekday: int | None = None
    words = re.match(r"([A-Za-z]+)\.?,?\s*", text)
    if words is not None and words.group(1).lower() in _DAY_NUMBERS:
        weekday = _DAY_NUMBERS[words.group(1).lower()]
        text = text[words.end() :]
    found = _date_forms(text)
    if found is None:
        return None, text
    (year, month, day), rest = found
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return None, "!"  # a date that does not exist: nothing can parse
    if weekday is not None and (date.weekday() + 1) % 7 != weekday:
        return None, "!"
    return date, rest


def _date_forms(text: str) -> tuple[tuple[int, int, int], str] | None:
    numeric = re.match(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d/.-])", text)
    if numeric is not None:
        return (int(numeric[1]), int(numeric[3]), int(numeric[4])), text[numeric.end() :]
    month_first = re.match(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})(?![\d/.-])", text)
    if month_first is not None:
        year = _full_year(month_first[4])
        return (year, int(month_first[1]), int(month_first[3])), text[month_first.end() :]
    day_name = re.match(r"(\d{1,2})[\s\-/.]*([A-Za-z]+)\.?[\s\-/.,]*(\d{4}|\d{2})(?![\d:])", text)
    if day_name is not None and day_name[2].lower() in _MONTH_NUMBERS:
        month = _MONTH_NUMBERS[day_name[2].lower()]
        return (_full_year(day_name[3]), month, int(day_name[1])), text[day_name.end() :]
    name_day = re.match(r"([A-Za-z]+)\.?[\s\-/.]*(\d{1,2})(?:st|nd|rd|th)?,?[\s\-/.]*(\d{4})", text)
    if name_day is not None and name_day[1].lower() in _MONTH_NUMBERS:
        month = _MONTH_NUMBERS[name_day[1].lower()]
        return (int(name_day[3]), month, int(name_day[2])), text[name_day.end() :]
    return None


def _full_year(digits: str) -> int:
    """Two digits as the invariant calendar reads them: up to 49 is 20xx."""
    year = int(digits)
    if len(digits) <= 2:
        year += 2000 if year <= 49 else 1900
    return year


def _parse_datetime(text: str, roundtrip: bool = False) -> Moment | None:
    """``DateTime.TryParse``: a zone moves the time to local time (kind local); with
    ``roundtrip`` (DateTimeStyles.RoundtripKind) a ``Z`` keeps it UTC."""
    written = _parse_written(text)
    if written is None:
        return None
    if written.zone is None:
        return Moment(written.wall_ticks, "unspecified")
    if roundtrip and written.utc:
        return Moment(written.wall_ticks, "utc")
    utc_ticks = written.wall_ticks - written.zone * 60 * TICKS_PER_SECOND
    utc_wall = _EPOCH + dt.timedelta(microseconds=utc_ticks // 10)
    offset = local_offset(utc_wall + dt.timedelta(minutes=local_offset(utc_wall)))
    local = utc_ticks + offset * 60 * TICKS_PER_SECOND
    return Moment(local, "local", offset) if 0 <= local <= _MAX_TICKS else None


def _parse_datetime_offset(text: str) -> Moment | None:
    """``DateTimeOffset.TryParse``: no zone written means the local zone."""
    written = _parse_written(text)
    if written is None:
        return None
    if written.zone is None:
        wall = _EPOCH + dt.timedelta(microseconds=written.wall_ticks // 10)
        return Moment(written.wall_ticks, "offset", local_offset(wall))
    return Moment(written.wall_ticks, "offset", written.zone)


def _moment_offset(moment: Moment) -> int:
    """The minutes ``z``, ``zz`` and ``zzz`` write."""
    if moment.kind == "offset":
        return moment.offset
    if moment.kind == "utc":
        return 0
    return local_offset(moment.wall)


def _to_utc(moment: Moment) -> Moment:
    if moment.kind == "utc":
        return moment
    offset = moment.offset if moment.kind == "offset" else local_offset(moment.wall)
    return Moment(moment.ticks - offset * 60 * TICKS_PER_SECOND, "utc")


def _offset_text(minutes: int, width: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    if width == 1:
        return f"{sign}{hours}"
    if width == 2:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}:{rest:02d}"


_STANDARD_DATE_FORMATS = {
    "d": "MM/dd/yyyy",
    "D": "dddd, dd MMMM yyyy",
    "f": "dddd, dd MMMM yyyy HH:mm",
    "F": "dddd, dd MMMM yyyy HH:mm:ss",
    "g": "MM/dd/yyyy HH:mm",
    "G": "MM/dd/yyyy HH:mm:ss",
    "m": "MMMM dd",
    "M": "MMMM dd",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "t": "HH:mm",
    "T": "HH:mm:ss",
    "y": "yyyy MMMM",
    "Y": "yyyy MMMM",
}


def format_moment(moment: Moment, spec: str) -> str:
    """``DateTime.ToString(spec)`` / ``DateTimeOffset.ToString(spec)``, invariant culture.
    ValueError where .NET throws a FormatException."""
    if spec == "":
        spec = "G"
    if len(spec) == 1:
        if spec in "oO":
            zone = "zzz" if moment.kind == "offset" else "K"
            return _custom_date(moment, f"yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffff{zone}")
        if spec in "rR":
            moment = _to_utc(moment) if moment.kind == "offset" else moment
            return _custom_date(moment, "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'")
        if spec == "u":
            moment = _to_utc(moment) if moment.kind == "offset" else moment
            return _custom_date(moment, "yyyy'-'MM'-'dd HH':'mm':'ss'Z'")
        if spec == "U":
            if moment.kind == "offset":
                raise ValueError("'U' is not a DateTimeOffset format")
            return _custom_date(_to_utc(moment), _STANDARD_DATE_FORMATS["F"])
        if spec not in _STANDARD_DATE_FORMATS:
            raise ValueError(f"{spec!r} is not a date format")
        return _custom_date(moment, _STANDARD_DATE_FORMATS[spec])
    return _custom_date(moment, spec)


_DATE_SPECIFIERS = "dfFghHKmMstyz:/"


def _custom_date(moment: Moment, spec: str) -> str:
    wall = moment.wall
    fraction = f"{moment.ticks % TICKS_PER_SECOND:07d}"
    out: list[str] = []
    position = 0
    while position < len(spec):
        char = spec[position]
        run = 1
        while position + run < len(spec) and spec[position + run] == char:
            run += 1
        if char in "'\"":
            end = spec.find(char, position + 1)
            while end > 0 and spec[end - 1] == "\\" and _escaped(spec, end):
                end = spec.find(char, end + 1)
            if end < 0:
                raise ValueError("an unclosed quote in the format")
            out.append(re.sub(r"\\(.)", r"\1", spec[position + 1 : end]))
            position = end + 1
            continue
        if char == "%":
            following = spec[position + 1 : position + 2]
            if following in ("", "%"):
                raise ValueError("'%' needs a specifier after it")
            if following in _DATE_SPECIFIERS:
                out.append(_date_token(moment, wall, fraction, following, 1, out))
            else:
                out.append(following)
            position += 2
            continue
        if char == "\\":
            if position + 1 >= len(spec):
                raise ValueError("a trailing '\\' in the format")
            out.append(spec[position + 1])
            position += 2
            continue
        if char in _DATE_SPECIFIERS:
            out.append(_date_token(moment, wall, fraction, char, run, out))
        else:
            out.append(char * run)
        position += run
    return "".join(out)


def _escaped(spec: str, at: int) -> bool:
    slashes = len(spec[:at]) - len(spec[:at].rstrip("\\"))
    return slashes % 2 == 1


def _date_token(
    moment: Moment, wall: dt.datetime, fraction: str, char: str, run: int, out: list[str]
) -> str:
    if char == "d":
        if run == 1:
            return str(wall.day)
        if run == 2:
            return f"{wall.day:02d}"
        weekday = (wall.weekday() + 1) % 7
        return _DAYS_ABBR[weekday] if run == 3 else _DAYS[weekday]
    if char in "fF":
        if run > 7:
            raise ValueError("more than seven fraction digits")
        digits = fraction[:run]
        if char == "F":
            digits = digits.rstrip("0")
            if not digits and out and out[-1].endswith("."):
                out[-1] = out[-1][:-1]
        return digits
    if char == "g":
        return "A.D."
    if char == "h":
        hour = wall.hour % 12 or 12
        return str(hour) if run == 1 else f"{hour:02d}"
    if char == "H":
        return str(wall.hour) if run == 1 else f"{wall.hour:02d}"
    if char == "K":
        if moment.kind == "utc":
            return "Z" * run
        if moment.kind == "unspecified":
            return ""
        return _offset_text(_moment_offset(moment), 3) * run
    if char == "m":
        return str(wall.minute) if run == 1 else f"{wall.minute:02d}"
    if char == "M":
        if run == 1:
            return str(wall.month)
        if run == 2:
            return f"{wall.month:02d}"
        return _MONTHS_ABBR[wall.month - 1] if run == 3 else _MONTHS[wall.month - 1]
    if char == "s":
        return str(wall.second) if run == 1 else f"{wall.second:02d}"
    if char == "t":
        designator = "AM" if wall.hour < 12 else "PM"
        return designator[0] if run == 1 else designator
    if char == "y":
        if run == 1:
            return str(wall.year % 100)
        if run == 2:
            return f"{wall.year % 100:02d}"
        return f"{wall.year:0{run}d}"
    if char == "z":
        return _offset_text(_moment_offset(moment), min(run, 3))
    return char * run  # ':' and '/': the invariant culture's separators


def _now_date(utc: bool) -> FilterFunction:
    """``NowDate`` / ``NowDateUtc``, optionally with a format; it reads no value."""

    def now_date(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is not None or len(args) > 1:
            return None
        try:
            return format_moment(_now_moment(utc), args[0] if args else "O")
        except ValueError as exc:
            raise FilterFailed(str(exc)) from exc

    return now_date


_FLOAT = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\v\f\r]*"
)


def _dotnet_double(text: str, thousands: bool = False) -> float | None:
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


def _shift(value: str | None, ticks: Callable[[Moment], int | None]) -> str | None:
    if value is None:
        return None
    moment = _parse_datetime(value, roundtrip=True)
    if moment is None or moment.kind == "local":
        moment = _parse_datetime_offset(value)
    if moment is None:
        return None
    try:
        amount = ticks(moment)
        if amount is None:
            return None
        return format_moment(moment.shifted(amount), "O")
    except (OverflowError, ValueError):
        return None


def _add_duration(unit_ticks: int, factor: int = 1) -> FilterFunction:
    """``AddHours 1.5``: any double; the ticks it comes to are truncated, as TimeSpan does."""

    def add(value: str | None, args: tuple[str, ...]) -> str | None:
        amount = _dotnet_double(args[0]) if len(args) == 1 else None
        if amount is None:
            return None
        ticks = amount * factor * unit_ticks
        if not -(2**63) <= ticks < 2**63:
            return None
        return _shift(value, lambda _: int(ticks))

    return add


def _add_months(value: str | None, args: tuple[str, ...]) -> str | None:
    months = _dotnet_int(args[0]) if len(args) == 1 else None
    if months is None:
        return None

    def ticks(moment: Moment) -> int | None:
        if not -120_000 <= months <= 120_000:
            return None
        wall = moment.wall
        index = wall.year * 12 + wall.month - 1 + months
        year, month = divmod(index, 12)
        if not 1 <= year <= 9999:
            return None
        day = min(wall.day, calendar.monthrange(year, month + 1)[1])
        moved = wall.replace(year=year, month=month + 1, day=day)
        return _ticks(moved) - _ticks(wall)

    return _shift(value, ticks)


_TIME_SPAN = re.compile(r"[ \t\n\v\f\r]*(-?)([0-9.:]+)[ \t\n\v\f\r]*")
# The separators between the numbers of a TimeSpan, and what the numbers are.
_TIME_SPAN_FORMS = {
    "": ("d",),
    ":": ("h", "m"),
    "::": ("h", "m", "s"),
    ".:": ("d", "h", "m"),
    ".::": ("d", "h", "m", "s"),
    "::.": ("h", "m", "s", "f"),
    ".::.": ("d", "h", "m", "s", "f"),
    ":::": ("d", "h", "m", "s"),
    ":::.": ("d", "h", "m", "s", "f"),
}


def _time_span(text: str) -> int | None:
    """``TimeSpan.TryParse`` (invariant): ``d``, ``h:m``, ``h:m:s``, ``d.h:m[:s[.f]]``,
    ``h:m:s.f``, ``d:h:m:s[.f]``; ``a:b:c`` with ``a`` above 23 is days, hours and
    minutes."""
    match = _TIME_SPAN.fullmatch(text)
    if match is None:
        return None
    numbers = re.split(r"[.:]", match.group(2))
    separators = "".join(re.findall(r"[.:]", match.group(2)))
    form = _TIME_SPAN_FORMS.get(separators)
    if form is None or not all(n.isascii() and n.isdigit() and len(n) <= 10 for n in numbers):
        return None
    parts = dict(zip(form, numbers, strict=True))
    if len(parts.get("f", "")) > 7:
        return None
    if separators == "::" and int(parts["h"]) > 23:
        parts = {"d": parts["h"], "h": parts["m"], "m": parts["s"]}
    days, hours = int(parts.get("d", 0)), int(parts.get("h", 0))
    minutes, seconds = int(parts.get("m", 0)), int(parts.get("s", 0))
    if hours > 23 or minutes > 59 or seconds > 59 or days > 10_675_199:
        return None
    fraction = int(parts.get("f", "").ljust(7, "0"))
    total = (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * TICKS_PER_SECOND + fraction
    return -total if match.group(1) else total


def _add_time_span(value: str | None, args: tuple[str, ...]) -> str | None:
    span = _time_span(args[0]) if len(args) == 1 else None
    if span is None:
        return None
    return _shift(value, lambda _: span)


# --- numbers ---------------------------------------------------------------------------------

_DECIMAL_LIMIT = decimal.Decimal(2**96)
_NUMBER_STYLE = re.compile(
    r"[ \t\n\v\f\r]*(?P<lead>[+-])?[ \t\n\v\f\r]*(?P<digits>[0-9][0-9,]*|)"
    r"(?:\.(?P<fraction>[0-9]*))?[ \t\n\v\f\r]*(?P<trail>[+-])?[ \t\n\v\f\r]*"
)
# Exact arithmetic (results are bounded by MAX_RESULT before they are made); rounding, when
# asked for, is half away from zero, as .NET formats numbers.
_CONTEXT = decimal.Context(
    prec=decimal.MAX_PREC,
    rounding=decimal.ROUND_HALF_UP,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
)


def _dotnet_decimal(text: str) -> decimal.Decimal | None:
    """``decimal.TryParse``: Number style (white space, a leading or trailing sign, ``,``
    between digits, one ``.``); a 96-bit coefficient, decimals past what fits rounded."""
    match = _NUMBER_STYLE.fullmatch(text)
    if match is None or (match.group("lead") and match.group("trail")):
        return None
    digits, fraction = match.group("digits").replace(",", ""), match.group("fraction") or ""
    if not digits and not fraction:
        return None
    number = decimal.Decimal(f"{digits or '0'}.{fraction}" if fraction else digits)
    if number != 0 and number.adjusted() >= 29:  # past 2**96
        return None
    scale = -int(number.as_tuple().exponent)
    if scale > 0:
        keep = min(scale, 28, max(0, 28 - number.adjusted()))
        number = _round(number, keep)
        if _coefficient(number) >= 2**96 and keep > 0:
            number = _round(number, keep - 1)
    if _coefficient(number) >= 2**96:
        return None
    negative = "-" in (match.group("lead"), match.group("trail")) and number != 0
    return number.copy_negate() if negative else number.copy_abs()


def _round(value: decimal.Decimal, places: int) -> decimal.Decimal:
    """``value`` rounded half away from zero to ``places`` decimals, if the digits fit."""
    _bounded(max(value.adjusted(), 0) + max(places, 0), "Format")
    return value.quantize(_unit(-places), context=_CONTEXT)


def _unit(exponent: int) -> decimal.Decimal:
    """``1E{exponent}``: the step ``quantize`` rounds to."""
    return decimal.Decimal((0, (1,), exponent))


def _coefficient(number: decimal.Decimal) -> decimal.Decimal:
    return number.scaleb(-int(number.as_tuple().exponent), context=_CONTEXT).copy_abs()


@dataclass(frozen=True, slots=True)
class _Number:
    """A number of a .NET type: "int", "double" or "decimal"."""

    value: decimal.Decimal
    kind: str
    double: float = 0.0


def _standard_number(number: _Number, spec: str) -> str | None:
    """A standard numeric format (``N2``, ``C``, ``E3``), or None when ``spec`` is not one."""
    match = re.fullmatch(r"([A-Za-z])([0-9]{0,9})", spec)
    if match is None:
        return None
    letter, digits = match.group(1), match.group(2)
    precision = int(digits) if digits else None
    if precision is not None and precision > MAX_PRECISION:
        raise ValueError(f"a precision above {MAX_PRECISION}")
    kind, value = letter.upper(), number.value
    if kind == "D":
        if number.kind != "int":
            raise ValueError("'D' formats integers only")
        text = str(abs(int(value))).rjust(precision or 0, "0")
        return "-" + text if value < 0 else text
    if kind == "X":
        if number.kind != "int":
            raise ValueError("'X' formats integers only")
        text = f"{int(value) & 0xFFFFFFFF:x}".rjust(precision or 0, "0")
        return text.upper() if letter == "X" else text
    if kind in ("F", "N", "C", "P"):
        places = 2 if precision is None else precision
        scaled = value.scaleb(2, context=_CONTEXT) if kind == "P" else value
        rounded = _round(scaled, places)
        body = _fixed(rounded.copy_abs(), places, grouped=kind != "F")
        negative = rounded < 0 or (rounded == 0 and _negative_zero(number))
        if kind == "C":
            return f"(¤{body})" if negative else f"¤{body}"
        if kind == "P":
            return f"-{body} %" if negative else f"{body} %"
        return "-" + body if negative else body
    if kind == "E":
        return _scientific(number, 6 if precision is None else precision, letter, 3, trim=False)
    if kind == "G":
        return _general(number, precision, "E" if letter == "G" else "e")
    if kind == "R":
        if number.kind != "double":
            raise ValueError("'R' formats floating point numbers only")
        return _general(number, None, "E")
    raise ValueError(f"{spec!r} is not a numeric format")


def _negative_zero(number: _Number) -> bool:
    """.NET Core keeps the sign of a negative double that rounds to zero (``-0.00``); an
    integer or a decimal that rounds to zero has none."""
    return number.kind == "double" and math.copysign(1.0, number.double) < 0


def _fixed(value: decimal.Decimal, places: int, grouped: bool) -> str:
    text = f"{value:.{places}f}"
    if not grouped:
        return text
    whole, _, fraction = text.partition(".")
    whole = f"{int(whole):,}"
    return f"{whole}.{fraction}" if fraction else whole


def _scientific(number: _Number, places: int, letter: str, width: int, trim: bool) -> str:
    value = number.value
    if value == 0:
        mantissa, exponent = decimal.Decimal(0), 0
    else:
        exponent = value.adjusted()
        mantissa = value.scaleb(-exponent, context=_CONTEXT).quantize(
            _unit(-places), context=_CONTEXT
        )
        if mantissa.copy_abs() >= 10:
            exponent += 1
            mantissa = value.scaleb(-exponent, context=_CONTEXT).quantize(
                _unit(-places), context=_CONTEXT
            )
    body = f"{mantissa.copy_abs():.{places}f}"
    if trim and "." in body:
        body = body.rstrip("0").rstrip(".")
    sign = "-" if value < 0 else ""
    exponent_sign = "-" if exponent < 0 else "+"
    return f"{sign}{body}{letter}{exponent_sign}{abs(exponent):0{width}d}"


def _general(number: _Number, precision: int | None, letter: str) -> str:
    """``G``: the shortest text for a double, every digit (and the scale) of a decimal, or
    ``precision`` significant digits, in scientific notation when the exponent is at least
    the digits shown or below -5."""
    if number.kind == "double" and precision is None:
        if math.isnan(number.double):
            return "NaN"
        if math.isinf(number.double):
            return "-Infinity" if number.double < 0 else "Infinity"
        shortest = decimal.Decimal(repr(number.double))
        significant = len(shortest.as_tuple().digits)
        if shortest != 0 and not -5 < shortest.adjusted() < 15:
            shown = _Number(shortest, "double")
            return _scientific(shown, significant - 1, letter, 2, trim=True)
        text = f"{shortest.normalize(context=_CONTEXT):f}"
        return "-0" if number.double == 0 and math.copysign(1, number.double) < 0 else text
    value = number.value
    if precision is None or precision == 0:
        if number.kind == "decimal" and precision is None:
            return f"{value:f}"
        precision = {"int": 10, "double": 15, "decimal": 29}[number.kind]
    if value == 0:
        return "0"
    rounded = value.quantize(_unit(value.adjusted() - precision + 1), context=_CONTEXT)
    exponent = rounded.adjusted()
    if exponent >= precision or exponent <= -5:
        return _scientific(_Number(rounded, number.kind), precision - 1, letter, 2, trim=True)
    text = f"{rounded:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass(slots=True)
class _Section:
    """One section of a custom numeric format, read once."""

    pieces: list[tuple[str, str]]  # ("literal", text) or ("0"|"#"|"."|"E", spec)
    integer_zeros: int = 0  # '0' placeholders from the first '0' to the point
    fraction_zeros: int = 0  # fraction places that always show
    fraction_places: int = 0
    grouped: bool = False
    scale: int = 0  # powers of ten: % is +2, ‰ +3, a ',' before the point -3
    exponent: tuple[str, bool, int] | None = None  # letter, always signed, minimum digits


def _custom_number(number: _Number, spec: str) -> str:
    """A custom format: up to three sections (positive; negative; zero), ``0`` and ``#``
    placeholders, ``.``, ``,`` (grouping, or thousands scaling before the point), ``%``,
    ``‰``, ``E+0``, quoted and escaped literals."""
    sections = _split_sections(spec)
    value = number.value
    if number.kind == "double":  # .NET formats doubles to 15 significant digits here
        value = _significant(value, 15)
    negative = value < 0
    zero_section = sections[2] if len(sections) > 2 and sections[2].pieces else None
    if negative and len(sections) > 1 and sections[1].pieces:
        text, is_zero = _apply_section(sections[1], value.copy_abs())
        if not is_zero:
            return text
        return _apply_section(zero_section or sections[0], decimal.Decimal(0))[0]
    text, is_zero = _apply_section(sections[0], value.copy_abs())
    if is_zero and zero_section is not None:
        return _apply_section(zero_section, decimal.Decimal(0))[0]
    return "-" + text if negative and not is_zero else text


def _significant(value: decimal.Decimal, digits: int) -> decimal.Decimal:
    if value == 0:
        return value
    return value.quantize(_unit(value.adjusted() - digits + 1), context=_CONTEXT).normalize(
        context=_CONTEXT
    )


def _split_sections(spec: str) -> list[_Section]:
    raw: list[list[tuple[str, str]]] = [[]]
    position = 0
    while position < len(spec):
        char = spec[position]
        if char in "'\"":
            end = spec.find(char, position + 1)
            end = len(spec) if end < 0 else end
            raw[-1].append(("literal", spec[position + 1 : end]))
            position = end + 1
        elif char == "\\":
            raw[-1].append(("literal", spec[position + 1 : position + 2]))
            position += 2
        elif char == ";":
            if len(raw) < 3:
                raw.append([])
            position += 1
        elif char in "eE" and re.match(r"[eE][+-]?0", spec[position:]):
            exponent = re.match(r"[eE]([+-]?)(0+)", spec[position:])
            assert exponent is not None
            raw[-1].append(("E", exponent.group()))
            position += exponent.end()
        elif char in "0#.,%‰":
            raw[-1].append((char, char))
            position += 1
        else:
            raw[-1].append(("literal", char))
            position += 1
    return [_read_section(pieces) for pieces in raw]


def _read_section(pieces: list[tuple[str, str]]) -> _Section:
    section = _Section([])
    point = next((i for i, (kind, _) in enumerate(pieces) if kind == "."), None)
    integral = pieces if point is None else pieces[:point]
    placeholders = [i for i, (kind, _) in enumerate(integral) if kind in "0#"]
    for index, (kind, text) in enumerate(pieces):
        if kind == ",":
            before_point = point is None or index < point
            following = [k for k, _ in pieces[index + 1 : point]] if before_point else []
            if before_point and any(k in "0#" for k in following):
                if placeholders and index > placeholders[0]:
                    section.grouped = True
            elif before_point:
                section.scale -= 3
            continue
        if kind == "%":
            section.scale += 2
        elif kind == "‰":
            section.scale += 3
        if kind == "E" and section.exponent is None:
            signed = "+" in text
            section.exponent = (text[0], signed, len(text.lstrip("eE+-")))
            section.pieces.append(("E", text))
            continue
        if kind == "%":
            section.pieces.append(("literal", "%"))
        elif kind == "‰":
            section.pieces.append(("literal", "‰"))
        else:
            section.pieces.append((kind, text))
    zeros = [i for i, (kind, _) in enumerate(integral) if kind == "0"]
    section.integer_zeros = len([i for i in placeholders if zeros and i >= zeros[0]])
    if point is not None:
        fraction = [kind for kind, _ in pieces[point + 1 :] if kind in "0#"]
        section.fraction_places = len(fraction)
        last_zero = max((i for i, kind in enumerate(fraction) if kind == "0"), default=-1)
        section.fraction_zeros = last_zero + 1
    return section


def _group(digits: str) -> str:
    head = len(digits) % 3 or 3
    return ",".join([digits[:head], *(digits[i : i + 3] for i in range(head, len(digits), 3))])


def _apply_section(section: _Section, value: decimal.Decimal) -> tuple[str, bool]:
    """``value`` (not negative) in ``section``, and whether it rounded to zero."""
    value = value.scaleb(section.scale, context=_CONTEXT)
    exponent_text = ""
    if section.exponent is not None:
        letter, signed, width = section.exponent
        shift = 0
        if value != 0:
            shift = value.adjusted() - max(section.integer_zeros, 1) + 1
            value = value.scaleb(-shift, context=_CONTEXT)
        sign = "-" if shift < 0 else ("+" if signed else "")
        exponent_text = f"{letter}{sign}{abs(shift):0{width}d}"
    rounded = _round(value, section.fraction_places)
    whole, _, fraction = f"{rounded:f}".partition(".")
    whole = whole.lstrip("0").rjust(section.integer_zeros, "0")
    shown = fraction.rstrip("0").ljust(section.fraction_zeros, "0")
    slots = [i for i, (kind, _) in enumerate(section.pieces) if kind in "0#"]
    point = next((i for i, (kind, _) in enumerate(section.pieces) if kind == "."), None)
    integer_slots = [i for i in slots if point is None or i < point]
    assigned: dict[int, str] = {}
    if integer_slots:
        together = integer_slots[-1] - integer_slots[0] == len(integer_slots) - 1
        if section.grouped and together:
            assigned = dict.fromkeys(integer_slots, "")
            assigned[integer_slots[0]] = _group(whole) if whole else ""
        else:
            for back, slot in enumerate(reversed(integer_slots[1:]), 1):
                at = len(whole) - back
                assigned[slot] = whole[at] if at >= 0 else ""
            assigned[integer_slots[0]] = whole[: max(0, len(whole) - len(integer_slots) + 1)]
    out: list[str] = []
    fraction_index = 0
    for index, (kind, text) in enumerate(section.pieces):
        if kind == "literal":
            out.append(text)
        elif kind == "E":
            out.append(exponent_text)
        elif kind == ".":
            out.append("." if shown else "")
        elif index in assigned:
            out.append(assigned[index])
        else:
            out.append(shown[fraction_index] if fraction_index < len(shown) else "")
            fraction_index += 1
    return "".join(out), rounded == 0


def _format_number(number: _Number, spec: str) -> str:
    if number.kind == "double" and not math.isfinite(number.double):
        if math.isnan(number.double):
            return "NaN"
        return "-Infinity" if number.double < 0 else "Infinity"
    standard = _standard_number(number, spec)
    if standard is not None:
        return standard
    text = _custom_number(number, spec)
    _bounded(len(text), "Format")
    return text


def _as_number(kind: str, text: str) -> _Number | None:
    if kind == "int":
        integer = _dotnet_int(text)
        return None if integer is None else _Number(decimal.Decimal(integer), "int")
    if kind == "double":
        double = _dotnet_double(text, thousands=True)
        if double is None:
            return None
        exact = decimal.Decimal(double) if math.isfinite(double) else decimal.Decimal(0)
        return _Number(exact, "double", double)
    found = _dotnet_decimal(text)
    return None if found is None else _Number(found, "decimal")


_FORMAT_TYPES = {
    "int32": "int",
    "int": "int",
    "double": "double",
    "decimal": "decimal",
    "date": "datetime",
    "datetime": "datetime",
    "datetimeoffset": "datetimeoffset",
}


def _format(value: str | None, args: tuple[str, ...]) -> str | None:
    """``Format spec`` reads the value as a decimal, else as a DateTimeOffset;
    ``Format Type spec`` as that type (Int, Int32, Double, Decimal, Date, DateTime,
    DateTimeOffset). What does not read as the type, or a spec .NET refuses, gives nothing."""
    if value is None or not args or len(args) > 2:
        return None
    try:
        if len(args) == 1:
            number = _as_number("decimal", value)
            if number is not None:
                return _format_number(number, args[0])
            moment = _parse_datetime_offset(value)
            return None if moment is None else format_moment(moment, args[0])
        kind = _FORMAT_TYPES.get(args[0].lower())
        if kind in ("int", "double", "decimal"):
            number = _as_number(kind, value)
            return None if number is None else _format_number(number, args[1])
        if kind == "datetime":
            moment = _parse_datetime(value)
            return None if moment is None else format_moment(moment, args[1])
        if kind == "datetimeoffset":
            moment = _parse_datetime_offset(value)
            return None if moment is None else format_moment(moment, args[1])
        return None
    except ResultTooLarge:
        raise
    except ValueError:  # .NET's FormatException: Octostache catches it
        return None


# --- URIs ------------------------------------------------------------------------------------

_DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "wss": 443,
    "ftp": 21,
    "gopher": 70,
    "nntp": 119,
    "news": -1,
    "telnet": 23,
    "ldap": 389,
    "mailto": 25,
    "net.tcp": 808,
    "net.pipe": -1,
    "file": -1,
}
_DNS_SCHEMES = {"http", "https", "ws", "wss", "ftp", "gopher", "nntp", "telnet", "ldap", "file"}
_SLASH_SCHEMES = {"http", "https", "ws", "wss", "ftp", "file"}
_RELATIVE_ERROR = "This operation is not supported for a relative URI."
_URI_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_URI_QUERY_SAFE = _URI_PATH_SAFE + "?/"


@dataclass(frozen=True, slots=True)
class _Uri:
    """The parts of an absolute System.Uri, escaped as it escapes them."""

    scheme: str
    user_info: str
    host: str  # IPv6 in brackets
    port: int  # -1: none
    explicit_port: bool
    path: str
    query: str
    fragment: str
    authority: bool  # written with "//"
    host_type: str


def _parse_uri(text: str) -> _Uri | str | None:
    """``Uri.TryCreate(text, UriKind.RelativeOrAbsolute)``: an absolute URI, "relative",
    or None when it is neither."""
    text = text.strip(_DOTNET_WHITESPACE)
    if re.match(r"[A-Za-z]:[\\/]", text):  # a DOS path is a file URI
        text = "file:///" + text.replace("\\", "/")
    scheme_match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):", text)
    if scheme_match is None or len(scheme_match.group(1)) < 2:
        return "relative"
    scheme = scheme_match.group(1).lower()
    rest = text[scheme_match.end() :]
    if scheme in _SLASH_SCHEMES:
        rest = rest.replace("\\", "/")
    rest, hash_mark, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    user_info, host, port, explicit, host_type = "", "", _DEFAULT_PORTS.get(scheme, -1), False, ""
    authority = rest.startswith("//")
    if authority:
        end = next((i for i, c in enumerate(rest[2:], 2) if c == "/"), len(rest))
        server, path = rest[2:end], rest[end:]
        if "@" in server:
            user_info, _, server = server.rpartition("@")
        host_port = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^:]*)(?::([0-9]*))?", server)
        if host_port is None:
            return None
        host = host_port.group(1).lower()
        if host_port.group(2):
            port, explicit = int(host_port.group(2)), True
            if port > 65535:
                return None
        host_type = _host_type(host, scheme)
        if host_type == "" or (not host and scheme in _DNS_SCHEMES - {"file"}):
            return None
        if not path and scheme in _DNS_SCHEMES:
            path = "/"
    else:
        path = rest
        if scheme in _DEFAULT_PORTS and scheme not in ("mailto", "news"):
            return "relative"  # "http:x" is not absolute; as a relative reference it is fine
        host_type = "Unknown"
    if scheme in _SLASH_SCHEMES:
        path = _remove_dot_segments(path)
    return _Uri(
        scheme=scheme,
        user_info=urllib.parse.quote(_scalar(user_info), safe=";:&=+$,%!~*'()-._"),
        host=host,
        port=port,
        explicit_port=explicit,
        path=urllib.parse.quote(_scalar(path), safe=_URI_PATH_SAFE),
        query=(question + urllib.parse.quote(_scalar(query), safe=_URI_QUERY_SAFE)),
        fragment=hash_mark + urllib.parse.quote(_scalar(fragment), safe=_URI_QUERY_SAFE + "#"),
        authority=authority,
        host_type=host_type,
    )


_DNS_NAME = re.compile(r"(?=.{1,255}$)[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?(?:\.[a-z0-9_\-]+)*\.?")


def _host_type(host: str, scheme: str) -> str:
    if host.startswith("["):
        return "IPv6"
    if re.fullmatch(r"(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)", host):
        return "IPv4"
    if _DNS_NAME.fullmatch(host):
        return "Dns"
    if not host:
        return "Basic"
    if scheme in _DNS_SCHEMES or re.search(r"[\s<>\"{}|^`\\]", host):
        return ""
    return "Basic"


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/".join(output)


def _uri_text(uri: _Uri, part: str) -> str:
    default_port = _DEFAULT_PORTS.get(uri.scheme, -1)
    shown_port = f":{uri.port}" if uri.explicit_port and uri.port != default_port else ""
    server = uri.host + shown_port
    user = uri.user_info + "@" if uri.user_info else ""
    separator = "://" if uri.authority else ":"
    if part == "absolutepath":
        return uri.path
    if part == "absoluteuri":
        return f"{uri.scheme}{separator}{user}{server}{uri.path}{uri.query}{uri.fragment}"
    if part == "authority":
        return server
    if part == "dnssafehost":
        return uri.host.strip("[]")
    if part == "fragment":
        return uri.fragment
    if part == "host":
        return uri.host
    if part == "hostandport":
        return uri.host + (f":{uri.port}" if uri.port >= 0 else "")
    if part == "hostnametype":
        return uri.host_type
    if part == "isabsoluteuri":
        return "true"
    if part == "isdefaultport":
        return "true" if uri.port == default_port else "false"
    if part == "isfile":
        return "true" if uri.scheme == "file" else "false"
    if part == "isloopback":
        loopback = uri.host in ("localhost", "[::1]", "") or uri.host.startswith("127.")
        return "true" if loopback and (uri.host or uri.scheme == "file") else "false"
    if part == "isunc":
        return "true" if uri.scheme == "file" and uri.host not in ("", "localhost") else "false"
    if part == "path":
        return urllib.parse.unquote(uri.path)
    if part == "pathandquery":
        return uri.path + uri.query
    if part == "port":
        return str(uri.port)
    if part == "query":
        return uri.query
    if part == "scheme":
        return uri.scheme
    if part == "schemeandserver":
        return f"{uri.scheme}{separator}{server}"
    if part == "userinfo":
        return uri.user_info
    raise KeyError(part)


_URI_PARTS = {
    "absolutepath", "absoluteuri", "authority", "dnssafehost", "fragment", "host",
    "hostandport", "hostnametype", "isabsoluteuri", "isdefaultport", "isfile", "isloopback",
    "isunc", "path", "pathandquery", "port", "query", "scheme", "schemeandserver", "userinfo",
}  # fmt: skip


def _uri_part(value: str | None, args: tuple[str, ...]) -> str | None:
    """``UriPart Part``; what goes wrong is written out, as the deployment server does."""
    if value is None:
        return None
    if not args:
        return "[UriPart error: no argument given]"
    uri = _parse_uri(value)
    if uri is None:
        return value
    part = args[0].lower()
    if part not in _URI_PARTS:
        return f"[UriPart {args[0]} error: argument '{args[0]}' not supported]"
    if isinstance(uri, str):
        if part == "isabsoluteuri":
            return "false"
        return f"[UriPart {args[0]} error: {_RELATIVE_ERROR}]"
    return _uri_text(uri, part)


# --- Markdown --------------------------------------------------------------------------------


class _AutoLink(InlineProcessor):
    """A bare ``http://``, ``https://``, ``ftp://``, ``mailto:`` or ``www.`` link (Markdig's
    AutoLinks): it ends before white space, ``<``, and trailing punctuation."""

    def handleMatch(  # type: ignore[override]  # noqa: N802 - Markdown's name
        self, m: re.Match[str], data: str
    ) -> tuple[Element, int, int]:
        url = m.group(1)
        while url and url[-1] in ".,:;!?\"')]*_~":
            url = url[:-1]
        element = Element("a")
        element.set("href", "http://" + url if url.lower().startswith("www.") else url)
        element.text = url
        return element, m.start(1), m.start(1) + len(url)


class _MarkdigExtras(Extension):
    """What the deployment server's Markdig pipeline adds: autolinks and the emphasis
    extras (``~~del~~``, ``~sub~``, ``^sup^``, ``++ins++``, ``==mark==``)."""

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 - Markdown's name
        link = r"(?:(?<=^)|(?<=[\s*_~(]))((?:https?://|ftp://|mailto:|www\.)[^\s<]+)"
        md.inlinePatterns.register(_AutoLink(link, md), "markdig_autolink", 105)
        extras = [
            (r"(~~)(.+?)~~", "del", "markdig_del", 70),
            (r"(\+\+)(.+?)\+\+", "ins", "markdig_ins", 69),
            (r"(==)(.+?)==", "mark", "markdig_mark", 68),
            (r"(~)([^~\s](?:[^~]*[^~\s])?)~", "sub", "markdig_sub", 67),
            (r"(\^)([^\^\s](?:[^\^]*[^\^\s])?)\^", "sup", "markdig_sup", 66),
        ]
        for pattern, tag, name, priority in extras:
            md.inlinePatterns.register(SimpleTagInlineProcessor(pattern, tag), name, priority)


def _markdown_to_html(value: str | None, args: tuple[str, ...]) -> str | None:
    """Block HTML as Markdig writes it (every block ends with a newline), then one more
    newline, as Octostache adds."""
    if value is None or args:
        return None
    converted = markdown.markdown(
        value.strip(_DOTNET_WHITESPACE), extensions=["tables", "fenced_code", _MarkdigExtras()]
    )
    return converted + "\n\n" if converted else "\n"


# --- the table -------------------------------------------------------------------------------

_FILTERS: dict[str, FilterFunction] = {
    "tolower": _to_lower,
    "toupper": _to_upper,
    "tobase64": _to_base64,
    "frombase64": _from_base64,
    "htmlescape": _escape(lambda t: t.translate(_HTML), r"[&<>\"'/]", 5),
    "uriescape": _escape(_uri_escape, r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]", 11),
    "uridataescape": _escape(_uri_data_escape, r"[^A-Za-z0-9\-._~]", 11),
    "xmlescape": _escape(lambda t: t.translate(_XML), r"[&<>\"']", 5),
    "jsonescape": _escape(lambda t: t.translate(_JSON), r"[\"\r\t\n\\]", 1),
    "yamlsinglequoteescape": _escape(_yaml_single_quote, r"['\r\n]", 2),
    "yamldoublequoteescape": _escape(_yaml_double_quote, _YAML_DOUBLE.pattern, 11),
    "propertieskeyescape": _escape(_properties_key, r"[^\x00-\xfe]|[\\\r\n\t :=]", 11),
    "propertiesvalueescape": _escape(_properties_value, r"[^\x00-\xfe]|[\\\r\n\t ]", 11),
    "markdown": _markdown_to_html,
    "markdowntohtml": _markdown_to_html,
    "nowdate": _now_date(utc=False),
    "nowdateutc": _now_date(utc=True),
    "addseconds": _add_duration(TICKS_PER_SECOND),
    "addminutes": _add_duration(60 * TICKS_PER_SECOND),
    "addhours": _add_duration(3600 * TICKS_PER_SECOND),
    "adddays": _add_duration(_TICKS_PER_DAY),
    "addweeks": _add_duration(_TICKS_PER_DAY, factor=7),
    "addmonths": _add_months,
    "addtimespan": _add_time_span,
    "format": _format,
    "match": _comparison(lambda text, pattern: _dotnet_pattern(pattern).search(text) is not None),
    "replace": _replace,
    "startswith": _comparison(str.startswith),
    "endswith": _comparison(str.endswith),
    "contains": _comparison(lambda text, part: part in text),
    "substring": _substring,
    "truncate": _truncate,
    "trim": _trim,
    "indent": _indent,
    "uripart": _uri_part,
    "versionmajor": _version("major"),
    "versionminor": _version("minor"),
    "versionpatch": _version("patch"),
    "versionrevision": _version("revision"),
    "versionprerelease": _version("prerelease"),
    "versionprereleaseprefix": _version("prereleaseprefix"),
    "versionprereleasecounter": _version("prereleasecounter"),
    "versionmetadata": _version("buildmetadata"),
    "append": _append,
    "prepend": _prepend,
    "md5": _hash("md5"),
    "sha1": _hash("sha1"),
    "sha256": _hash("sha256"),
    "sha384": _hash("sha384"),
    "sha512": _hash("sha512"),
    "null": _null,
}
