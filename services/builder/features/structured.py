"""Structured Configuration Variables: replace values in JSON, YAML, XML and Java
``.properties`` files by variable name, writing the same bytes the deployment server writes.

Which formats a file is tried as: JSON always first; then the one its extension names
(``.xml``, ``.yml``/``.yaml``, ``.properties``; a ``.json`` file is JSON only); a file with
any other extension is tried as XML, YAML, then properties, and the first format that
parses it wins. Whatever matched, the file is written back in its format's canonical layout,
as the server does: replacing nothing still reformats it.

- JSON: the name is the path of keys from the root joined by ``:``, array elements by
  zero-based index (``Logging:LogLevel:Default``, ``Servers:0:Url``), compared
  case-insensitively; only existing paths are replaced. A number stays a number when the
  value is an integer or a double, a boolean when it is ``true``/``false``; an object or
  array is replaced by the value parsed as JSON (left alone when it does not parse); other
  values become strings. Names starting ``Octopus`` are skipped, ``Octopus:...`` paths not.
  Written indented by two spaces, in the file's most common line ending, with no final one.
- YAML: the same paths, over the document's parse events, so comments, anchors, tags,
  quoting, flow and block styles and every document of a stream are written back; a mapping
  or sequence is replaced by the value parsed as YAML (a double-quoted string when it does
  not parse). Indented by the file's most common indentation.
- XML: names holding ``/`` or ``:`` are XPath expressions; every node they select takes the
  value (an element with child elements as an XML fragment, one holding only CDATA keeps
  it). Re-indented by two spaces; the declaration names the encoding written.
- ``.properties``: the logical key (escapes and continuation lines resolved) equals the name,
  case-insensitively; the value is escaped (``\\\\``, ``\\t``, ``\\n``, ``\\uXXXX`` beyond
  Latin-1, a leading space); a key alone gets a ``:``. Names starting ``Octopus`` are skipped.

Files are read in their encoding (a BOM's, else UTF-8, else windows-1252; for XML the
declared one first) and written back in it, falling back to UTF-8 when a value does not fit.
What the values add is counted as they are written: past ``max_growth`` the file is refused.
"""

from __future__ import annotations

import codecs
import io
import itertools
import json
import math
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import yaml
from lxml import etree
from yaml.emitter import Emitter, ScalarAnalysis
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

Lookup = Callable[[str], "str | None"]

MAX_GROWTH = 64 * 1024 * 1024
MAX_JSON_DEPTH = 64  # the depth the server's JSON reader refuses beyond
MAX_YAML_EVENTS = 2_000_000


class StructuredError(ValueError):
    """The file could not be read in any of the formats it was tried as."""


class StructuredGrowthError(StructuredError):
    """The values would add more than the allowance to the file."""


class _NotThisFormat(Exception):
    """The file does not parse as the format tried."""


@dataclass(frozen=True, slots=True)
class Replacement:
    path: str
    format: str


def replace_structured(
    filename: str,
    content: bytes,
    names: Iterable[str],
    lookup: Lookup,
    *,
    max_growth: int = MAX_GROWTH,
) -> tuple[bytes, list[Replacement]]:
    """The file as the server writes it back with its values replaced, and what was
    replaced. ``lookup`` gives a name's value (None for a variable without one)."""
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(_fold(name), name)
    context = _Context(list(unique.values()), lookup, len(content) + max_growth, max_growth)
    attempts = _formats_for(filename)
    for position, format_name in enumerate(attempts):
        try:
            return _REPLACERS[format_name](content, context)
        except _NotThisFormat as exc:
            if position == len(attempts) - 1:
                raise StructuredError(
                    f"{filename} could not be parsed as {format_name}: {exc}"
                ) from exc
            context.reset()
    raise AssertionError("unreachable")


def _formats_for(filename: str) -> list[str]:
    lowered = PurePosixPath(filename).name.lower()
    if lowered.endswith(".json"):
        return ["json"]
    for format_name, suffixes in (
        ("xml", (".xml",)),
        ("yaml", (".yml", ".yaml")),
        ("properties", (".properties",)),
    ):
        if lowered.endswith(suffixes):
            return ["json", format_name]
    return ["json", "xml", "yaml", "properties"]


@dataclass(slots=True)
class _Context:
    names: list[str]
    lookup: Lookup
    allowance: int
    max_growth: int
    produced: int = 0
    replaced: list[Replacement] = field(default_factory=list)

    def reset(self) -> None:
        self.produced = 0
        self.replaced = []

    def value(self, name: str, path: str, format_name: str) -> str | None:
        """The value of ``name`` replacing ``path``, charged against the allowance."""
        return self.take(self.lookup(name), path, format_name)

    def take(self, value: str | None, path: str, format_name: str) -> str | None:
        """``value`` replacing ``path``, charged against the allowance."""
        self.produced += len(value or "")
        if self.produced > self.allowance:
            raise StructuredGrowthError(
                f"the values would add more than {self.max_growth} characters to the file "
                "(a large value in many places?)"
            )
        self.replaced.append(Replacement(path, format_name))
        return value


def _fold(text: str) -> str:
    """Case-insensitive ordinal comparison, character by character."""
    return "".join(c if len(c.upper()) != 1 else c.upper() for c in text)


def _skips_octopus(name: str) -> bool:
    return name.lower().startswith("octopus") and not name.lower().startswith("octopus:")


def _line_break(text: str) -> str:
    """The file's most common line ending; CRLF when it has none (as the server decides)."""
    dos = text.count("\r\n")
    unix = text.count("\n") - dos
    if unix > dos:
        return "\n"
    if unix == dos and unix and text.index("\n") != text.find("\r\n") + 1:
        return "\n"  # a tie goes to the ending met first
    return "\r\n"


# --- encodings -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextEncoding:
    """How a file was read, and so how it is written back."""

    codec: str
    bom: bytes = b""
    web_name: str = "utf-8"


UTF8 = TextEncoding("utf-8")
_BOMS = (
    (codecs.BOM_UTF8, TextEncoding("utf-8", codecs.BOM_UTF8)),
    (codecs.BOM_UTF32_LE, TextEncoding("utf-32-le", codecs.BOM_UTF32_LE, "utf-32")),
    (codecs.BOM_UTF32_BE, TextEncoding("utf-32-be", codecs.BOM_UTF32_BE, "utf-32BE")),
    (codecs.BOM_UTF16_LE, TextEncoding("utf-16-le", codecs.BOM_UTF16_LE, "utf-16")),
    (codecs.BOM_UTF16_BE, TextEncoding("utf-16-be", codecs.BOM_UTF16_BE, "utf-16BE")),
)
WINDOWS_1252 = TextEncoding("windows-1252", b"", "Windows-1252")
# The five bytes windows-1252 leaves undefined read and write as the same code points.
_CP1252_UNDEFINED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def decode_text(content: bytes, declared: TextEncoding | None = None) -> tuple[str, TextEncoding]:
    """The text of a file and its encoding: a byte order mark decides; else ``declared``,
    UTF-8 and windows-1252 are tried in turn (the last reads any bytes)."""
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom) :].decode(encoding.codec, errors="replace"), encoding
    for candidate in (declared, UTF8):
        if candidate is not None:
            try:
                return content.decode(candidate.codec), candidate
            except (UnicodeDecodeError, LookupError):
                continue
    text = "".join(
        chr(byte) if byte in _CP1252_UNDEFINED else bytes([byte]).decode("windows-1252")
        for byte in content
    )
    return text, WINDOWS_1252


def encode_text(text: str, encoding: TextEncoding) -> tuple[bytes, TextEncoding]:
    """``text`` in ``encoding`` with its BOM, or in UTF-8 (no BOM) when it does not fit."""
    try:
        if encoding.codec == "windows-1252":
            return _encode_cp1252(text), encoding
        return encoding.bom + text.encode(encoding.codec), encoding
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8"), UTF8
    except UnicodeEncodeError as exc:  # a lone surrogate from an escape in the file
        raise StructuredError(f"the result cannot be written as text: {exc.reason}") from exc


def _encode_cp1252(text: str) -> bytes:
    out = bytearray()
    for char in text:
        if ord(char) in _CP1252_UNDEFINED:
            out.append(ord(char))
        else:
            out += char.encode("windows-1252")
    return bytes(out)


# --- JSON ----------------------------------------------------------------------------------


class _JsonFloat(float):
    """A number the file wrote as a double (``1.0``), so written back as one."""


@dataclass(slots=True)
class _JsonSlot:
    """Where a value sits: its container and key, and the containers above it (to tell
    whether a replacement of an ancestor has detached it)."""

    chain: list[tuple[Any, Any]]
    kind: str  # object, array, integer, float, boolean, other


def _replace_json(content: bytes, context: _Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content)
    root: Any = {} if not text else _parse_json(text)
    line_break = _line_break(text) if text else "\r\n"
    encoding = encoding if text else UTF8
    slots: dict[str, _JsonSlot] = {}
    _map_json(root, [], "", slots)
    replaced_slots: set[tuple[int, Any]] = set()
    for name in context.names:
        slot = slots.get(_fold(name))
        if slot is None or _skips_octopus(name):
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


def _parse_json(text: str) -> Any:
    try:
        document = json.loads(
            text, parse_float=_JsonFloat, parse_constant=lambda name: _JsonFloat(name)
        )
    except (ValueError, RecursionError) as exc:
        raise _NotThisFormat(str(exc)) from exc
    if _json_depth(document) > MAX_JSON_DEPTH:
        raise _NotThisFormat(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return document


def _json_depth(document: Any) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _map_json(
    node: Any, chain: list[tuple[Any, Any]], path: str, slots: dict[str, _JsonSlot]
) -> None:
    items: Iterable[tuple[Any, Any]]
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return
    for key, child in items:
        child_path = f"{path}:{key}" if path else str(key)
        child_chain = [*chain, (node, key)]
        slots[_fold(child_path)] = _JsonSlot(child_chain, _json_kind(child))
        _map_json(child, child_chain, child_path, slots)


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, _JsonFloat):
        return "float"
    if isinstance(value, int):
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
            return _parse_json(value)
        except _NotThisFormat:
            return _UNCHANGED
    if value is None:
        return None
    if kind in ("integer", "float"):
        if _LONG.match(value) and -(2**63) <= int(value) < 2**63:
            return int(value)
        number = _parse_double(value)
        return value if number is None else _JsonFloat(number)
    if kind == "boolean":
        lowered = value.strip(" \t\n\v\f\r\0").lower()
        return {"true": True, "false": False}.get(lowered, value)
    return value


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
    if isinstance(value, _JsonFloat):
        return _dotnet_double(float(value))
    if isinstance(value, int):
        return str(value)
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


def _dotnet_double(number: float) -> str:
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


# --- YAML ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Comment:
    """A comment, as an event between the parse events around it."""

    value: str
    inline: bool
    column: int


_SCANNER: Any = yaml.scanner.Scanner  # PyYAML's methods, untyped


class _CommentScanner(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    """PyYAML's scanner and parser, keeping the comments PyYAML drops: each comment is
    handed out just before the event whose making first looked past it."""

    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        self.comments: deque[tuple[int, _Comment]] = deque()
        self.flushed: list[_Comment] = []

    def scan_to_next_token(self) -> None:
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        found = False
        while not found:
            while self.peek() == " ":
                self.forward()
            if self.peek() == "#":
                start = self.get_mark()
                length = 0
                while self.peek(length) not in "\0\r\n\x85\u2028\u2029":
                    length += 1
                raw = self.prefix(length)
                self.forward(length)
                before = self.buffer[start.pointer - start.column : start.pointer]
                body = raw[1:]
                stripped = body.lstrip(" \t")
                lead = len(body) - len(stripped)
                value = " " * (lead - 1) + stripped if lead > 1 else stripped
                self.comments.append(
                    (start.index, _Comment(value, bool(before.strip(" \t")), start.column))
                )
            if _SCANNER.scan_line_break(self):
                if not self.flow_level:
                    self.allow_simple_key = True
            else:
                found = True

    def _flush(self) -> None:
        if self.tokens:
            index = self.tokens[0].start_mark.index
            while self.comments and self.comments[0][0] < index:
                self.flushed.append(self.comments.popleft()[1])

    def check_token(self, *choices: Any) -> bool:
        result = bool(_SCANNER.check_token(self, *choices))
        self._flush()
        return result

    def peek_token(self) -> Any:
        token = _SCANNER.peek_token(self)
        self._flush()
        return token

    def get_token(self) -> Any:
        while self.need_more_tokens():
            self.fetch_more_tokens()
        self._flush()
        return _SCANNER.get_token(self)

    def events(self) -> Iterator[Event | _Comment]:
        count = 0
        while self.state is not None:
            event = self.state()
            if isinstance(event, (StreamStartEvent, DocumentStartEvent)):
                yield event  # the server's parser hands these out before pending comments
                yield from self.flushed
                count += len(self.flushed) + 1
                self.flushed = []
                continue
            yield from self.flushed
            count += len(self.flushed) + 1
            self.flushed = []
            yield event
            if count > MAX_YAML_EVENTS:
                raise _NotThisFormat(f"more than {MAX_YAML_EVENTS} parse events")
        while self.comments:
            yield self.comments.popleft()[1]


def _yaml_events(text: str) -> list[Event | _Comment]:
    try:
        return list(_CommentScanner(text).events())
    except yaml.YAMLError as exc:
        raise _NotThisFormat(str(exc)) from exc


def _fragment_events(value: str) -> list[Event]:
    """The parse events of a value, without stream and document events."""
    loader: Any = yaml.SafeLoader(value)
    try:
        events = []
        while loader.check_event():
            event = loader.get_event()
            if not isinstance(
                event, (StreamStartEvent, StreamEndEvent, DocumentStartEvent, DocumentEndEvent)
            ):
                events.append(event)
            if len(events) > MAX_YAML_EVENTS:
                raise _NotThisFormat("the value is too large")
        return events
    finally:
        loader.dispose()


class _PathStack:
    """Where the events are, as the server tracks it: mapping keys and sequence indexes."""

    def __init__(self) -> None:
        self.frames: list[list[Any]] = []  # [is_sequence, key or None, index]

    def path(self) -> str:
        parts = []
        for is_sequence, key, index in self.frames:
            if key is not None:
                parts.append(key)
            elif is_sequence and index != -1:
                parts.append(str(index))
        return ":".join(parts)

    def classify(self, event: Event | _Comment) -> tuple[str, str]:
        top = self.frames[-1] if self.frames else None
        if (
            top is not None
            and top[0]
            and isinstance(event, (MappingStartEvent, SequenceStartEvent, ScalarEvent))
        ):
            top[2] += 1
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            kind = "mapping" if isinstance(event, MappingStartEvent) else "sequence"
            path = self.path()
            self.frames.append([kind == "sequence", None, -1])
            return kind, path
        if isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            self.frames.pop()
            path = self.path()
            self._key_end()
            return ("mapping_end" if isinstance(event, MappingEndEvent) else "sequence_end"), path
        if isinstance(event, ScalarEvent):
            if top is not None and not top[0] and top[1] is None:
                top[1] = event.value  # a mapping key
                return "other", self.path()
            path = self.path()
            self._key_end()
            return "scalar", path
        if isinstance(event, _Comment):
            return "comment", self.path()
        return "other", self.path()

    def _key_end(self) -> None:
        if self.frames:
            self.frames[-1][1] = None


class _IndentDetector:
    """The most common step between the columns of nested block collections."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.last = 0

    def process(self, event: Event | _Comment) -> None:
        if isinstance(event, _Comment):
            column = event.column
        else:
            column = event.start_mark.column if event.start_mark is not None else 0
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            if not event.flow_style:
                step = column - self.last
                if 2 <= step <= 9:
                    self.steps.append(step)
                self.last = column
        elif not isinstance(event, (StreamStartEvent, DocumentStartEvent)) and column < self.last:
            self.last = column

    def indent(self) -> int:
        if not self.steps:
            return 2
        return max(dict.fromkeys(self.steps), key=self.steps.count)


_OCTOPUS_RESERVED = re.compile(r"^Octopus([^:]|$)", re.IGNORECASE)


def _replace_yaml(content: bytes, context: _Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content)
    events = _yaml_events(text)
    names: dict[str, tuple[str, str | None]] = {
        _fold(name): (name, None)
        for name in reversed(context.names)
        if not _OCTOPUS_RESERVED.match(name)
    }
    wanted = names
    at_document_start = False
    paths = _PathStack()
    detector = _IndentDetector()
    output: list[Event | _Comment] = []
    held: tuple[str, str, Event | _Comment, str | None] | None = None

    def value_of(path: str) -> tuple[bool, str | None]:
        entry = wanted.get(_fold(path))
        if entry is None:
            return False, None
        name, patched = entry
        if patched is not None:
            return True, context.take(patched, path, "yaml")
        return True, context.value(name, path, "yaml")

    for event in events:
        if isinstance(event, _Comment) and at_document_start:
            patch = _patch_name(event.value)
            if patch:
                wanted = {**names, **_patch_values(context.lookup(patch))}
        at_document_start = isinstance(event, DocumentStartEvent)
        if isinstance(event, DocumentEndEvent):
            wanted = names
        detector.process(event)
        kind, path = paths.classify(event)
        if held is None:
            if kind == "scalar":
                found, value = value_of(path)
                output.append(_replaced_scalar(event, value) if found else event)  # type: ignore[arg-type]
            elif kind in ("mapping", "sequence"):
                found, value = value_of(path)
                if found:
                    held = (kind, path, event, value)
                else:
                    output.append(event)
            elif kind == "comment":
                held = ("comment", path, event, None)
            else:
                output.append(event)
            continue
        held_kind, held_path, held_event, held_value = held
        if kind == f"{held_kind}_end" and held_path == path:
            assert isinstance(held_event, CollectionStartEvent)
            output.extend(_replacement_events(held_value, held_event.anchor, held_event.tag))
            held = None
        elif held_kind == "comment" and kind in ("mapping", "sequence"):
            output += [event, held_event]  # the server puts a comment after the start it precedes
            held = None
        elif held_kind == "comment":
            output += [held_event, event]
            held = None
    if held is not None and held[0] == "comment":
        output.append(held[2])
    stream = io.StringIO()
    emitter = _ServerEmitter(stream, detector.indent(), _line_break(text))
    try:
        for event in output:
            emitter.emit(event)
    except yaml.YAMLError as exc:
        raise StructuredError(f"the replaced document cannot be written as YAML: {exc}") from exc
    data, _ = encode_text(stream.getvalue(), encoding)
    return data, context.replaced


def _patch_name(comment: str) -> str:
    """The variable a ``# patch: Name`` comment opening a document names."""
    return comment.replace("patch:", "").strip() if comment.lstrip().startswith("patch:") else ""


def _patch_values(patch: str | None) -> dict[str, tuple[str, str | None]]:
    """A patch variable's YAML as values by path (every leaf a string, null an empty one)."""
    if not patch:
        return {}
    try:
        document = yaml.load(patch, Loader=yaml.BaseLoader)  # every scalar a string
    except yaml.YAMLError as exc:
        raise _NotThisFormat(f"a patch variable is not YAML: {exc}") from exc
    found: dict[str, tuple[str, str | None]] = {}
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((f"{path}:{k}" if path else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}:{i}" if path else str(i), v) for i, v in enumerate(node))
        elif path:
            value = "" if node is None or node in ("", "~", "null", "Null", "NULL") else str(node)
            found[_fold(path)] = (path, value)
    return found


def _replaced_scalar(event: ScalarEvent, value: str | None) -> ScalarEvent:
    if value is None:
        return ScalarEvent(event.anchor, "!!null", (True, False), "null", event.start_mark,
                           event.end_mark, style=None)  # fmt: skip
    return ScalarEvent(event.anchor, event.tag, event.implicit, value, event.start_mark,
                       event.end_mark, style=event.style)  # fmt: skip


def _replacement_events(value: str | None, anchor: str | None, tag: str | None) -> list[Event]:
    """A mapping's or sequence's replacement: the value's own events when it parses as
    YAML with content, else the value as a double-quoted string (``null`` for none)."""
    if value is not None:
        try:
            events = _fragment_events(value)
        except (yaml.YAMLError, _NotThisFormat):
            events = []
        if events:
            return events
        return [ScalarEvent(anchor, tag, (True, True), value, style='"')]
    return [ScalarEvent(anchor, tag, (True, False), "null", style=None)]


_DEFAULT_TAGS = {"!": "!", "!!": "tag:yaml.org,2002:"}


def _is_printable(char: str) -> bool:
    code = ord(char)
    return (
        code in (0x9, 0xA, 0xD, 0x85)
        or 0x20 <= code <= 0x7E
        or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
    )  # beyond the BMP the server sees two surrogates, neither printable


_BREAKS = "\r\n\x85\u2028\u2029"


class _Analysis(ScalarAnalysis):
    """PyYAML's analysis of a scalar, and whether it holds a single quote."""

    def __init__(self, scalar: str, flags: tuple[bool, ...], has_single_quotes: bool) -> None:
        super().__init__(scalar, *flags)
        self.has_single_quotes = has_single_quotes


class _ServerEmitter(Emitter):
    """PyYAML's emitter made to write what the server's does for the same events: its
    choice of scalar styles and tags, sequences indented after a comment, comments."""

    def __init__(self, stream: io.StringIO, indent: int, line_break: str) -> None:
        # The file's most common line ending, CRLF when it has none, as for JSON and XML.
        super().__init__(stream, indent=indent, width=2**31 - 1, allow_unicode=True,
                         line_break=line_break)  # fmt: skip
        self.document_end_written = False

    def emit(self, event: Event | _Comment) -> None:
        queue: list[Any] = self.events
        queue.append(event)
        while not self.need_more_events():
            current: Any = queue.pop(0)
            self.event = current
            if isinstance(current, _Comment):
                self.write_comment(current)
            else:
                state: Any = self.state
                state()
            self.event = None

    def write_comment(self, comment: _Comment) -> None:
        if self.flow_level or self.state in (
            self.expect_first_flow_mapping_key,
            self.expect_first_flow_sequence_item,
        ):
            return
        lines = re.split(r"\r\n|\r|\n", comment.value)
        if comment.inline:
            self.write_raw(" # " + " ".join(lines))
        else:
            for line in lines:
                self.write_indent()
                self.write_raw("# " + line)
                self.write_line_break()
        self.indention = True

    def write_raw(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data)

    def expect_document_start(self, first: bool = False) -> None:
        event = self.event
        if isinstance(event, DocumentStartEvent):
            custom = {
                handle: prefix
                for handle, prefix in (event.tags or {}).items()
                if _DEFAULT_TAGS.get(handle) != prefix
            }
            implicit = first and not event.explicit
            if not first and not self.document_end_written and (event.version or custom):
                self.write_indicator("...", True)
                self.write_indent()
            if event.version:
                implicit = False
                self.write_indicator("%YAML", True)
                self.write_indicator(f"{event.version[0]}.{event.version[1]}", True)
                self.write_indent()
            self.tag_prefixes = {prefix: handle for handle, prefix in _DEFAULT_TAGS.items()}
            self.tag_prefixes.update({prefix: handle for handle, prefix in custom.items()})
            if custom:
                implicit = False
                for handle, prefix in [*custom.items(), *_DEFAULT_TAGS.items()]:
                    self.write_indicator("%TAG", True)
                    self.write_indicator(handle, True)
                    self.write_indicator(self.prepare_tag_prefix(prefix), True)
                    self.write_indent()
            if self.check_empty_document():
                implicit = False
            if not implicit:
                self.write_indent()
                self.write_indicator("---", True)
            self.document_end_written = False
            self.state = self.expect_document_root
        elif isinstance(event, StreamEndEvent):
            self.write_stream_end()
            self.state = self.expect_nothing
        else:
            raise yaml.emitter.EmitterError(f"expected DocumentStartEvent, but got {event}")

    def expect_document_end(self) -> None:
        if isinstance(self.event, DocumentEndEvent) and self.event.explicit:
            self.document_end_written = True
        super().expect_document_end()

    def check_empty_document(self) -> bool:
        if not isinstance(self.event, DocumentStartEvent) or not self.events:
            return False
        event: Any = self.events[0]
        return isinstance(event, ScalarEvent) and event.value == ""

    def expect_block_mapping_key(self, first: bool = False) -> None:
        if not first and isinstance(self.event, MappingEndEvent):
            super().expect_block_mapping_key(first)
            return
        self.write_indent()
        if self.check_simple_key():
            # The server writes the colon as soon as the key is written, before any
            # comment that comes between the key and its value.
            self.states.append(self.expect_block_mapping_simple_value)
            self.expect_node(mapping=True, simple_key=True)
            self.write_indicator(":", False)
        else:
            self.write_indicator("?", True, indention=True)
            self.states.append(self.expect_block_mapping_value)
            self.expect_node(mapping=True)

    def expect_block_mapping_simple_value(self) -> None:
        self.states.append(self.expect_block_mapping_key)
        self.expect_node(mapping=True)

    def expect_block_sequence(self) -> None:
        self.state = self.expect_first_block_sequence_item

    def expect_first_block_sequence_item(self) -> None:
        # The server settles a sequence's indentation at its first item, after any
        # comment written since its start.
        self.increase_indent(flow=False, indentless=self.mapping_context and not self.indention)
        self.expect_block_sequence_item(first=True)

    def writes_tag(self, event: Any) -> bool:
        if isinstance(event, ScalarEvent):
            return bool(event.tag) and not event.implicit[0] and not event.implicit[1]
        return isinstance(event, CollectionStartEvent) and bool(event.tag) and not event.implicit

    def check_simple_key(self) -> bool:
        event: Any = self.event
        length = 0
        if isinstance(event, (NodeEvent, AliasEvent)) and event.anchor is not None:
            length += len(event.anchor)
        if self.writes_tag(event):
            if self.prepared_tag is None:
                self.prepared_tag = self.prepare_tag(event.tag)
            length += len(self.prepared_tag)
        if isinstance(event, ScalarEvent):
            if self.analysis is None:
                self.analysis = self.analyze_scalar(event.value)
            if self.analysis.multiline:
                return False
            length += len(event.value)
        elif isinstance(event, CollectionStartEvent):
            if not (isinstance(event, SequenceStartEvent) and self.check_empty_sequence()):
                return False
        elif not isinstance(event, AliasEvent):
            return False
        return length <= 1024

    def process_tag(self) -> None:
        event: Any = self.event
        if isinstance(event, ScalarEvent) and self.style is None:
            self.style = self.choose_scalar_style()
        if not self.writes_tag(event):
            self.prepared_tag = None
            return
        if self.prepared_tag is None:
            self.prepared_tag = self.prepare_tag(event.tag)
        if self.prepared_tag:
            self.write_indicator(self.prepared_tag, True)
        self.prepared_tag = None

    def choose_scalar_style(self) -> str:
        event: Any = self.event
        if self.analysis is None:
            self.analysis = self.analyze_scalar(event.value)
        analysis: Any = self.analysis
        style = event.style or ""
        if self.simple_key_context and analysis.multiline:
            style = '"'
        if style == "":
            allowed = analysis.allow_flow_plain if self.flow_level else analysis.allow_block_plain
            if not allowed:
                style = (
                    "'" if analysis.allow_single_quoted and not analysis.has_single_quotes else '"'
                )
            if not event.value and (self.flow_level or self.simple_key_context):
                style = "'"
            if not self.writes_tag(event) and not event.implicit[0]:
                style = "'"
        if style == "'" and not analysis.allow_single_quoted:
            style = '"'
        if style in ("|", ">") and (
            not analysis.allow_block or self.flow_level or self.simple_key_context
        ):
            style = '"'
        return style

    def analyze_scalar(self, scalar: str) -> _Analysis:
        if not scalar:
            null = getattr(self.event, "tag", None) == "tag:yaml.org,2002:null"
            return _Analysis(scalar, (True, False, False, null, not null, True, False), False)
        flow_indicators = block_indicators = scalar.startswith(("---", "..."))
        leading_space = leading_break = trailing_space = trailing_break = False
        leading_quote = break_space = space_break = previous_space = previous_break = False
        line_of_spaces = lines_of_spaces = line_breaks = single_quotes = False
        special = False
        preceded_by_whitespace = True
        last = len(scalar) - 1
        for index, char in enumerate(scalar):
            followed_by_whitespace = index == last or scalar[index + 1] in " \t" + _BREAKS
            if index == 0:
                if char in "#,[]{}&*!|>\"%@`'":
                    flow_indicators = block_indicators = True
                    leading_quote = char == "'"
                    single_quotes |= char == "'"
                if char in "?:":
                    flow_indicators = True
                    block_indicators |= followed_by_whitespace
                if char == "-" and followed_by_whitespace:
                    flow_indicators = block_indicators = True
            else:
                if char in ",?[]{}":
                    flow_indicators = True
                if char == ":":
                    flow_indicators = True
                    block_indicators |= followed_by_whitespace
                if char == "#" and preceded_by_whitespace:
                    flow_indicators = block_indicators = True
                single_quotes |= char == "'"
            if not _is_printable(char):
                special = True
            if char in _BREAKS:
                line_breaks = True
            if char == " ":
                leading_space |= index == 0
                trailing_space |= index == last
                if previous_break:
                    break_space = line_of_spaces = True
                previous_space, previous_break = True, False
            elif char in _BREAKS:
                leading_break |= index == 0
                trailing_break |= index == last
                space_break |= previous_space
                lines_of_spaces |= line_of_spaces
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = line_of_spaces = False
            preceded_by_whitespace = char in " \t" + _BREAKS
        flow_plain = block_plain = single = block = True
        if leading_space or leading_break or trailing_space or trailing_break or leading_quote:
            flow_plain = block_plain = False
        if trailing_space:
            block = False
        if break_space or space_break or special:
            flow_plain = block_plain = single = False
        if lines_of_spaces:
            block = False
        if line_breaks:
            flow_plain = block_plain = False
        if flow_indicators:
            flow_plain = False
        if block_indicators:
            block_plain = False
        flags = (False, line_breaks, flow_plain, block_plain, single, True, block)
        return _Analysis(scalar, flags, single_quotes)

    def write_plain(self, text: str, split: bool = True) -> None:
        if not text:
            if not self.whitespace:
                self.write_raw(" ")
            self.whitespace = self.indention = False
            return
        super().write_plain(text, split)
        self.open_ended = False

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        self.write_indicator('"', True)
        chunks = []
        for char in text:
            if _is_printable(char) and char not in _BREAKS + '"\\':
                chunks.append(char)
            elif char in self.ESCAPE_REPLACEMENTS and char != "\t":
                chunks.append("\\" + self.ESCAPE_REPLACEMENTS[char])
            elif ord(char) <= 0xFF:
                chunks.append(f"\\x{ord(char):02X}")
            elif ord(char) <= 0xFFFF:
                chunks.append(f"\\u{ord(char):04X}")
            else:
                chunks.append(f"\\U{ord(char):08X}")
        self.write_raw("".join(chunks))
        self.write_indicator('"', False)

    def determine_block_hints(self, text: str) -> str:
        hints = ""
        if text and text[0] in " " + _BREAKS:
            hints += str(self.best_indent)
        if not text or text[-1] not in _BREAKS:
            hints += "-"
        elif len(text) >= 2 and text[-2] in _BREAKS:
            hints += "+"
        return hints


# --- XML -----------------------------------------------------------------------------------

_XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"
_WEB_NAMES = {"utf-8": "utf-8", "utf-16": "utf-16", "utf-16-le": "utf-16", "utf-16-be": "utf-16BE",
              "cp1252": "Windows-1252", "windows-1252": "Windows-1252", "ascii": "us-ascii",
              "latin-1": "iso-8859-1", "iso8859-1": "iso-8859-1"}  # fmt: skip
_STANDALONE = re.compile(r"""standalone\s*=\s*["'](yes|no)["']""")
_DECLARATION = re.compile(r"""<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")


@dataclass(slots=True)
class _ElementSource:
    """What the parsed tree forgets about an element: its attributes' order (namespace
    declarations among them), whether it was written ``<e/>``, whether its content was one
    CDATA section."""

    attributes: list[str]
    empty: bool
    cdata: bool = False


def _declared_encoding(content: bytes) -> TextEncoding | None:
    head = content[:1024].decode("latin-1")
    match = _DECLARATION.match(head)
    if match is None:
        return None
    try:
        codec = codecs.lookup(match.group(1)).name
    except LookupError:
        return None
    if codec == "utf-8":
        return TextEncoding("utf-8", codecs.BOM_UTF8, "utf-8")  # the server adds the BOM
    if codec.startswith("utf-16"):
        return TextEncoding("utf-16-le", codecs.BOM_UTF16_LE, "utf-16")
    return TextEncoding(codec, b"", _WEB_NAMES.get(codec, match.group(1).lower()))


def _replace_xml(content: bytes, context: _Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content, _declared_encoding(content))
    parser = etree.XMLParser(
        remove_blank_text=False, strip_cdata=False, resolve_entities=False, no_network=True,
        encoding="utf-8", remove_comments=False, remove_pis=False,
    )  # fmt: skip
    try:
        root = etree.fromstring(text.encode("utf-8", errors="surrogatepass"), parser)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise _NotThisFormat(str(exc)) from exc
    sources = _element_sources(text, root)
    _drop_insignificant_whitespace(root)
    namespaces = _namespaces(root)
    for name in context.names:
        if "/" not in name and ":" not in name:
            continue
        try:
            matches = root.getroottree().xpath(_xpath1(name), namespaces=namespaces)
        except (etree.XPathError, ValueError):
            continue
        if not isinstance(matches, list) or not matches:
            continue
        value = context.lookup(name)
        if value is None:
            continue
        for match in matches:
            context.take(value, name, "xml")
            _set_xml(match, value, sources, namespaces)
    line_break = _line_break(text)
    declaration = re.match(r"<\?xml\s[^>]*\?>", text)
    standalone = None if declaration is None else _STANDALONE.search(declaration.group(0))

    def render(web_name: str) -> str:
        writer = _XmlWriter(line_break, sources)
        if declaration is not None:
            extra = "" if standalone is None else f' standalone="{standalone.group(1)}"'
            writer.raw(f'<?xml version="1.0" encoding="{web_name}"{extra}?>')
        writer.document(root)
        return "".join(writer.out)

    data, written = encode_text(render(encoding.web_name), encoding)
    if written is not encoding:
        data, _ = encode_text(render(written.web_name), written)
    return data, context.replaced


def _xpath1(expression: str) -> str:
    """XPath 2 wildcard prefixes (``*:name``) as XPath 1 tests."""
    return re.sub(r"\*:([A-Za-z_][\w.-]*)", r"*[local-name()='\1']", expression)


_MARKUP = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<!DOCTYPE(?:[^\[>]|\[.*?\])*>"
    r"|</[^>]*>|<([^\s/>!?]+)((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>",
    re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""([^\s=]+)\s*=\s*(?:"[^"]*"|'[^']*')""")


def _element_sources(text: str, root: etree._Element) -> dict[etree._Element, _ElementSource]:
    """The source of each element, matched to the tree by document order (nothing is
    recorded when the two disagree, as entities defining elements would make them)."""
    found: list[_ElementSource] = []
    open_elements: list[tuple[_ElementSource, int]] = []
    for match in _MARKUP.finditer(text):
        token = match.group(0)
        if match.group(1):
            source = _ElementSource(_ATTRIBUTE.findall(match.group(2)), bool(match.group(3)))
            found.append(source)
            if not source.empty:
                open_elements.append((source, match.end()))
        elif token.startswith("</") and open_elements:
            source, start = open_elements.pop()
            inner = text[start : match.start()].strip(" \t\r\n")
            source.cdata = (
                inner.startswith("<![CDATA[")
                and inner.endswith("]]>")
                and inner.count("<![CDATA[") == 1
            )
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    if len(elements) != len(found):
        return {}
    return dict(zip(elements, found, strict=True))


def _preserves_space(element: etree._Element) -> bool:
    for ancestor in (element, *element.iterancestors()):
        space = ancestor.get(f"{{{_XML_NAMESPACE}}}space")
        if space is not None:
            return space == "preserve"
    return False


def _drop_insignificant_whitespace(root: etree._Element) -> None:
    """What the server's reader drops: text of only whitespace between nodes."""
    for element in root.iter():
        parent = element.getparent()
        if (
            element.tail is not None
            and not element.tail.strip(" \t\r\n")
            and (parent is None or not _preserves_space(parent))
        ):
            element.tail = None
        if (
            isinstance(element.tag, str)
            and element.text is not None
            and not element.text.strip(" \t\r\n")
            and not _preserves_space(element)
        ):
            element.text = None


def _namespaces(root: etree._Element) -> dict[str, str]:
    """Prefixes declared anywhere in the document; the first declaration of a prefix wins."""
    found: dict[str, str] = {}
    for element in root.iter():
        for prefix, uri in (element.nsmap or {}).items():
            if prefix is not None:
                found.setdefault(prefix, uri)
    return found


def _set_xml(
    match: Any, value: str, sources: dict[etree._Element, _ElementSource], ns: dict[str, str]
) -> None:
    if isinstance(match, (etree._Comment, etree._ProcessingInstruction)):
        match.text = value
    elif isinstance(match, etree._Element):
        source = sources.get(match)
        children = list(match)
        if source is not None and source.cdata and not children:
            match.text = value
        elif any(isinstance(child.tag, str) for child in children):
            _set_inner_xml(match, value, sources)
        else:
            for child in children:
                match.remove(child)
            match.text = value
            if source is not None:
                source.empty = source.cdata = False
    elif isinstance(match, etree._ElementUnicodeResult):
        parent = match.getparent()
        if parent is None:
            return
        if match.is_attribute:
            parent.set(str(match.attrname), value)
        elif match.is_tail:
            parent.tail = value
        else:
            parent.text = value


def _set_inner_xml(
    element: etree._Element, value: str, sources: dict[etree._Element, _ElementSource]
) -> None:
    """The element's content replaced by ``value`` parsed as a fragment in its namespaces;
    left as it was when the value is not well-formed (the server warns)."""
    declarations = "".join(
        f' xmlns="{uri}"' if prefix is None else f' xmlns:{prefix}="{uri}"'
        for prefix, uri in (element.nsmap or {}).items()
    )
    try:
        fragment = etree.fromstring(
            f"<fragment{declarations}>{value}</fragment>",
            etree.XMLParser(resolve_entities=False, no_network=True, strip_cdata=False),
        )
    except etree.XMLSyntaxError:
        return
    _drop_insignificant_whitespace(fragment)
    for child in list(element):
        element.remove(child)
    element.text = fragment.text
    for child in list(fragment):
        element.append(child)
    source = sources.get(element)
    if source is not None:
        source.empty = source.cdata = False


class _XmlWriter:
    """The server's indenting XML writer: a node per line, two spaces a level, except in
    an element once it has held text (and in the elements within it), where nothing is
    added."""

    def __init__(self, line_break: str, sources: dict[etree._Element, _ElementSource]) -> None:
        self.line_break = line_break
        self.sources = sources
        self.out: list[str] = []
        self.level = 0
        self.mixed = False  # the current element has held text
        self.after_text = False  # the last thing written was text

    def raw(self, text: str) -> None:
        self.out.append(text)
        self.after_text = False

    def indent(self) -> None:
        if self.out and not self.mixed and not self.after_text:
            self.out.append(self.line_break + "  " * self.level)

    def document(self, root: etree._Element) -> None:
        docinfo: Any = root.getroottree().docinfo
        doctype = docinfo.doctype
        if doctype:
            self.indent()
            self.raw(doctype)
        for node in reversed(list(root.itersiblings(preceding=True))):
            self.node(node)
        self.node(root)
        for node in root.itersiblings():
            self.node(node)

    def node(self, node: Any) -> None:
        if isinstance(node, etree._Comment):
            self.indent()
            self.raw(f"<!--{node.text or ''}-->")
        elif isinstance(node, etree._ProcessingInstruction):
            self.indent()
            target = str(node.target)
            self.raw(f"<?{target} {node.text}?>" if node.text else f"<?{target}?>")
        elif isinstance(node, etree._Entity):
            self.text(f"&{node.name};", escape=False)
        else:
            self.element(node)
        if node.tail is not None and node.getparent() is not None:
            self.text(node.tail)

    def text(self, text: str, *, escape: bool = True) -> None:
        self.out.append(self.escape(text) if escape else text)
        self.mixed = self.after_text = True

    def escape(self, text: str, attribute: bool = False) -> str:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if attribute:
            text = text.replace('"', "&quot;").replace("\t", "&#x9;")
            return text.replace("\n", "&#xA;").replace("\r", "&#xD;")
        return re.sub(r"\r\n|\r|\n", lambda m: self.line_break, text)

    def element(self, element: etree._Element) -> None:
        self.indent()
        source = self.sources.get(element)
        name = self.qualified(element)
        self.raw(f"<{name}{self.attributes(element, source)}")
        children = list(element)
        if element.text is None and not children:
            self.raw(" />" if source is None or source.empty else f"></{name}>")
            return
        self.raw(">")
        outer_mixed, self.level = self.mixed, self.level + 1
        if element.text is not None:
            if source is not None and source.cdata and not children:
                self.text(f"<![CDATA[{element.text}]]>", escape=False)
            else:
                self.text(element.text)
        for child in children:
            self.node(child)
        self.level -= 1
        self.indent()
        self.raw(f"</{name}>")
        self.mixed = outer_mixed

    @staticmethod
    def qualified(element: etree._Element) -> str:
        local = etree.QName(element).localname
        return f"{element.prefix}:{local}" if element.prefix else local

    def attributes(self, element: etree._Element, source: _ElementSource | None) -> str:
        parent = element.getparent()
        inherited = {} if parent is None else (parent.nsmap or {})
        declared = {p: u for p, u in (element.nsmap or {}).items() if inherited.get(p) != u}
        names: list[str] = []
        if source is not None:
            names = source.attributes
        else:
            names = [f"xmlns:{p}" if p else "xmlns" for p in declared]
            names += [self.attribute_name(element, str(key)) for key in element.attrib]
        parts = []
        for name in names:
            if name == "xmlns" or name.startswith("xmlns:"):
                prefix = name[6:] or None
                uri = (element.nsmap or {}).get(prefix)
                if uri is None and prefix is None:
                    uri = ""
                if uri is None:
                    continue
                parts.append(f' {name}="{self.escape(uri, True)}"')
                continue
            value = element.get(self.attribute_key(element, name))
            if value is not None:
                parts.append(f' {name}="{self.escape(value, True)}"')
        return "".join(parts)

    @staticmethod
    def attribute_key(element: etree._Element, name: str) -> str:
        prefix, _, local = name.rpartition(":")
        if not prefix:
            return name
        uri = _XML_NAMESPACE if prefix == "xml" else (element.nsmap or {}).get(prefix)
        return f"{{{uri}}}{local}" if uri else name

    @staticmethod
    def attribute_name(element: etree._Element, key: str) -> str:
        qname = etree.QName(key)
        namespace: str | None = qname.namespace
        if namespace is None:
            return key
        if namespace == _XML_NAMESPACE:
            return f"xml:{qname.localname}"
        for prefix, uri in (element.nsmap or {}).items():
            if uri == namespace and prefix:
                return f"{prefix}:{qname.localname}"
        return qname.localname


# --- .properties ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Property:
    key_raw: str
    key: str  # escapes and continuations resolved
    separator: str
    value_start: int
    value_end: int


_PROPERTY_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|([rnt])|(\r\n|\n)[ \t]*|(.))", re.DOTALL)


def _properties(text: str) -> Iterator[_Property]:
    """The key-value pairs of a .properties file, as the server's parser reads them."""
    position, length = 0, len(text)
    while position < length:
        while position < length and text[position] in " \t\r\n":
            position += 1
        if position >= length:
            return
        if text[position] in "#!":
            while position < length and text[position] not in "\r\n":
                position += 1
            continue
        key_start = position
        while position < length and text[position] not in ":= \t\r\n":
            if text[position] == "\\":
                escape = _PROPERTY_ESCAPE.match(text, position)
                if escape is None:
                    raise _NotThisFormat(f"an unfinished escape at offset {position}")
                position = escape.end()
            else:
                position += 1
        if position == key_start:
            raise _NotThisFormat(f"a line starts with {text[position]!r} at offset {position}")
        key_raw = text[key_start:position]
        separator = re.compile(r"[ \t]*[:=]?[ \t]*").match(text, position)
        assert separator is not None
        position = separator.end()
        value_start = position
        while position < length and text[position] not in "\r\n":
            if text[position] == "\\":
                escape = _PROPERTY_ESCAPE.match(text, position)
                if escape is None:
                    raise _NotThisFormat(f"an unfinished escape at offset {position}")
                position = escape.end()
            else:
                position += 1
        yield _Property(key_raw, _unescape_property(key_raw), separator.group(0), value_start,
                        position)  # fmt: skip


def _unescape_property(raw: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1):
            return chr(int(match.group(1), 16))
        if match.group(2):
            return {"r": "\r", "n": "\n", "t": "\t"}[match.group(2)]
        if match.group(3):
            return ""
        return match.group(4)

    return _PROPERTY_ESCAPE.sub(one, raw)


def _replace_properties(content: bytes, context: _Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content)
    wanted = {_fold(name): name for name in context.names if not name.lower().startswith("octopus")}
    edits: list[tuple[int, int, str]] = []
    for prop in list(_properties(text)):
        name = wanted.get(_fold(prop.key))
        if name is None or prop.key.lower().startswith("octopus"):
            continue
        value = context.lookup(name)
        if value is None:
            continue
        context.take(value, prop.key, "properties")
        separator = prop.separator or ":"
        start = prop.value_start - len(prop.separator)
        edits.append((start, prop.value_end, separator + _properties_value(value)))
    for start, end, replacement in reversed(edits):
        text = text[:start] + replacement + text[end:]
    data, _ = encode_text(text, encoding)
    return data, context.replaced


def _properties_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
    escaped = escaped.replace("\t", "\\t")
    units = escaped.encode("utf-16-le", errors="surrogatepass")
    chars = []
    for index in range(0, len(units), 2):
        unit = int.from_bytes(units[index : index + 2], "little")
        chars.append(chr(unit) if unit < 0xFF else f"\\u{unit:04x}")
    out = "".join(chars)
    return "\\ " + out[1:] if out.startswith(" ") else out


_REPLACERS: dict[str, Callable[[bytes, _Context], tuple[bytes, list[Replacement]]]] = {
    "json": _replace_json,
    "xml": _replace_xml,
    "yaml": _replace_yaml,
    "properties": _replace_properties,
}
