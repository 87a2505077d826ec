"""Reading a file in its encoding and writing it back in the same one, and the line
ending the server writes a reformatted file with."""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from services.builder.features.structured.common import (
    StructuredError,
)


def line_break_of(text: str) -> str:
    """The file's most common line ending; CRLF when it has none (as the server decides)."""
    dos = text.count("\r\n")
    unix = text.count("\n") - dos
    if unix > dos:
        return "\n"
    if unix == dos and unix and text.index("\n") != text.find("\r\n") + 1:
        return "\n"  # a tie goes to the ending met first
    return "\r\n"


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
