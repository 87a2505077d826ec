"""The .NET-like XML writer: a transformed document written back as the server writes it.

Attributes keep their order, with the whitespace and line breaks between them; values are
re-quoted with ``"`` and escaped as .NET does; ``<x />`` and ``<x></x>`` are kept apart;
elements a transform added are indented like their siblings by the server's formatter; the
encoding (a UTF-8 byte order mark when the declaration names ``utf-8``) is chosen as the
server's writer chooses it. CDATA sections and line ends come back as they were read (see
``document``)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from services.builder.features.xdt.document import (
    XML_SPACE,
    Document,
    after,
    after_doctype,
    attribute_values,
    clark_name,
    is_cdata,
    is_element,
)

_MAX_LINE = 160  # the server's writer breaks an added attribute onto a new line past this


@dataclass(eq=False, slots=True)
class Piece:
    """Text between nodes: whitespace (``blank``) or character data; ``raw`` pieces (the
    declaration, and comments or a DOCTYPE outside the root) are written as they are."""

    text: str
    parent: etree._Element | None
    blank: bool
    raw: bool = False


Item = Any  # an lxml node or a Piece


@dataclass(slots=True)
class _Attributes:
    """The server's record of a start tag: the attribute names in order and the whitespace
    before each ("" for the whitespace before ``>``), updated as attributes come and go."""

    ordered: list[str] = field(default_factory=list)
    leading: dict[str, str] = field(default_factory=dict)
    newline: str | None = None
    one_per_line: bool | None = None


class Formatted:
    """The formatter's view of the transformed document: each element's content as a list
    of items, each element's attribute record, the document's top level."""

    def __init__(self, document: Document, rules: Document) -> None:
        self.document = document
        self.rules = rules
        self.contents: dict[etree._Element, list[Item]] = {}
        self.records: dict[etree._Element, _Attributes] = {}

    def is_new(self, item: Item) -> bool:
        element = item.parent if isinstance(item, Piece) else item
        if element is not None and not is_element(element):
            element = element.getparent()
        return element is not None and element not in self.document.original

    def crlf(self, element: etree._Element) -> bool:
        new = element not in self.document.original
        return self.rules.crlf if new else self.document.crlf

    def content(self, element: etree._Element) -> list[Item]:
        items = self.contents.get(element)
        if items is None:
            items = []
            crlf = self.crlf(element)
            self._piece(items, element.text, element, crlf)
            for child in element:
                items.append(child)
                self._piece(items, child.tail, element, crlf)
            self.contents[element] = items
        return items

    @staticmethod
    def _piece(items: list[Item], text: str | None, parent: etree._Element, crlf: bool) -> None:
        if text:
            text = text.replace("\n", "\r\n") if crlf else text
            items.append(Piece(text, parent, not text.strip(XML_SPACE)))

    def record(self, element: etree._Element) -> _Attributes:
        record = self.records.get(element)
        if record is None:
            record = _Attributes()
            tag = self.document.tags.get(element)
            if tag is not None:
                for leading, name, _ in tag.attributes:
                    record.ordered.append(name)
                    record.leading[name] = leading
                if tag.trailing:
                    record.leading[""] = tag.trailing
            self.records[element] = record
        return record

    def attributes(self, element: etree._Element) -> list[tuple[str, str]]:
        """The element's attributes as the server holds them (namespace declarations among
        them), in its order: the start tag's, then those added since; (name, value)."""
        tag = self.document.tags.get(element)
        current = attribute_values(element)
        readded = self.document.prefixes.get(element, {})  # appended by a transform since
        listed: list[tuple[str, str]] = []
        if tag is not None:
            nsmap: dict[str | None, str] | None = None  # built once: lxml walks to make it
            for _, name, raw in tag.attributes:
                if name == "xmlns" or name.startswith("xmlns:"):
                    nsmap = element.nsmap if nsmap is None else nsmap
                    uri = nsmap.get(name[6:] or None)
                    if uri is not None:
                        listed.append((name, _server_value(raw, uri)))
                    continue
                key = clark_name(element, name)
                if key in current and key not in readded:
                    listed.append((name, _server_value(raw, current.pop(key))))
        name_of = self.document.attribute_name
        listed.extend((name_of(element, key), value) for key, value in current.items())
        return listed

    def attribute_namespace(self, element: etree._Element, prefix: str) -> str | None:
        """The namespace an attribute prefix of ``element`` stands for."""
        for key, given in self.document.prefixes.get(element, {}).items():
            if given == prefix:
                return etree.QName(key).namespace
        return element.nsmap.get(prefix)


_REFERENCE = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|quot|apos);")


def _server_value(raw: str, value: str) -> str:
    """The value as the server read it: the same as lxml's, but with the tabs and line
    breaks written literally in it kept (the server's reader does not normalise them)."""
    if "&" in raw and _REFERENCE.sub("", raw).count("&"):
        return value  # an entity lxml knew from a DTD
    literal = _REFERENCE.sub(_dereference, raw)
    normalised = _REFERENCE.sub(
        _dereference, re.sub(r"[\t\n]", " ", raw.replace("\r\n", "\n").replace("\r", "\n"))
    )
    return literal if normalised == value else value


def _dereference(match: re.Match[str]) -> str:
    name = match.group(1)
    if name.startswith("#x"):
        return chr(int(name[2:], 16))
    if name.startswith("#"):
        return chr(int(name[1:]))
    return {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}[name]


class _Formatter:
    """The server's formatter, run before it writes a transformed document: whitespace runs
    left adjacent by a removal become one, and nodes a transform added are indented like
    their siblings (and their content one step further)."""

    def __init__(self, layout: Formatted) -> None:
        self.layout = layout
        self.indents: list[str] = []
        self.attribute_indents: list[str | None] = []
        self.indent: str | None = ""
        self.attribute_indent: str | None = None
        self.tab: str | None = None
        self.current: Item = None
        self.previous: Item = None
        self.parents: dict[int, list[Item]] = {}

    def visit(self, node: Item) -> None:
        self.previous, self.current = self.current, node

    def loop(self, items: list[Item], parent: etree._Element | None) -> None:
        index = 0
        while index < len(items):
            node = items[index]
            self.visit(node)
            if isinstance(node, Piece):
                if node.blank and not node.raw:
                    index += self.whitespace(node, items)
            elif is_element(node):
                index += self.element(node, items)
            elif isinstance(node, etree._Comment):
                index += self.ensure_indent(node, items, before_end=False)
            index += 1

    def element(self, node: etree._Element, siblings: list[Item]) -> int:
        change = self.ensure_indent(node, siblings, before_end=False)
        self.update_attributes(node, siblings)
        self.push(siblings)
        items = self.layout.content(node)
        self.reorder_new_items_at_end(node, items)
        self.loop(items, node)
        self.visit(node)
        self.pop()
        if not self.layout.document.is_empty(node):
            self.ensure_indent(node, items, before_end=True, siblings=siblings)
        return change

    def whitespace(self, node: Piece, items: list[Item]) -> int:
        change = 0
        previous = self.previous
        if isinstance(previous, Piece) and previous.blank and not previous.raw:
            removed = previous
            if _last_newline(node.text) < 0 and _last_newline(previous.text) >= 0:
                removed = node
            _remove_item(items, removed)
            change = -1
        indent = _indent_of(node.text)
        if indent is not None and (self.indent is None or self.indent != indent):
            self.indent = indent
            self.tab = None
            self.attribute_indent = None
        return change

    def ensure_indent(
        self, node: Item, items: list[Item], *, before_end: bool, siblings: list[Item] | None = None
    ) -> int:
        previous = self.previous
        if isinstance(previous, Piece) and not previous.raw:
            return 0  # whitespace or text before it
        if not (
            self.layout.is_new(node) or (previous is not None and self.layout.is_new(previous))
        ):
            return 0
        parent = node if before_end else _parent_of(node)
        piece = Piece(self.current_indent(items if siblings is None else siblings), parent, True)
        if before_end:
            items.append(piece)
            return 0
        items.insert(_index_of(items, node), piece)
        return 1

    def current_indent(self, siblings: list[Item]) -> str:
        if self.indent is None:
            self.indent = _look_ahead(siblings) or (self.indents[-1] + self.one_tab())
        return self.indent

    def one_tab(self) -> str:
        if self.tab is None:
            indents = self.indents
            index = len(indents) - 1
            while index > 0:
                if indents[index].startswith(indents[index - 1]):
                    self.tab = indents[index][len(indents[index - 1]) :]
                    return self.tab
                index -= 1
            self.tab = _indent_to_tab(indents[0] if indents else "")
        return self.tab

    def push(self, siblings: list[Item]) -> None:
        self.indents.append(self.current_indent(siblings))
        self.indent = None
        self.attribute_indents.append(self.attribute_indent)
        self.attribute_indent = None

    def pop(self) -> None:
        self.indent = self.indents.pop()
        self.attribute_indent = self.attribute_indents.pop()

    def reorder_new_items_at_end(self, node: etree._Element, items: list[Item]) -> None:
        if self.layout.is_new(node) or not items:
            return
        last = items[-1]
        if isinstance(last, Piece) and last.blank:
            return
        index = len(items) - 1
        while index >= 0:
            item = items[index]
            if isinstance(item, Piece) and item.blank:
                items.append(items.pop(index))
                return
            if isinstance(item, etree._Element) and is_element(item) and self.layout.is_new(item):
                index -= 1
                continue
            return

    def update_attributes(self, node: etree._Element, siblings: list[Item]) -> None:
        record = self.layout.record(node)
        updated = [name for name, _ in self.layout.attributes(node)]
        if not updated:
            if record.ordered:
                record.leading.clear()
                record.ordered.clear()
            return
        exists = dict.fromkeys(record.ordered, False)
        for name in updated:
            if name not in exists:
                record.ordered.append(name)
            exists[name] = True
        first = True
        keep: str | None = None
        for key in record.ordered:
            present = exists[key]
            if not present:
                if key in record.leading:
                    space = record.leading.pop(key)
                    if first:
                        keep = space if keep is None else keep
                    elif "\n" in space:
                        keep = space
            elif keep is not None:
                if first or key not in record.leading or "\n" not in record.leading[key]:
                    record.leading[key] = keep
                keep = None
            elif key not in record.leading:
                if first:
                    record.leading[key] = " "
                elif self.one_per_line(record):
                    record.leading[key] = self.newline(record, node, siblings)
                else:
                    self.newline(record, node, siblings)
            first = first and not present

    @staticmethod
    def one_per_line(record: _Attributes) -> bool:
        if record.one_per_line is None:
            record.one_per_line = False
            if len(record.leading) > 1:
                record.one_per_line = all(
                    name not in record.leading or "\n" in record.leading[name]
                    for name in record.ordered[1:]
                )
        return record.one_per_line

    def newline(self, record: _Attributes, node: etree._Element, siblings: list[Item]) -> str:
        if record.newline is None:
            record.newline = _first_newline(record) or self.attribute_indent_for(node, siblings)
        return record.newline

    def attribute_indent_for(self, node: etree._Element, siblings: list[Item]) -> str:
        if self.attribute_indent is None:
            self.attribute_indent = self.sibling_attribute_indent(node, siblings) or (
                self.current_indent(siblings) + self.one_tab()
            )
        return self.attribute_indent

    def sibling_attribute_indent(self, node: etree._Element, siblings: list[Item]) -> str | None:
        """The line break and indent between a sibling's attributes: the nearest before
        ``node`` that has one, else the first after it."""
        found: str | None = None
        before = True
        for item in siblings:
            if item is node:
                before = False
            elif isinstance(item, etree._Element) and is_element(item):
                record = self.layout.record(item)
                found = record.newline or _first_newline(record)
                if found is not None:
                    record.newline = found
            if not before and found is not None:
                return found
        return None


def _first_newline(record: _Attributes) -> str | None:
    return next((space for space in record.leading.values() if "\n" in space), None)


def _parent_of(node: Item) -> etree._Element | None:
    return node.parent if isinstance(node, Piece) else node.getparent()


def _index_of(items: list[Item], node: Item) -> int:
    return next(index for index, item in enumerate(items) if item is node)


def _remove_item(items: list[Item], node: Item) -> None:
    del items[_index_of(items, node)]


def _look_ahead(siblings: list[Item]) -> str | None:
    for item in siblings[:-1]:
        if isinstance(item, Piece) and item.blank and not item.raw:
            indent = _indent_of(item.text)
            if indent is not None:
                return indent
    return None


def _last_newline(space: str) -> int:
    for index in range(len(space) - 1, -1, -1):
        char = space[index]
        if char == "\r":
            return index
        if char == "\n":
            return index - 1 if index > 0 and space[index - 1] == "\r" else index
        if char not in " \t":
            return -1
    return -1


def _indent_of(space: str) -> str | None:
    index = _last_newline(space)
    return space[index:] if index >= 0 else None


def _indent_to_tab(indent: str) -> str:
    for index in range(len(indent) - 1):
        if indent[index] not in "\r\n":
            return indent[index + 1 :]
    return "\t"


class _Output:
    """The server's text writer: it drops the space it would write before ``/>`` (and the
    last of any spaces written just before a ``/>``), breaks an attribute that would end
    past column 160 onto a new line, and counts columns for that."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = ""  # spaces and slashes held back, starting with a space
        self.column = 1
        self.newline = "\r\n"

    def write(self, text: str) -> None:
        position = 0
        while position < len(text):
            if self.pending:
                held = _HELD.match(text, position)
                assert held is not None  # [ /]* matches the empty string
                self.pending += held.group()
                position = held.end()
                if position == len(text):
                    return
                if text[position] == ">" and self.pending.endswith(" /"):
                    cut = self.pending.rfind(" ")
                    self.pending = self.pending[:cut] + self.pending[cut + 1 :]
                self._really(self.pending)
                self.pending = ""
            space = text.find(" ", position)
            if space < 0:
                self._really(text[position:])
                return
            self._really(text[position:space])
            self.pending = " "
            position = space + 1

    def attribute(self, leading: str | None, text: str) -> None:
        if self.pending:  # not after an element's name or an attribute, where it is used
            self._really(self.pending)
            self.pending = ""
        if leading is None:
            leading = self.newline if self.column + len(text) + 1 > _MAX_LINE else " "
        self._really(leading + text)

    def _really(self, text: str) -> None:
        if not text:
            return
        self.parts.append(text)
        newline = text.rfind("\n")
        self.column = len(text) - newline if newline >= 0 else self.column + len(text)

    def text(self) -> str:
        if self.pending:
            self._really(self.pending)
            self.pending = ""
        return "".join(self.parts)


_HELD = re.compile(r"[ /]*")
_CONTENT_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_ATTRIBUTE_ESCAPES = {**_CONTENT_ESCAPES, '"': "&quot;", "\n": "&#xA;", "\r": "&#xD;"}


def escape_net(text: str, *, attribute: bool) -> str:
    """``text`` escaped as .NET's XmlTextWriter escapes it."""
    table = _ATTRIBUTE_ESCAPES if attribute else _CONTENT_ESCAPES
    out = []
    for char in text:
        escaped = table.get(char)
        if escaped is not None:
            out.append(escaped)
        elif char < " " and char not in "\t\n\r":
            out.append(f"&#x{ord(char):X};")
        else:
            out.append(char)
    return "".join(out)


class _Writer:
    """Writes the formatted document as XmlAttributePreservingWriter over XmlTextWriter."""

    def __init__(self, layout: Formatted, output: _Output) -> None:
        self.layout = layout
        self.out = output
        self.scopes: list[dict[str, str]] = [{}]  # prefix ("" the default) -> namespace

    def lookup_prefix(self, uri: str) -> str | None:
        shadowed: set[str] = set()
        for scope in reversed(self.scopes):
            for prefix, bound in scope.items():
                if prefix in shadowed:
                    continue
                if bound == uri:
                    return prefix
            shadowed.update(scope)
        return None

    def lookup_uri(self, prefix: str) -> str | None:
        for scope in reversed(self.scopes):
            if prefix in scope:
                return scope[prefix]
        return "" if prefix == "" else None

    def node(self, item: Item) -> None:
        if isinstance(item, Piece):
            if item.raw or item.blank:
                self.out.write(item.text)
            else:
                self.out.write(escape_net(item.text, attribute=False))
        elif is_element(item):
            self.element(item)
        elif isinstance(item, etree._Comment):
            self.out.write(f"<!--{item.text or ''}-->")
        elif is_cdata(item):
            key = item.text or ""
            text = self.layout.document.cdata.get(key, self.layout.rules.cdata.get(key, ""))
            self.out.write(f"<![CDATA[{text}]]>")
        elif isinstance(item, etree._ProcessingInstruction):
            target = item.target.decode() if isinstance(item.target, bytes) else item.target
            self.out.write(f"<?{target} {item.text or ''}?>")
        elif isinstance(item, etree._Entity):
            self.out.write(f"&{item.name};")

    def element(self, element: etree._Element) -> None:
        name = etree.QName(element)
        attributes = self.layout.attributes(element)
        declared: dict[str, str] = {}
        for qualified, value in attributes:
            if qualified == "xmlns":
                declared[""] = value
            elif qualified.startswith("xmlns:"):
                declared[qualified[6:]] = value
        self.scopes.append(dict(declared))
        uri = name.namespace or ""
        automatic: list[tuple[str, str]] = []
        if uri:
            found = self.lookup_prefix(uri)
            prefix = element.prefix or "" if found is None else found
            if found is None:
                self.scopes[-1][prefix] = uri
                automatic.append((prefix, uri))
        else:
            prefix = ""
            if self.lookup_uri(""):
                self.scopes[-1][""] = ""
                automatic.append(("", ""))
        for qualified, _ in attributes:
            attribute_prefix, _, _ = qualified.rpartition(":")
            if attribute_prefix and attribute_prefix not in ("xmlns", "xml"):
                attribute_uri = self.layout.attribute_namespace(element, attribute_prefix)
                if attribute_uri and self.lookup_uri(attribute_prefix) != attribute_uri:
                    self.scopes[-1][attribute_prefix] = attribute_uri
                    automatic.append((attribute_prefix, attribute_uri))
        qualified_name = f"{prefix}:{name.localname}" if prefix else name.localname
        self.out.write(f"<{qualified_name}")
        record = self.layout.record(element)
        if attributes:
            saved = self.out.newline
            if record.newline is not None:
                self.out.newline = record.newline
            values = dict(attributes)
            for key in record.ordered:
                if key in values:
                    text = f'{key}="{escape_net(values[key], attribute=True)}"'
                    self.out.attribute(record.leading.get(key), text)
            self.out.newline = saved
        # the server's writer declares what it had to add last first, the default namespace last
        prefixed = [pair for pair in automatic if pair[0]]
        default = [pair for pair in automatic if not pair[0]]
        for declared_prefix, declared_uri in [*reversed(prefixed), *default]:
            attribute = f"xmlns:{declared_prefix}" if declared_prefix else "xmlns"
            self.out.attribute(" ", f'{attribute}="{escape_net(declared_uri, attribute=True)}"')
        if attributes and "" in record.leading:
            self.out.write(record.leading[""])
        if self.layout.document.is_empty(element):
            self.out.write(" />")
        else:
            self.out.write(">")
            for item in self.layout.content(element):
                self.node(item)
            self.out.write(f"</{qualified_name}>")
        self.scopes.pop()


def write_transformed(document: Document, rules: Document) -> bytes:
    """The document as the server saves it after a transform."""
    layout = Formatted(document, rules)
    top: list[Item] = []
    source = document.layout
    if source is not None and source.declaration is not None:
        top.append(Piece(_declaration(source.declaration), None, False, raw=True))
    top.extend(top_level(source.prolog if source else ""))
    if not document.root_removed:
        top.append(document.root)
    top.extend(top_level(source.epilog if source else ""))
    _Formatter(layout).loop(top, None)
    output = _Output()
    writer = _Writer(layout, output)
    for item in top:
        writer.node(item)
    return _encode(output.text(), document)


def _declaration(values: dict[str, str]) -> str:
    text = f'<?xml version="{values.get("version", "1.0")}"'
    if values.get("encoding"):
        text += f' encoding="{values["encoding"]}"'
    if values.get("standalone"):
        text += f' standalone="{values["standalone"]}"'
    return text + "?>"


_BLANK = re.compile(r"[ \t\r\n]+")


def top_level(text: str) -> Iterator[Piece]:
    """Whitespace, comments, processing instructions and a DOCTYPE outside the root."""
    position = 0
    while position < len(text):
        blank = _BLANK.match(text, position)
        if blank is not None:
            yield Piece(blank.group(), None, True)
            position = blank.end()
            continue
        if text.startswith("<!--", position):
            end = after(text, "-->", position + 4)
        elif text.startswith("<?", position):
            end = after(text, "?>", position + 2)
        elif text.startswith("<!", position):
            end = after_doctype(text, position)
        else:
            end = -1
        if end < 0:
            yield Piece(text[position:], None, False, raw=True)
            return
        yield Piece(text[position:end], None, False, raw=True)
        position = end


def _encode(text: str, document: Document) -> bytes:
    """In the encoding the server's writer picks: the byte order mark's, else the one the
    declaration names (UTF-8 and UTF-16 with a byte order mark), else UTF-8 without one."""
    if document.bom:
        codec = {codecs.BOM_UTF8: "utf-8"}.get(document.bom)
        if codec is None:
            codec = "utf-16-le" if document.bom == codecs.BOM_UTF16_LE else "utf-16-be"
        return document.bom + text.encode(codec, errors="replace")
    declared = (document.declared_encoding or "").strip().lower()
    if not declared:
        return text.encode("utf-8")
    if declared in ("utf-8", "utf8"):
        return codecs.BOM_UTF8 + text.encode("utf-8")
    if declared in ("utf-16", "unicode", "utf-16le"):
        return codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    try:
        return text.encode(declared, errors="replace")
    except LookupError:
        return text.encode("utf-8")
