"""Reading JSON as leniently as the server's JSON reader does.

The server parses a file with the permissive reader of its JSON library, and so accepts more
than RFC 8259: ``//`` and ``/* */`` comments (dropped), single-quoted strings, unquoted
property names (letters, digits, ``_`` and ``$``), a trailing comma in an object or array, an
empty array element (``[1,,2]`` holds an *undefined* value), the literals ``NaN``,
``Infinity``, ``-Infinity`` and ``undefined``, hexadecimal (``0x1F``) and octal (``017``)
integers, raw control characters inside strings and any Unicode white space between tokens.
A string shaped like an ISO 8601 date and time (``2024-05-01T10:00:00Z``) or a Microsoft
JSON date (``/Date(1714557600000)/``) is read as a date, and so written back in the
library's own date format (see ``json_dates``).

One quirk is kept because the server has it: a document that *starts* with a comment is
read as that comment alone, and the rest of the file (which must still be well formed) is
discarded.

Parsing is iterative, and refuses nesting deeper than the server's reader allows.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from services.builder.features.structured.common import MAX_JSON_DEPTH, NotThisFormat
from services.builder.features.structured.json_dates import parse_date


class JsonFloat(float):
    """A number the file wrote as a double (``1.0``), so written back as one."""


class JsonUndefined:
    """The *undefined* value (the literal ``undefined``, or an empty array element)."""

    _instance: JsonUndefined | None = None

    def __new__(cls) -> JsonUndefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance


UNDEFINED = JsonUndefined()


@dataclass(frozen=True, slots=True)
class JsonBigInteger:
    """An integer beyond 64 bits, kept as the digits the server writes for it."""

    text: str


@dataclass(frozen=True, slots=True)
class JsonComment:
    """A comment read as the whole document (the file started with it)."""

    text: str


_SEPARATORS = frozenset("}],")
_NUMBER_CHARS = frozenset("0123456789+-.eExXabcdfABCDF")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "\\": "\\", '"': '"',
            "'": "'", "/": "/"}  # fmt: skip
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_INT64 = re.compile(r"-?[0-9]+\Z")


def _integer(token: str) -> int | JsonBigInteger:
    negative = token.startswith("-")
    digits = token.lstrip("-").lstrip("0") or "0"
    if len(digits) <= 19 and -(2**63) <= int(token) < 2**63:
        return int(token)
    return JsonBigInteger(("-" if negative else "") + digits)


def _within_depth(document: Any, text: str) -> Any:
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise _Reader(text).fail(f"nested deeper than {MAX_JSON_DEPTH} levels", 0)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return document


def _with_dates(document: Any) -> Any:
    """``document`` with the strings the server's reader reads as dates made dates."""
    if isinstance(document, str):
        date = parse_date(document)
        return document if date is None else date
    stack = [document] if isinstance(document, (dict, list)) else []
    while stack:
        node = stack.pop()
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in list(items):
            if isinstance(child, str):
                date = parse_date(child)
                if date is not None:
                    node[key] = date
            elif isinstance(child, (dict, list)):
                stack.append(child)
    return document


def is_json_space(char: str) -> bool:
    """White space as .NET's ``char.IsWhiteSpace`` sees it."""
    return char in "\t\n\v\f\r \x85\xa0" or unicodedata.category(char) in ("Zs", "Zl", "Zp")


def _identifier_char(char: str) -> bool:
    # .NET's char.IsLetterOrDigit works on UTF-16 units: a character beyond the BMP is
    # two surrogates, neither a letter.
    return char in "_$" or (
        ord(char) <= 0xFFFF and unicodedata.category(char) in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nd")
    )


def parse_json(text: str) -> Any:
    """The document ``text`` holds, as the server's reader reads it: objects as dicts,
    arrays as lists, integers as ints (``JsonBigInteger`` beyond 64 bits), doubles as
    ``JsonFloat``, dates as ``JsonDate``, *undefined* as ``UNDEFINED``, a leading comment
    as ``JsonComment``."""
    try:
        # Strict JSON reads the same either way, and the standard parser is much faster.
        document = json.loads(
            text, parse_float=JsonFloat, parse_int=_integer, parse_constant=JsonFloat
        )
    except (ValueError, RecursionError):
        return _lenient(text)
    return _with_dates(_within_depth(document, text))


def _lenient(text: str) -> Any:
    reader = _Reader(text)
    position = reader.skip_space(0)
    if text.startswith(("//", "/*"), position):
        comment, position = reader.comment(position)
        reader.value(position, allow_nothing=True)  # the rest is read, and must be well formed
        return JsonComment(comment)
    return reader.value(position, allow_nothing=False)


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.length = len(text)

    def fail(self, message: str, position: int) -> NotThisFormat:
        """The problem and where: never the file's text, which an earlier feature may have
        written a secret into."""
        line = self.text.count("\n", 0, position) + 1
        column = position - (self.text.rfind("\n", 0, position) + 1) + 1
        return NotThisFormat(f"{message} (line {line}, position {column})")

    def skip_space(self, position: int) -> int:
        text, length = self.text, self.length
        while position < length and (text[position] == "\0" or is_json_space(text[position])):
            position += 1
        return position

    def skip_space_and_comments(self, position: int) -> int:
        while True:
            position = self.skip_space(position)
            if not self.text.startswith(("//", "/*"), position):
                return position
            _, position = self.comment(position)

    def comment(self, position: int) -> tuple[str, int]:
        text = self.text
        if text.startswith("/*", position):
            end = text.find("*/", position + 2)
            if end < 0:
                raise self.fail("an unterminated comment", position)
            return text[position + 2 : end], end + 2
        end = position + 2
        while end < self.length and text[end] not in "\r\n":
            end += 1
        return text[position + 2 : end], end

    def value(self, position: int, *, allow_nothing: bool) -> Any:
        """The one value from ``position``, with nothing but comments after it."""
        # Each open container: [container, pending key (objects), expecting a value].
        stack: list[list[Any]] = []
        root: Any = None
        have_root = False
        text, length = self.text, self.length
        while True:
            position = self.skip_space_and_comments(position)
            if not stack and have_root:
                if position < length:
                    raise self.fail("more text after the JSON content", position)
                return root
            if position >= length:
                if not stack and allow_nothing:
                    return None
                raise self.fail("the JSON ends early", position)
            char = text[position]
            item: Any
            top = stack[-1] if stack else None
            if top is not None and isinstance(top[0], dict) and top[1] is None:
                # Expecting a property name, a closing brace, or a comma after a value.
                if char == "}":
                    position += 1
                    stack.pop()
                    item = top[0]
                elif char == "," and top[2]:
                    top[2] = False
                    position += 1
                    continue
                elif top[2]:
                    raise self.fail("a character after a value in an object", position)
                else:
                    top[1], position = self.property_name(position)
                    continue
            elif top is not None and isinstance(top[0], list) and top[2]:
                # After an array element: a comma or the closing bracket.
                if char == "]":
                    position += 1
                    stack.pop()
                    item = top[0]
                elif char == ",":
                    top[2] = False
                    position += 1
                    continue
                else:
                    raise self.fail("a character after a value in an array", position)
            elif char in "{[":
                if len(stack) >= MAX_JSON_DEPTH:
                    raise self.fail(f"nested deeper than {MAX_JSON_DEPTH} levels", position)
                stack.append([{} if char == "{" else [], None, False])
                position += 1
                continue
            elif char == "]" and top is not None and isinstance(top[0], list):
                position += 1  # an empty array, or a trailing comma
                stack.pop()
                item = top[0]
            elif char == "," and top is not None and isinstance(top[0], list):
                item = UNDEFINED  # an empty element; the comma is read next
            else:
                item, position = self.scalar(position)
            if not stack:
                root, have_root = item, True
                continue
            parent = stack[-1]
            if isinstance(parent[0], dict):
                parent[0][parent[1]] = item  # a repeated name keeps its place, takes the value
                parent[1] = None
            else:
                parent[0].append(item)
            parent[2] = True

    def property_name(self, position: int) -> tuple[str, int]:
        text = self.text
        char = text[position]
        if char in "\"'":
            name, position = self.string(position)
        elif _identifier_char(char):
            end = position
            while end < self.length and _identifier_char(text[end]):
                end += 1
            if end < self.length and not (text[end] == ":" or is_json_space(text[end])):
                raise self.fail("a character not allowed in an unquoted property name", end)
            name, position = text[position:end], end
        else:
            raise self.fail("a character where a property name was expected", position)
        while position < self.length and is_json_space(text[position]):
            position += 1
        if position >= self.length or text[position] != ":":
            raise self.fail("a property name without ':' after it", position)
        return name, position + 1

    def scalar(self, position: int) -> tuple[Any, int]:
        text = self.text
        char = text[position]
        if char in "\"'":
            value, position = self.string(position)
            date = parse_date(value)
            return (value if date is None else date), position
        for word, result in (
            ("true", True),
            ("false", False),
            ("null", None),
            ("undefined", UNDEFINED),
            ("NaN", JsonFloat("nan")),
            ("Infinity", JsonFloat("inf")),
            ("-Infinity", JsonFloat("-inf")),
        ):
            if text.startswith(word, position):
                end = position + len(word)
                if end < self.length and not self.separates(end):
                    raise self.fail(f"unexpected text after {word}", end)
                return result, end
        if char.isdigit() or char in "-.":
            end = position
            while end < self.length and text[end] in _NUMBER_CHARS:
                end += 1
            return self.number(text[position:end], position), end
        raise self.fail("an unexpected character", position)

    def separates(self, position: int) -> bool:
        char = self.text[position]
        return (
            char in _SEPARATORS
            or is_json_space(char)
            or self.text.startswith(("//", "/*"), position)
        )

    def number(self, token: str, position: int) -> int | float | JsonBigInteger:
        lowered = token.lower()
        if len(token) > 1 and token[0] == "0" and token[1] not in ".eE":
            # A leading zero makes an octal integer, 0x a hexadecimal one, both read as a
            # 64-bit two's complement value.
            digits, base = (token[2:], 16) if lowered.startswith("0x") else (token, 8)
            try:
                value = int(digits, base) if re.fullmatch(r"[0-9a-fA-F]+", digits) else -1
            except ValueError:
                value = -1
            if not 0 <= value < 2**64:
                raise self.fail("an integer out of range", position)
            return value - 2**64 if value >= 2**63 else value
        if _INT64.match(token):
            return _integer(token)
        if re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", token):
            return JsonFloat(token)
        raise self.fail("a number that does not parse", position)

    def string(self, position: int) -> tuple[str, int]:
        text, quote = self.text, self.text[position]
        parts: list[str] = []
        start = position = position + 1
        while True:
            end = text.find(quote, position)
            slash = text.find("\\", position, end if end >= 0 else self.length)
            if slash < 0:
                if end < 0:
                    raise self.fail("an unterminated string", start - 1)
                parts.append(text[position:end])
                value = "".join(parts)
                if _SURROGATE.search(value):
                    value = _join_surrogates(value)
                return value, end + 1
            parts.append(text[position:slash])
            if slash + 1 >= self.length:
                raise self.fail("an unterminated string", start - 1)
            escape = text[slash + 1]
            if escape == "u":
                digits = text[slash + 2 : slash + 6]
                if not _HEX4.fullmatch(digits):
                    raise self.fail("a bad \\u escape", slash)
                parts.append(chr(int(digits, 16)))
                position = slash + 6
            elif escape in _ESCAPES:
                parts.append(_ESCAPES[escape])
                position = slash + 2
            else:
                raise self.fail("an unknown escape", slash)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _join_surrogates(text: str) -> str:
    """Pairs of surrogates from ``\\u`` escapes as the characters they encode."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
