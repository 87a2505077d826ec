"""The escaping filters: HTML, XML, JSON, YAML (single and double quoted), Java
.properties keys and values, and URI strings and data strings."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable

from services.builder.features.filters.dotnet import scalar, u_escape
from services.builder.features.filters.errors import FilterFunction, bounded, result_limit

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
        if len(value) * (by + 1) > result_limit():
            matched = len(value) - len(growing.sub("", value))
            bounded(len(value) + matched * by, "the escape")
        return function(value)

    return escape


def _yaml_single_quote(text: str) -> str:
    """A newline inside single quotes reads as a space, so each run of them gets one more."""
    doubled = _YAML_NEWLINES.sub(
        lambda m: ("\r\n" if m.group().startswith("\r") else "\n") + m.group(), text
    )
    return doubled.replace("'", "''")


def _yaml_double_quote(text: str) -> str:
    return _YAML_DOUBLE.sub(lambda m: _YAML_DOUBLE_NAMED.get(m.group()) or u_escape(m[0]), text)


def _properties(text: str) -> str:
    return _PROPERTIES.sub(lambda m: _PROPERTIES_NAMED.get(m.group()) or u_escape(m[0]), text)


def _properties_key(text: str) -> str:
    return _properties(text).replace(" ", "\\ ").replace(":", "\\:").replace("=", "\\=")


def _properties_value(text: str) -> str:
    escaped = _properties(text)
    return "\\" + escaped if escaped.startswith(" ") else escaped


def _uri_escape(text: str) -> str:
    return urllib.parse.quote(scalar(text), safe=_URI_RESERVED)


def _uri_data_escape(text: str) -> str:
    return urllib.parse.quote(scalar(text), safe="")


html_escape = _escape(lambda t: t.translate(_HTML), r"[&<>\"'/]", 5)
xml_escape = _escape(lambda t: t.translate(_XML), r"[&<>\"']", 5)
json_escape = _escape(lambda t: t.translate(_JSON), r"[\"\r\t\n\\]", 1)
yaml_single_quote_escape = _escape(_yaml_single_quote, r"['\r\n]", 2)
yaml_double_quote_escape = _escape(_yaml_double_quote, _YAML_DOUBLE.pattern, 11)
properties_key_escape = _escape(_properties_key, r"[^\x00-\xfe]|[\\\r\n\t :=]", 11)
properties_value_escape = _escape(_properties_value, r"[^\x00-\xfe]|[\\\r\n\t ]", 11)
uri_escape = _escape(_uri_escape, r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]", 11)
uri_data_escape = _escape(_uri_data_escape, r"[^A-Za-z0-9\-._~]", 11)
