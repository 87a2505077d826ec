"""Structured Configuration Variables: replace values in JSON, YAML, XML and Java
``.properties`` files by variable name, writing the same bytes the deployment server writes.

Which formats a file is tried as: JSON always first; then the one its extension names
(``.xml``, ``.yml``/``.yaml``, ``.properties``; a ``.json`` file is JSON only); a file with
any other extension is tried as XML, YAML, then properties, and the first format that
parses it wins; with the server's fallback flag (``JSON_ONLY_FLAG``) every file is JSON
only. Whatever matched, the file is written back in its format's canonical layout, as the
server does: replacing nothing still reformats it.

- JSON: read as leniently as the server's reader (comments, trailing commas, single quotes,
  unquoted names, JavaScript literals; date strings are rewritten in its date format). The
  name is the path of keys from the root joined by ``:``, array elements by
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
  it). XPath 2's wildcard, value comparisons and string functions are understood.
  Re-indented by two spaces; the declaration names the encoding written; what the tree
  forgets (CDATA beside text, attribute values as written, the DOCTYPE) is kept.
- ``.properties``: the logical key (escapes and continuation lines resolved) equals the name,
  case-insensitively; the value is escaped (``\\\\``, ``\\t``, ``\\n``, ``\\uXXXX`` beyond
  Latin-1, a leading space); a key alone gets a ``:``. Names starting ``Octopus`` are skipped.

Files are read in their encoding (a BOM's, else UTF-8, else windows-1252; for XML the
declared one first) and written back in it, falling back to UTF-8 when a value does not fit.
What the values add is counted as they are written: past ``max_growth`` the file is refused.
So is a file over ``max_size`` bytes (``MAX_FILE_BYTES``), YAML nesting flow collections
over ``MAX_YAML_FLOW_DEPTH`` deep, and XPath selectors that would cost more than is left of
the ``Work`` allowance (``services.builder.features.xdt.work`` says how it is estimated).
Errors give the problem and where (line, column), never the file's text.

Modules: ``service`` (the order formats are tried in), ``common`` (errors, the replacement
context), ``encoding`` (encodings and line endings), ``json_format`` with ``json_reader`` and
``json_dates``, ``yaml_format`` with ``yaml_scanner`` and ``yaml_emitter``, ``xml_format``
with ``xml_source``, ``xml_writer`` and ``xpath2``, and ``properties_format``.
"""

from __future__ import annotations

from services.builder.features.structured.common import (
    MAX_FILE_BYTES,
    Replacement,
    StructuredError,
    StructuredGrowthError,
    StructuredWorkError,
)
from services.builder.features.structured.encoding import TextEncoding, decode_text, encode_text
from services.builder.features.structured.service import JSON_ONLY_FLAG, replace_structured
from services.builder.features.xdt.work import MAX_WORK, Work

__all__ = [
    "JSON_ONLY_FLAG",
    "MAX_FILE_BYTES",
    "MAX_WORK",
    "Replacement",
    "StructuredError",
    "StructuredGrowthError",
    "StructuredWorkError",
    "TextEncoding",
    "Work",
    "decode_text",
    "encode_text",
    "replace_structured",
]
