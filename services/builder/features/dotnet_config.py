""".NET configuration variables, as the deployment server replaces them: in ``*.config``
files, ``appSettings/add[@key]`` takes the variable of that name as its ``value``,
``connectionStrings/add[@name]`` as its ``connectionString``, and
``applicationSettings//setting[@name]`` as its ``<value>`` (created when missing; what was in
it is replaced). Names compare case-insensitively; a variable without a value empties the
setting. A missing attribute is added after the others.

The file is read as the server's XmlReader reads it: line ends normalised to ``\n`` and the
DTD's own entities expanded (an external entity is an error, never fetched). A file something
was replaced in is written back as the server's XmlWriter writes it on Linux: a UTF-8 byte
order mark, the declaration (when the file had one) rewritten as
``<?xml version="1.0" encoding="utf-8"?>``, attributes one space apart in ``"``, escaped as
.NET does, ``<x />`` for an element written empty, CDATA sections kept, every line ending
``\n``, and line breaks and indentation only where the file had none (the whitespace it had
is kept). A file nothing was replaced in is left as it is.

A value is written into every setting that names its variable, so what the values add to a
file is counted against a growth allowance as they are written (a large value and many
settings naming it would otherwise make a file of any size)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from lxml import etree

from services.builder.features.xdt import (
    MAX_GROWTH,
    NODE_COST,
    Document,
    TransformError,
    clark_name,
    elements,
    escape_net,
    is_cdata,
    qualified_name,
    top_level,
)

Lookup = Callable[[str], "str | None"]
_SPACE = " \t\r\n"


# What XML 1.0 cannot hold: control characters but tab, line feed and carriage return;
# surrogates; U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def replace_config_variables(
    content: bytes, names: Iterable[str], lookup: Lookup, *, max_growth: int = MAX_GROWTH
) -> tuple[bytes, list[str]]:
    """The file with matching settings replaced, and the names that replaced something;
    TransformError when the values would add more than ``max_growth`` bytes to it."""
    wanted = {name.lower(): name for name in names}
    document = Document(content, raw_line_ends=False, entities=True)
    tree = document.tree
    replaced: list[str] = []
    left = max_growth

    def value_of(key: str | None, cost: int = 0) -> tuple[str, str] | None:
        nonlocal left
        name = None if key is None else wanted.get(key.lower())
        if name is None:
            return None
        value = lookup(name) or ""  # a variable without a value empties the setting
        if _NOT_XML.search(value):  # the server's XmlWriter refuses it too
            raise TransformError(f"the value of {name} holds a character XML cannot hold")
        left -= len(value) + cost
        if left < 0:
            raise TransformError(
                f"the variables' values would add more than {max_growth} bytes to the file "
                "(a large value in many settings?)"
            )
        return name, value

    for add in elements(tree, "//*[local-name()='appSettings']/*[local-name()='add']"):
        found = value_of(add.get("key"))
        if found is not None:
            add.set("value", found[1])
            replaced.append(found[0])
    for add in elements(tree, "//*[local-name()='connectionStrings']/*[local-name()='add']"):
        found = value_of(add.get("name"))
        if found is not None:
            add.set("connectionString", found[1])
            replaced.append(found[0])
    for setting in elements(
        tree, "//*[local-name()='applicationSettings']//*[local-name()='setting']"
    ):
        values = [c for c in setting if isinstance(c.tag, str) and _local(c) == "value"]
        found = value_of(setting.get("name"), 0 if values else NODE_COST)
        if found is not None:
            element = values[0] if values else etree.SubElement(setting, "value")
            for child in list(element):
                element.remove(child)  # the value replaces all it held
            element.text = found[1]
            document.self_closing.discard(element)
            replaced.append(found[0])
    if not replaced:
        return content, []
    return write_settings(document), replaced


def write_settings(document: Document) -> bytes:
    """The document as the server's XmlWriter (indenting, UTF-8) writes it."""
    return _SettingsWriter(document).write()


class _SettingsWriter:
    """XmlWriter with ``Indent = true`` over a document read with its whitespace: an element
    is put on a new, indented line only while nothing but elements has been written in its
    parent (whitespace or text there turns indenting off, as in the server's writer)."""

    def __init__(self, document: Document) -> None:
        self.document = document
        self.newline = "\n"  # the writer's NewLineChars: Environment.NewLine on Linux
        self.parts: list[str] = []
        self.mixed = False
        self.after_text = True  # nothing written yet counts as text: no indent first
        self.level = 0
        self.scopes: list[dict[str, str]] = [{}]

    def write(self) -> bytes:
        layout = self.document.layout
        if layout is not None and layout.declaration is not None:
            standalone = layout.declaration.get("standalone")
            extra = f' standalone="{standalone}"' if standalone in ("yes", "no") else ""
            self.emit(f'<?xml version="1.0" encoding="utf-8"{extra}?>', text=False)
        self.top_level(layout.prolog if layout else "")
        self.element(self.document.root)
        self.top_level(layout.epilog if layout else "")
        return b"\xef\xbb\xbf" + "".join(self.parts).encode("utf-8")

    def emit(self, chunk: str, *, text: bool) -> None:
        self.parts.append(chunk)
        self.after_text = text

    def indent(self) -> None:
        if not self.mixed and not self.after_text:
            self.emit(self.newline + "  " * self.level, text=False)

    def top_level(self, text: str) -> None:
        for piece in top_level(text):
            if piece.blank:
                self.mixed = True
                self.emit(self.lines(piece.text), text=True)
            else:
                self.indent()
                self.emit(piece.text, text=False)

    def lines(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return text.replace("\n", self.newline) if self.newline != "\n" else text

    def element(self, element: etree._Element) -> None:
        self.indent()
        self.level += 1
        outer = self.mixed
        name = etree.QName(element)
        scope = dict(self.scopes[-1])  # prefix ("" the default) -> namespace
        attributes: list[tuple[str, str]] = []
        written: set[str] = set()
        tag = self.document.tags.get(element)
        for _, qualified, _ in [] if tag is None else tag.attributes:  # the file's order
            if qualified == "xmlns" or qualified.startswith("xmlns:"):
                prefix = qualified[6:]
                scope[prefix] = element.nsmap.get(prefix or None) or ""
                attributes.append((qualified, scope[prefix]))
                continue
            key = clark_name(element, qualified)
            if key in element.attrib and key not in written:
                written.add(key)
                attributes.append((qualified, str(element.attrib[key])))
        uri = name.namespace or ""
        prefix = element.prefix or ""
        if scope.get(prefix, "") != uri:  # an element the feature added, in no namespace
            attributes.append((f"xmlns:{prefix}" if prefix else "xmlns", uri))
            scope[prefix] = uri
        for raw_key, raw_value in element.attrib.items():
            if str(raw_key) not in written:
                attributes.append((qualified_name(element, str(raw_key)), str(raw_value)))
        self.scopes.append(scope)
        tag_name = f"{prefix}:{name.localname}" if prefix else name.localname
        self.emit(f"<{tag_name}", text=False)
        for attribute, value in attributes:
            self.emit(f' {attribute}="{_escape_attribute(value)}"', text=False)
        if self.document.is_empty(element):
            self.emit(" />", text=False)
        else:
            self.emit(">", text=False)
            self.mixed = False if self.level == 1 else outer
            content = False
            if element.text:
                self.text(element.text)
                content = True
            for child in element:
                content = True
                self.node(child)
                if child.tail:
                    self.text(child.tail)
            self.level -= 1
            if not self.mixed and content:
                self.indent()
            self.emit(f"</{tag_name}>", text=False)
            self.level += 1
        self.level -= 1
        self.mixed = outer
        self.scopes.pop()

    def text(self, text: str) -> None:
        self.mixed = True
        self.emit(self.lines(escape_net(text, attribute=False)), text=True)

    def node(self, node: etree._Element) -> None:
        if isinstance(node, etree._Comment):
            self.indent()
            self.emit(f"<!--{node.text or ''}-->", text=False)
        elif is_cdata(node):
            self.mixed = True
            text = self.document.cdata.get(node.text or "", "")
            self.emit(f"<![CDATA[{self.lines(text)}]]>", text=True)
        elif isinstance(node, etree._ProcessingInstruction):
            self.indent()
            data = f" {node.text}" if node.text else ""
            self.emit(f"<?{_text(node.target)}{data}?>", text=False)
        elif isinstance(node, etree._Entity):
            self.mixed = True
            self.emit(f"&{node.name};", text=True)
        else:
            self.element(node)


def _escape_attribute(value: str) -> str:
    return escape_net(value, attribute=True).replace("\t", "&#x9;")


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
