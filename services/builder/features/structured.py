"""Structured Configuration Variables: replace values in JSON, YAML, XML and Java
``.properties`` files by variable name, the deployment server's way.

- JSON and YAML: the name is the path of keys from the root joined by ``:``, with zero-based
  indexes for array elements (``Logging:LogLevel:Default``, ``Servers:0:Url``), compared
  case-insensitively; only paths that exist are replaced; a scalar keeps its type when the
  value fits it; an object or array is replaced by the value parsed as JSON (or YAML).
  Variables named ``Octopus...`` are skipped, except ``Octopus:...`` paths.
- XML: names that are XPath expressions (starting with ``/``) select elements, attributes
  or text; an element with child elements takes the value as an XML fragment.
- ``.properties``: the key must equal the name exactly.

JSON is tried first whatever the extension (as the deployment server does); then the
extension decides; an unknown extension is tried as YAML, XML, then properties. YAML files
are edited in place, so comments and layout survive; JSON is rewritten indented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml
from lxml import etree

Lookup = Callable[[str], "str | None"]


class StructuredError(ValueError):
    """The file could not be read in any of the formats."""


@dataclass(frozen=True, slots=True)
class Replacement:
    path: str
    format: str


def replace_structured(
    filename: str, content: bytes, names: Iterable[str], lookup: Lookup
) -> tuple[bytes, list[Replacement]]:
    """The file with its values replaced, and what was replaced."""
    names = list(names)
    text = _decode(content)
    extension = PurePosixPath(filename).suffix.lower()
    json_result = _try(lambda: _replace_json(text, names, lookup))
    if json_result is not None:
        return json_result
    by_extension: dict[
        str, list[Callable[[str, list[str], Lookup], tuple[str, list[Replacement]]]]
    ] = {
        ".json": [],  # JSON, tried above, and nothing else
        ".yaml": [_replace_yaml],
        ".yml": [_replace_yaml],
        ".xml": [_replace_xml],
        ".config": [_replace_xml],
        ".properties": [_replace_properties],
    }
    attempts = by_extension.get(extension, [_replace_yaml, _replace_xml, _replace_properties])
    for attempt in attempts:
        result = _try(lambda attempt=attempt: attempt(text, names, lookup))  # type: ignore[misc]
        if result is not None:
            return result
    raise StructuredError(f"{filename} is not valid JSON, YAML, XML or .properties")


def _try(
    replace: Callable[[], tuple[str, list[Replacement]]],
) -> tuple[bytes, list[Replacement]] | None:
    try:
        text, replaced = replace()
    except (ValueError, yaml.YAMLError, etree.XMLSyntaxError):
        return None
    return text.encode(), replaced


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StructuredError("structured files must be UTF-8") from exc


def _applies(name: str) -> bool:
    lowered = name.lower()
    return not lowered.startswith("octopus") or lowered.startswith("octopus:")


# --- JSON ----------------------------------------------------------------------------------


def _replace_json(text: str, names: list[str], lookup: Lookup) -> tuple[str, list[Replacement]]:
    document = json.loads(text)
    if not isinstance(document, (dict, list)):
        raise ValueError("not a JSON object or array")
    wanted = {name.lower(): name for name in names if _applies(name)}
    replaced: list[Replacement] = []

    def visit(container: Any, path: str) -> None:
        keys = container.keys() if isinstance(container, dict) else range(len(container))
        for key in list(keys):
            child_path = f"{path}:{key}" if path else str(key)
            name = wanted.get(child_path.lower())
            if name is not None:
                value = lookup(name)
                if value is not None:
                    container[key] = _typed_json(container[key], value)
                    replaced.append(Replacement(child_path, "json"))
                    continue
            if isinstance(container[key], (dict, list)):
                visit(container[key], child_path)

    visit(document, "")
    if not replaced:
        return text, []
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n", replaced


def _typed_json(current: Any, value: str) -> Any:
    if isinstance(current, bool):
        lowered = value.strip().lower()
        return {"true": True, "false": False}.get(lowered, value)
    if isinstance(current, (int, float)):
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                continue
        return value
    if isinstance(current, (dict, list)):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# --- YAML ----------------------------------------------------------------------------------

_PLAIN_TAGS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


def _replace_yaml(text: str, names: list[str], lookup: Lookup) -> tuple[str, list[Replacement]]:
    documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    if not documents or not all(
        isinstance(d, (yaml.MappingNode, yaml.SequenceNode)) for d in documents
    ):
        raise ValueError("not a YAML mapping or sequence")
    wanted = {name.lower(): name for name in names if _applies(name)}
    edits: list[tuple[int, int, str]] = []
    replaced: list[Replacement] = []
    # An alias is the node it names, already in the text once: visiting each node once keeps
    # the edits honest and a file of nested aliases (a "billion laughs") linear.
    visited: set[int] = set()

    def visit(node: yaml.Node, path: str) -> None:
        if id(node) in visited:
            return
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            children = [(str(k.value), v) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            children = [(str(i), v) for i, v in enumerate(node.value)]
        else:
            return
        for key, child in children:
            child_path = f"{path}:{key}" if path else key
            name = wanted.get(child_path.lower())
            value = lookup(name) if name is not None else None
            if value is not None:
                edits.append(
                    (child.start_mark.index, child.end_mark.index, _yaml_text(child, value))
                )
                replaced.append(Replacement(child_path, "yaml"))
            else:
                visit(child, child_path)

    for document in documents:
        visit(document, "")
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text, replaced


def _yaml_text(node: yaml.Node, value: str) -> str:
    if isinstance(node, yaml.ScalarNode):
        if node.style == "'":
            return "'" + value.replace("'", "''") + "'"
        if node.style == '"':
            return json.dumps(value, ensure_ascii=False)
        if node.tag in _PLAIN_TAGS and _plain_tag(value) == node.tag:
            return value
        if (
            node.tag == "tag:yaml.org,2002:str"
            and _plain_tag(value) == node.tag
            and "\n" not in value
        ):
            return value
        return json.dumps(value, ensure_ascii=False)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return json.dumps(value, ensure_ascii=False)
    if not isinstance(parsed, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(parsed, ensure_ascii=False)  # JSON is YAML's flow style


def _plain_tag(value: str) -> str | None:
    """The tag a plain scalar ``value`` would get, or None if it cannot be plain."""
    if not value or value != value.strip():
        return None
    try:
        node = yaml.compose(value, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    if not isinstance(node, yaml.ScalarNode) or node.style not in (None, ""):
        return None
    return str(node.tag)


# --- XML -----------------------------------------------------------------------------------


def _replace_xml(text: str, names: list[str], lookup: Lookup) -> tuple[str, list[Replacement]]:
    parser = etree.XMLParser(remove_blank_text=False, strip_cdata=False, resolve_entities=False)
    root = etree.fromstring(text.encode(), parser)
    namespaces = _namespaces(root)
    replaced: list[Replacement] = []
    for name in names:
        if not name.startswith("/"):
            continue
        try:
            matches = root.getroottree().xpath(name, namespaces=namespaces)
        except etree.XPathError:
            continue
        if not isinstance(matches, list) or not matches:
            continue
        value = lookup(name)
        if value is None:
            continue
        for match in matches:
            if _set_xml(match, value):
                replaced.append(Replacement(name, "xml"))
    if not replaced:
        return text, []
    declaration = re.match(r"\s*<\?xml[^>]*\?>\s*", text)
    body = etree.tostring(root, encoding="unicode")
    return (declaration.group(0) if declaration else "") + body + (
        "\n" if text.endswith("\n") else ""
    ), replaced


def _namespaces(root: etree._Element) -> dict[str, str]:
    """Prefixes declared anywhere in the document; the first declaration of a prefix wins."""
    found: dict[str, str] = {}
    for element in root.iter():
        for prefix, uri in (element.nsmap or {}).items():
            if prefix is not None:
                found.setdefault(prefix, uri)
    return found


def _set_xml(match: Any, value: str) -> bool:
    if isinstance(match, etree._Element):
        if isinstance(match, (etree._Comment, etree._ProcessingInstruction)):
            match.text = value
            return True
        if len(match):
            fragment = etree.fromstring(f"<fragment>{value}</fragment>")
            for child in list(match):
                match.remove(child)
            match.text = fragment.text
            for child in fragment:
                match.append(child)
            return True
        match.text = value
        return True
    if isinstance(match, etree._ElementUnicodeResult):
        parent = match.getparent()
        if parent is None:
            return False
        if match.is_attribute:
            parent.set(str(match.attrname), value)
        elif match.is_tail:
            parent.tail = value
        else:
            parent.text = value
        return True
    return False


# --- .properties ---------------------------------------------------------------------------

_LOGICAL_LINE = re.compile(
    r"(?m)^[ \t\f]*(?![#!])(?=\S)((?:[^\n\\]|\\.)*?(?:\\\n(?:[^\n\\]|\\.)*?)*)$"
)


def _replace_properties(
    text: str, names: list[str], lookup: Lookup
) -> tuple[str, list[Replacement]]:
    wanted = {name: name for name in names if not name.lower().startswith("octopus")}
    replaced: list[Replacement] = []
    edits: list[tuple[int, int, str]] = []
    for match in _LOGICAL_LINE.finditer(text):
        line = match.group(1)
        key_match = re.match(r"((?:[^\s:=\\]|\\.)+)([ \t\f]*[:=]?[ \t\f]*)", line)
        if key_match is None:
            continue
        key = re.sub(r"\\(.)", r"\1", key_match.group(1))
        if key not in wanted:
            continue
        value = lookup(key)
        if value is None:
            continue
        separator = key_match.group(2) or ":"  # a key alone gets a separator
        new_line = key_match.group(1) + separator + _properties_value(value)
        edits.append((match.start(1), match.end(1), new_line))
        replaced.append(Replacement(key, "properties"))
    for start, end, new_line in sorted(edits, reverse=True):
        text = text[:start] + new_line + text[end:]
    return text, replaced


def _properties_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "\\" + escaped if escaped.startswith((" ", "\t")) else escaped
