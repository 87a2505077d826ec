"""Finding sensitive values where they must not be, and masking them in text that leaves the
builder (log lines, error messages).

A value is looked for as itself and in the encodings a build step or a template is likely to
print it in: base64 (standard and URL-safe; a secret inside a larger encoded file is found at
any of the three alignments a byte offset can give it), URL, HTML and JSON escaping, hex, and
every escaping the configuration features write a value in (``writer_forms``): the filters'
(HTML, XML, JSON, YAML, .properties, URI), and the structured variables', transforms' and
.NET configuration variables' writers (JSON string escapes, XML entities and character
references, .properties escapes with ``\\uXXXX`` for what Latin-1 lacks, YAML's quoted
styles). A line break may fall inside any of them (``base64``
wraps at 76 columns), and a piece of a base64 form at the very start or end of a text is
masked too: the rest of it may be in the line before or after.

A value of several lines (a PEM key) is printed, and logged, a line at a time (``RUN cat
key.pem``), so each of its lines long enough not to be noise is masked on its own as well,
as itself and escaped (base64 is left to the whole value's forms, which find it in a larger
encoded file). That is for masking only: a line alone (``-----END PRIVATE KEY-----``) is not
reason enough to refuse an image.

Searching happens in decoded text, not in an encoding of it (JSON escapes non-ASCII, quotes
and backslashes, so searching serialised bytes misses them).
"""

from __future__ import annotations

import base64
import html
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

from yaml.emitter import Emitter

MASK = "********"
MIN_ENCODED = 6  # shorter encoded forms would mask noise ("61" for "a")
MAX_ANCHORED = 64 * 1024  # characters of base64 forms indexed to find pieces at text edges
MIN_LINE = 6  # shorter lines of a multi-line value would mask noise ("}", "end")
MAX_LINES = 1000  # lines of multi-line values looked for on their own, each a few searches
_LINE_BREAKS = re.compile(r"[\r\n]")


def base64_cores(value: bytes, alphabet: bytes | None = None) -> set[str]:
    """The base64 text of ``value`` wherever it sits in a larger encoded text: for each of the
    three byte offsets modulo 3, the characters that depend on ``value``'s bytes alone."""
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value, altchars=alphabet).decode()
        start = -(-8 * offset // 6)  # the first character with no bit of the prefix
        end = 8 * (offset + len(value)) // 6  # after the last with no bit of what follows
        cores.add(encoded[start:end])
    return cores


def encoded_forms(secret: str) -> tuple[set[str], set[str]]:
    """(forms, base64 forms) in which ``secret`` may appear; the base64 ones are also masked
    in part at a text's edges."""
    data = secret.encode(errors="surrogatepass")  # JSON may carry a lone surrogate
    b64 = {base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()}
    b64 |= base64_cores(data) | base64_cores(data, b"-_")
    b64 = {form for form in b64 if len(form) >= MIN_ENCODED}
    return escaped_forms(secret) | b64, b64


def escaped_forms(secret: str) -> set[str]:
    """``secret`` URL, HTML, XML and JSON escaped, and in hex (those long enough to mask)."""
    data = secret.encode(errors="surrogatepass")
    forms = {
        urllib.parse.quote(secret, safe="", errors="surrogatepass"),
        urllib.parse.quote(  # the UriEscape filter
            secret, safe=":/?#[]@!$&'()*+,;=-._~%", errors="surrogatepass"
        ),
        urllib.parse.quote_plus(secret, errors="surrogatepass"),
        html.escape(secret, quote=True),
        html.escape(secret, quote=False),
        secret.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace('"', "&quot;").replace("'", "&apos;"),  # the XmlEscape filter
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        data.hex(),
        data.hex().upper(),
        *writer_forms(secret),
    }  # fmt: skip
    return {form for form in forms if len(form) >= MIN_ENCODED}


# --- the escapings of the configuration features' writers ---------------------------------

# JSON: the structured variables' writer (Newtonsoft's) and the JsonEscape filter.
_JSON_NAMED = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
               "\\": "\\\\"}  # fmt: skip
_JSON_WRITTEN = re.compile('[\x00-\x1f"\\\\\x85\u2028\u2029]')
_JSON_FILTER = str.maketrans({'"': '\\"', "\r": "\\r", "\t": "\\t", "\n": "\\n", "\\": "\\\\"})
# XML: .NET's XmlTextWriter (transforms, .NET configuration variables) writes a control
# character as a reference; the structured variables' writer and .NET's write a tab, line
# break or carriage return in an attribute as one.
_XML_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_XML_CONTENT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_XML_ATTRIBUTE = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#xA;", "\r": "&#xD;"}
)
_HTML_FILTER = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;", "/": "&#x2F;"}
)
# .properties: the writer's and the filters' escapes, \\uXXXX (UTF-16) past Latin-1.
_PROPERTIES = re.compile("[\\\\\r\n\t]|[^\x00-\xfe]")
_PROPERTIES_NAMED = {"\\": "\\\\", "\r": "\\r", "\n": "\\n", "\t": "\\t"}
# YAML double-quoted: the YamlDoubleQuoteEscape filter (all but printable ASCII, \\uxxxx)
# and the structured variables' emitter (PyYAML's escapes, \\xXX, \\uXXXX, \\UXXXXXXXX).
_YAML_FILTER = re.compile('[^\x20-\x7e]|[\\\\"]')
_YAML_FILTER_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t", "\\": "\\\\", '"': '\\"'}


def writer_forms(secret: str) -> set[str]:
    """``secret`` as each configuration feature writes it into a file: what ``spacedock sdi
    preview`` shows in its diff and a build step may print."""
    content = _XML_CONTROL.sub(lambda m: f"&#x{ord(m[0]):X};", secret.translate(_XML_CONTENT))
    attribute = _XML_CONTROL.sub(lambda m: f"&#x{ord(m[0]):X};", secret.translate(_XML_ATTRIBUTE))
    properties = _PROPERTIES.sub(lambda m: _PROPERTIES_NAMED.get(m[0]) or _u_escape(m[0]), secret)
    return {
        _JSON_WRITTEN.sub(lambda m: _JSON_NAMED.get(m[0], f"\\u{ord(m[0]):04x}"), secret),
        secret.translate(_JSON_FILTER),
        content,
        attribute,
        attribute.replace("\t", "&#x9;"),
        secret.translate(_HTML_FILTER),
        properties,
        properties.replace(" ", "\\ ").replace(":", "\\:").replace("=", "\\="),  # a key
        _YAML_FILTER.sub(lambda m: _YAML_FILTER_NAMED.get(m[0]) or _u_escape(m[0]), secret),
        "".join(_yaml_emitted(char) for char in secret),
        secret.replace("'", "''"),  # YAML single-quoted
    }


def _u_escape(char: str) -> str:
    """``\\uxxxx`` for each UTF-16 unit of ``char``."""
    units = char.encode("utf-16-le", errors="surrogatepass")
    return "".join(
        f"\\u{int.from_bytes(units[i : i + 2], 'little'):04x}" for i in range(0, len(units), 2)
    )


def _yaml_emitted(char: str) -> str:
    code = ord(char)
    printable = (
        code in (0x9, 0x85) or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
    )  # fmt: skip
    if printable and char not in '"\\\x85\u2028\u2029':
        return char
    if char in Emitter.ESCAPE_REPLACEMENTS:
        return "\\" + Emitter.ESCAPE_REPLACEMENTS[char]
    if code <= 0xFF:
        return f"\\x{code:02X}"
    return f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}"


def value_lines(secret: str) -> list[str]:
    """The lines of a multi-line ``secret``, stripped, that are long enough to look for."""
    lines = [line.strip() for line in _LINE_BREAKS.split(secret)]
    return [line for line in lines if len(line) >= MIN_LINE] if len(lines) > 1 else []


class Masker:
    """Masks a build's sensitive values, and their encodings, in text. Built once per build."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        wrapped: set[str] = set()
        lines: dict[str, None] = {}  # in order, each once
        for secret in dict.fromkeys(s for s in secrets if s):
            encoded, b64 = encoded_forms(secret)
            forms |= encoded | {secret}
            wrapped |= b64
            lines.update(dict.fromkeys(value_lines(secret)))
        # Text is searched with its line breaks taken out, so the forms are too.
        flat = {_LINE_BREAKS.sub("", form) for form in forms}
        self.forms = sorted((form for form in flat if form), key=len, reverse=True)
        # Masked, not reason to refuse: found_in looks for whole values only.
        pieces: set[str] = set()
        for line in list(lines)[:MAX_LINES]:
            pieces |= escaped_forms(line) | {line}
        self._masked = sorted(pieces | set(self.forms), key=len, reverse=True)
        # Each MIN_ENCODED characters of a base64 form, to find a piece of one at an edge.
        self._anchors: dict[str, list[tuple[str, int]]] = {}
        room = MAX_ANCHORED
        for form in sorted(wrapped, key=len):
            room -= len(form)
            if room < 0:
                break
            for at in range(len(form) - MIN_ENCODED + 1):
                self._anchors.setdefault(form[at : at + MIN_ENCODED], []).append((form, at))

    def __bool__(self) -> bool:
        return bool(self._masked)

    def found_in(self, text: str) -> bool:
        """Whether ``text`` holds a sensitive value, or an encoding of one, whole."""
        flat = _LINE_BREAKS.sub("", text) if _has_breaks(text) else text
        return any(form in flat for form in self.forms)

    def mask(self, text: str) -> str:
        if not self._masked or not text:
            return text
        broken = _has_breaks(text)
        flat = _LINE_BREAKS.sub("", text) if broken else text
        spans = [*self._occurrences(flat), *self._edge_pieces(flat)]
        if not spans:
            return text
        where = [i for i, char in enumerate(text) if char not in "\r\n"] if broken else None
        hidden = bytearray(len(text))
        for start, end in spans:
            for index in range(start, end):
                hidden[index if where is None else where[index]] = 1
        out: list[str] = []
        masking = False
        for index, char in enumerate(text):
            if hidden[index]:
                if not masking:
                    out.append(MASK)
                masking = True
            else:  # a line break ends a masked run: a mask on each side of it
                out.append(char)
                masking = False
        return "".join(out)

    def _occurrences(self, text: str) -> Iterator[tuple[int, int]]:
        for form in self._masked:
            start = text.find(form)
            while start >= 0:
                yield start, start + len(form)
                start = text.find(form, start + 1)

    def _edge_pieces(self, text: str) -> Iterator[tuple[int, int]]:
        """The text starts with the end of a base64 form, or ends with its beginning (or is
        all inside one): the rest is in the text before or after."""
        if len(text) < MIN_ENCODED:
            return
        for form, at in self._anchors.get(text[:MIN_ENCODED], ()):
            rest = form[at:]
            if text.startswith(rest) or rest.startswith(text):
                yield 0, min(len(rest), len(text))
        for form, at in self._anchors.get(text[-MIN_ENCODED:], ()):
            beginning = form[: at + MIN_ENCODED]
            if text.endswith(beginning) or beginning.endswith(text):
                yield max(len(text) - len(beginning), 0), len(text)


def _has_breaks(text: str) -> bool:
    return "\n" in text or "\r" in text


def strings(document: Any) -> Iterator[str]:
    """Every string in a JSON-like document, keys included."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from strings(value)
    elif isinstance(document, (list, tuple)):
        for item in document:
            yield from strings(item)


def holds_secret(document: Any, secrets: Iterable[str]) -> bool:
    """Whether a sensitive value, or an encoding of one, is anywhere in ``document``."""
    masker = Masker(secrets)
    return bool(masker) and any(masker.found_in(text) for text in strings(document))
