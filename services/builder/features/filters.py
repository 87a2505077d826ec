"""Octostache filters: ``#{Name | Filter arg "another arg"}``, chainable, names
case-insensitive. A filter the deployment server has and this one lacks leaves the
expression as written, like an undefined variable.

A filter whose result can grow far beyond its input and arguments (``Replace``, ``Format``
with a precision) is bounded: past MAX_RESULT characters it raises ResultTooLarge, which
the evaluator reports as a spent budget rather than leaving the expression as written."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import html
import json
import re
import urllib.parse
from collections.abc import Callable

import markdown

from shared.versions import try_parse_version

MAX_RESULT = 64 * 1024 * 1024  # characters
MAX_PRECISION = 99  # digits in a standard numeric format ("N2", "D8")


class FilterError(ValueError):
    """The filter is unknown or its arguments do not fit."""


class ResultTooLarge(FilterError):
    """The result would hold more than MAX_RESULT characters."""


FilterFunction = Callable[[str | None, tuple[str, ...]], str | None]


def apply_filter(name: str, value: str | None, args: tuple[str, ...]) -> str | None:
    function = _FILTERS.get(name.lower())
    if function is None:
        raise FilterError(f"unknown filter {name!r}")
    if value is None and name.lower() not in _NO_INPUT:
        return None
    try:
        return function(value, args)
    except ResultTooLarge:
        raise
    except (ValueError, IndexError, re.error) as exc:
        raise FilterError(f"{name}: {exc}") from exc


def _text(function: Callable[[str], str]) -> FilterFunction:
    return lambda value, _: function(value or "")


def _trim(value: str | None, args: tuple[str, ...]) -> str:
    text = value or ""
    side = args[0].lower() if args else ""
    if side == "start":
        return text.lstrip()
    if side == "end":
        return text.rstrip()
    return text.strip()


def _truncate(value: str | None, args: tuple[str, ...]) -> str:
    text, limit = value or "", int(args[0])
    return text if len(text) <= limit else text[:limit] + "..."


def _substring(value: str | None, args: tuple[str, ...]) -> str:
    text = value or ""
    if len(args) == 1:
        return text[: int(args[0])]
    start, length = int(args[0]), int(args[1])
    return text[start : start + length]


def _replace(value: str | None, args: tuple[str, ...]) -> str:
    if not args:
        raise ValueError("Replace needs a pattern")
    # .NET writes group references as $1; Python as \1.
    replacement = re.sub(r"\$(\d+)", r"\\\1", args[1] if len(args) > 1 else "")
    produced = 0

    def expand(match: re.Match[str]) -> str:
        # An empty pattern matches between every two characters: count as pieces are made.
        nonlocal produced
        piece = match.expand(replacement)
        produced += len(piece)
        if produced > MAX_RESULT:
            raise ResultTooLarge(f"Replace would make more than {MAX_RESULT} characters")
        return piece

    return re.sub(args[0], expand, value or "")


def _format(value: str | None, args: tuple[str, ...]) -> str:
    text = value or ""
    if not args:
        return text
    spec = args[0]
    number = _number(text)
    if number is not None:
        match = re.fullmatch(r"([NnFfDdPp])(\d*)", spec)
        if match is not None:
            kind, digits = (
                match.group(1).upper(),
                int(match.group(2) or (0 if match.group(1).upper() == "D" else 2)),
            )
            if digits > MAX_PRECISION:
                raise ValueError(f"a precision above {MAX_PRECISION}")
            if kind == "N":
                return f"{number:,.{digits}f}"
            if kind == "F":
                return f"{number:.{digits}f}"
            if kind == "P":
                return f"{number * 100:,.{digits}f} %"
            return f"{int(number):0{digits}d}"
        if re.fullmatch(r"[0#,.]+", spec):
            decimals = len(spec.split(".", 1)[1]) if "." in spec else 0
            grouped = "," in spec.split(".", 1)[0]
            return f"{number:{',' if grouped else ''}.{decimals}f}"
    moment = _date(text)
    if moment is not None:
        return _dotnet_date(moment, spec)
    return text


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None


_DATE_TOKENS = [
    ("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"),
    ("dddd", "%A"), ("ddd", "%a"), ("dd", "%d"), ("HH", "%H"), ("hh", "%I"), ("mm", "%M"),
    ("ss", "%S"), ("tt", "%p"), ("fff", "%f"), ("zzz", "%z"),
]  # fmt: skip


def _dotnet_date(moment: dt.datetime, spec: str) -> str:
    """The common .NET custom date format tokens."""
    out, position = [], 0
    while position < len(spec):
        for token, directive in _DATE_TOKENS:
            if spec.startswith(token, position):
                rendered = moment.strftime(directive)
                out.append(rendered[:3] if token == "fff" else rendered)
                position += len(token)
                break
        else:
            out.append(spec[position])
            position += 1
    return "".join(out)


def _now(utc: bool) -> FilterFunction:
    def now(value: str | None, args: tuple[str, ...]) -> str:
        moment = dt.datetime.now(dt.UTC) if utc else dt.datetime.now().astimezone()
        return _dotnet_date(moment, args[0]) if args else moment.isoformat()

    return now


def _markdown_to_html(text: str) -> str:
    """Like the deployment server's (Markdig): block HTML, ending with a newline."""
    converted = markdown.markdown(text)
    return converted if not converted or converted.endswith("\n") else converted + "\n"


def _yaml_double_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")


def _properties_key(text: str) -> str:
    return re.sub(r"([\\ :=#!])", r"\\\1", text).replace("\n", "\\n")


def _properties_value(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
    return "\\" + escaped if escaped.startswith(" ") else escaped


def _from_base64(value: str | None, args: tuple[str, ...]) -> str:
    try:
        return base64.b64decode(value or "", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not base64 text") from exc


def _predicate(test: Callable[[str, str], bool]) -> FilterFunction:
    def predicate(value: str | None, args: tuple[str, ...]) -> str:
        if not args:
            raise ValueError("an argument is needed")
        return "true" if test(value or "", args[0]) else "false"

    return predicate


def _uri_part(value: str | None, args: tuple[str, ...]) -> str:
    parts = urllib.parse.urlsplit(value or "")
    part = (args[0] if args else "").lower()
    mapping = {
        "scheme": parts.scheme,
        "host": parts.hostname or "",
        "hostandport": parts.netloc.rsplit("@", 1)[-1],
        "port": str(parts.port or {"http": "80", "https": "443"}.get(parts.scheme, "")),
        "path": parts.path,
        "absolutepath": parts.path,
        "query": f"?{parts.query}" if parts.query else "",
        "fragment": f"#{parts.fragment}" if parts.fragment else "",
        "userinfo": parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "",
        "authority": parts.netloc,
    }
    if part not in mapping:
        raise ValueError(f"unknown URI part {part!r}")
    return mapping[part]


def _version(part: str) -> FilterFunction:
    def version(value: str | None, args: tuple[str, ...]) -> str:
        parsed = try_parse_version(value or "")
        if parsed is None:
            raise ValueError("not a version")
        prefix, _, counter = parsed.prerelease.partition(".")
        if not counter:
            prefix, _, counter = parsed.prerelease.partition("-")
        return {
            "major": str(parsed.major),
            "minor": str(parsed.minor),
            "patch": str(parsed.patch),
            "revision": str(parsed.revision),
            "prerelease": parsed.prerelease,
            "prereleaseprefix": prefix,
            "prereleasecounter": counter,
            "metadata": parsed.metadata,
        }[part]

    return version


_FILTERS: dict[str, FilterFunction] = {
    "tolower": _text(str.lower),
    "toupper": _text(str.upper),
    "trim": _trim,
    "truncate": _truncate,
    "substring": _substring,
    "replace": _replace,
    "format": _format,
    "htmlescape": _text(lambda t: html.escape(t, quote=True)),
    "markdowntohtml": _text(_markdown_to_html),
    "xmlescape": _text(
        lambda t: (
            t.replace("&", "&amp;")
            .replace("<", "&lt;")
            .replace(">", "&gt;")
            .replace('"', "&quot;")
            .replace("'", "&apos;")
        )
    ),
    "jsonescape": _text(lambda t: json.dumps(t)[1:-1]),
    "yamlsinglequoteescape": _text(lambda t: t.replace("'", "''")),
    "yamldoublequoteescape": _text(_yaml_double_quote),
    "propertieskeyescape": _text(_properties_key),
    "propertiesvalueescape": _text(_properties_value),
    "uriescape": _text(lambda t: urllib.parse.quote(t, safe=":/?#[]@!$&'()*+,;=-._~%")),
    "uridataescape": _text(lambda t: urllib.parse.quote(t, safe="-._~")),
    "tobase64": _text(lambda t: base64.b64encode(t.encode()).decode()),
    "frombase64": _from_base64,
    "nowdate": _now(utc=False),
    "nowdateutc": _now(utc=True),
    "startswith": _predicate(str.startswith),
    "endswith": _predicate(str.endswith),
    "contains": _predicate(lambda text, part: part in text),
    "match": _predicate(lambda text, pattern: re.search(pattern, text) is not None),
    "uripart": _uri_part,
    **{
        f"version{part}": _version(part)
        for part in (
            "major",
            "minor",
            "patch",
            "revision",
            "prerelease",
            "prereleaseprefix",
            "prereleasecounter",
            "metadata",
        )
    },
}
_NO_INPUT = {"nowdate", "nowdateutc"}
