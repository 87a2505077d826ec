"""Java ``.properties``: values replaced in place by logical key, escaped as the server
escapes them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from services.builder.features.structured.common import (
    Context,
    NotThisFormat,
    Replacement,
    fold,
)
from services.builder.features.structured.encoding import (
    decode_text,
    encode_text,
)


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
                    raise NotThisFormat(f"an unfinished escape at offset {position}")
                position = escape.end()
            else:
                position += 1
        if position == key_start:
            raise NotThisFormat(f"a line starts with {text[position]!r} at offset {position}")
        key_raw = text[key_start:position]
        separator = re.compile(r"[ \t]*[:=]?[ \t]*").match(text, position)
        assert separator is not None
        position = separator.end()
        value_start = position
        while position < length and text[position] not in "\r\n":
            if text[position] == "\\":
                escape = _PROPERTY_ESCAPE.match(text, position)
                if escape is None:
                    raise NotThisFormat(f"an unfinished escape at offset {position}")
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


def replace_properties(content: bytes, context: Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content)
    wanted = {fold(name): name for name in context.names if not name.lower().startswith("octopus")}
    edits: list[tuple[int, int, str]] = []
    for prop in list(_properties(text)):
        name = wanted.get(fold(prop.key))
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
