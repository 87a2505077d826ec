""".NET's text encodings as the deployment server writes substituted files in them, when
``Octopus.Action.SubstituteInFiles.OutputEncoding`` names one: the names
``Encoding.GetEncoding`` knows (compared as .NET compares them), the BOM a file written with
each begins with, and what each does with a character it cannot hold."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from services.builder.features.structured import StructuredError, TextEncoding, encode_text


@dataclass(frozen=True, slots=True)
class DotnetEncoding:
    """An encoding as .NET's ``Encoding.GetEncoding(name)`` gives it and the server writes a
    file with it: its BOM, if it has one, then the text. A character it cannot hold is
    replaced: by U+FFFD in UTF, by ``?`` in ASCII; by ``best_fit`` encodings with the
    stand-in .NET's best-fit tables name, which this builder does not have, so there such a
    character is refused rather than written differently."""

    encoding: TextEncoding
    best_fit: bool = False


def _dotnet_names(encoding: DotnetEncoding, *names: str) -> dict[str, DotnetEncoding]:
    return dict.fromkeys(names, encoding)


def _windows_code_page(page: int) -> DotnetEncoding:
    """A Windows code page: Python's table holds the same characters; .NET best-fits others."""
    return DotnetEncoding(TextEncoding(f"cp{page}", b"", f"windows-{page}"), best_fit=True)


# The names .NET knows (compared in lower case) for the encodings worth writing a
# configuration file in; windows-125x come from the code pages the server registers.
_DOTNET_ENCODINGS: dict[str, DotnetEncoding] = {
    **_dotnet_names(
        DotnetEncoding(TextEncoding("utf-8", codecs.BOM_UTF8)),
        "utf-8", "unicode-1-1-utf-8", "unicode-2-0-utf-8",
        "x-unicode-1-1-utf-8", "x-unicode-2-0-utf-8",
    ),
    **_dotnet_names(
        DotnetEncoding(TextEncoding("utf-16-le", codecs.BOM_UTF16_LE, "utf-16")),
        "utf-16", "utf-16le", "unicode", "ucs-2", "iso-10646-ucs-2",
    ),
    **_dotnet_names(
        DotnetEncoding(TextEncoding("utf-16-be", codecs.BOM_UTF16_BE, "utf-16BE")),
        "utf-16be", "unicodefffe",
    ),
    **_dotnet_names(
        DotnetEncoding(TextEncoding("utf-32-le", codecs.BOM_UTF32_LE, "utf-32")),
        "utf-32", "utf-32le",
    ),
    **_dotnet_names(
        DotnetEncoding(TextEncoding("utf-32-be", codecs.BOM_UTF32_BE, "utf-32BE")),
        "utf-32be",
    ),
    **_dotnet_names(
        DotnetEncoding(TextEncoding("ascii", b"", "us-ascii")),
        "us-ascii", "ascii", "us", "ansi_x3.4-1968", "ansi_x3.4-1986", "cp367", "ibm367",
        "csascii", "iso-ir-6", "iso646-us", "iso_646.irv:1991",
    ),
    **_dotnet_names(
        DotnetEncoding(TextEncoding("latin-1", b"", "iso-8859-1"), best_fit=True),
        "iso-8859-1", "iso8859-1", "iso_8859-1", "iso_8859-1:1987", "iso-ir-100", "latin1",
        "l1", "cp819", "ibm819", "csisolatin1",
    ),
    **_dotnet_names(
        DotnetEncoding(TextEncoding("windows-1252", b"", "Windows-1252"), best_fit=True),
        "windows-1252", "x-ansi",
    ),
    **{
        f"windows-{page}": _windows_code_page(page)
        for page in (1250, 1251, 1253, 1254, 1255, 1256, 1257, 1258)
    },
    "x-cp1250": _windows_code_page(1250),
    "x-cp1251": _windows_code_page(1251),
    "cp1256": _windows_code_page(1256),
}  # fmt: skip
# .NET knows UTF-7 by these names and refuses it: the server's substitution fails.
_DOTNET_UTF7_NAMES = frozenset({
    "utf-7", "unicode-1-1-utf-7", "unicode-2-0-utf-7", "x-unicode-1-1-utf-7",
    "x-unicode-2-0-utf-7", "csunicode11utf7",
})  # fmt: skip
_SURROGATE = re.compile("[\ud800-\udfff]")


def server_bytes(text: str, read_as: TextEncoding, requested: DotnetEncoding | None) -> bytes:
    """``text`` as the server writes it: in the encoding asked for, else in the one the file
    was read in. An encoding a BOM named replaces what it cannot hold; BOM-less UTF-8 and
    windows-1252 refuse it, and then UTF-8 (no BOM) is tried. ``StructuredError`` when the
    text cannot be written."""
    if requested is None:
        return encode_text(_dotnet_string(text, replace_lone=bool(read_as.bom)), read_as)[0]
    text = _dotnet_string(text, replace_lone=not requested.best_fit)
    target = requested.encoding
    if requested.best_fit:
        data, written = encode_text(text, target)
        if written is not target:
            raise StructuredError(
                "a character cannot be written in the output encoding asked for: the server "
                "writes a best-fit stand-in for it, which this builder does "
                "not reproduce; name an encoding that holds it, such as utf-8"
            )
        return data
    return target.bom + text.encode(target.codec, errors="replace")


def _dotnet_string(text: str, *, replace_lone: bool) -> str:
    """``text`` as a .NET string holds it: two halves of a surrogate pair side by side (from
    two values, say) are one character; a lone half becomes U+FFFD when ``replace_lone``."""
    if _SURROGATE.search(text) is None:
        return text
    units = text.encode("utf-16-le", "surrogatepass")
    return units.decode("utf-16-le", "replace" if replace_lone else "surrogatepass")


def dotnet_encoding(name: str) -> DotnetEncoding | None:
    """The encoding .NET gives for ``name``; None for a name it does not know (or that this
    builder does not write)."""
    return _DOTNET_ENCODINGS.get(_key(name))


def is_utf7(name: str) -> bool:
    """Whether ``name`` is one of .NET's names for UTF-7, which it refuses to write."""
    return _key(name) in _DOTNET_UTF7_NAMES


def _key(name: str) -> str:
    # .NET compares names in invariant lower case, where the dotted capital I is a plain i.
    return name.replace("\u0130", "i").lower()
