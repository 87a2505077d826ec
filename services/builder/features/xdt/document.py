"""The documents a transform reads: each parsed by lxml, with what lxml does not keep read
from the source text beside it (every start tag as written, which elements closed
themselves, the declaration, byte order mark and what surrounds the root element), since
the server writes all of that back as it found it.

The server's transform reader keeps CDATA sections and does not normalise line ends, where
lxml would make both plain text and ``\n``: the text lxml parses has each CDATA section
replaced by a ``CDATA_TARGET`` instruction (its content kept in ``Document.cdata``) and each
carriage return in character data written as a character reference."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any

from lxml import etree

XDT = "http://schemas.microsoft.com/XML-Document-Transform"
TRANSFORM = f"{{{XDT}}}Transform"
LOCATOR = f"{{{XDT}}}Locator"
SUPPRESS_WARNINGS = f"{{{XDT}}}SupressWarnings"  # sic: the server's spelling

XML_SPACE = " \t\r\n"


class TransformError(ValueError):
    """The transform cannot be applied: bad syntax, or it selects nothing it must."""


class XmlInvalid(TransformError):
    """A document (the file or the transform) is not well-formed XML: the server fails to
    load it, which ``Octopus.Action.Package.IgnoreConfigTransformationErrors`` (for
    transforms) and ``...IgnoreVariableReplacementErrors`` (for variables) make a warning."""


CDATA_TARGET = "spacedock-cdata"  # a CDATA section stands in the tree as this instruction


def parse_xml(content: bytes, *, expand_entities: bool = False) -> etree._ElementTree:
    """``content`` parsed without network access; entity references are kept as nodes, or
    expanded (the DTD's own entities only: an external one is an error)."""
    resolve: Any = "internal" if expand_entities else False  # lxml's stubs know only bool
    parser = etree.XMLParser(
        remove_blank_text=False, resolve_entities=resolve, no_network=True, load_dtd=False
    )
    try:
        return etree.ElementTree(etree.fromstring(content, parser))
    except etree.XMLSyntaxError as exc:
        raise XmlInvalid(f"not well-formed XML: {exc}") from exc


@dataclass(slots=True)
class StartTag:
    """One start tag as written: each attribute's name, the whitespace before it and its
    raw value, the whitespace before ``>``, and whether it closed itself."""

    attributes: list[tuple[str, str, str]]  # (leading whitespace, qualified name, raw value)
    trailing: str
    self_closing: bool


@dataclass(slots=True)
class Layout:
    """The source text around the elements: the declaration, what comes before and after the
    root element (lxml keeps no whitespace there), every start tag in document order,
    whether lines end with CR LF throughout, and the CDATA sections in order.

    ``prepared`` is the text after the declaration with each CDATA section replaced by a
    ``CDATA_TARGET`` instruction naming its index, and each carriage return in character
    data written ``&#13;``: lxml then keeps both, as the server's reader does (it does not
    normalise line ends), where it would otherwise turn them into plain text and ``\n``."""

    declaration: dict[str, str] | None
    prolog: str  # after the declaration, before the root's start tag
    epilog: str  # after the root's end tag
    tags: list[StartTag]
    crlf: bool
    prepared: str
    cdata: list[str]


_NAME = re.compile(r"<([^\s/>]+)")
_ATTRIBUTE = re.compile(r"(\s+)([^\s=/>]+)\s*=\s*(\"[^\"]*\"|'[^']*')")
_TAG_END = re.compile(r"(\s*)(/?)>")
_DECLARATION = re.compile(r"<\?xml(\s[^?]*)?\?>")
_PSEUDO_ATTRIBUTE = re.compile(r"([A-Za-z]+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


def decode_source(content: bytes) -> tuple[str, str | None, bytes]:
    """The document's text, the encoding its declaration names, and its byte order mark."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if content.startswith(bom):
            text = content[len(bom) :].decode(codec, errors="replace")
            return text, _declared_encoding(text), bom
    head = content[:200].decode("latin-1")
    declared = _declared_encoding(head)
    try:
        text = content.decode(declared or "utf-8", errors="replace")
    except LookupError:
        text = content.decode("utf-8", errors="replace")
    return text, declared, b""


def _declared_encoding(text: str) -> str | None:
    match = _DECLARATION.match(text)
    if match is None:
        return None
    return _pseudo_attributes(match.group(1) or "").get("encoding")


def _pseudo_attributes(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) or m.group(3) or "" for m in _PSEUDO_ATTRIBUTE.finditer(text)}


def scan(text: str, *, escape_cr: bool = True) -> Layout | None:
    """The layout of well-formed ``text`` (lxml has read it), or None when a construct this
    simple reader does not know is met: the document is then written without it. Every step
    moves forward, so the scan is linear in the text."""
    declaration = None
    position = 0
    match = _DECLARATION.match(text)
    if match is not None:
        declaration = _pseudo_attributes(match.group(1) or "")
        position = match.end()
    tags: list[StartTag] = []
    prepared: list[str] = []
    cdata: list[str] = []
    depth = 0
    root_start = root_end = -1
    while True:
        opening = text.find("<", position)
        if opening < 0:
            break
        run = text[position:opening]
        prepared.append(run.replace("\r", "&#13;") if depth > 0 and escape_cr else run)
        markup = opening
        if text.startswith("<!--", opening):
            position = after(text, "-->", opening + 4)
        elif text.startswith("<![CDATA[", opening):
            position = after(text, "]]>", opening + 9)
            if position > 0:
                prepared.append(f"<?{CDATA_TARGET} {len(cdata)}?>")
                cdata.append(text[opening + 9 : position - 3])
                markup = -1
        elif text.startswith("<?", opening):
            position = after(text, "?>", opening + 2)
        elif text.startswith("<!", opening):
            position = after_doctype(text, opening)
        elif text.startswith("</", opening):
            position = after(text, ">", opening + 2)
            depth -= 1
            if depth == 0:
                root_end = position
        else:
            name = _NAME.match(text, opening)
            if name is None:
                return None
            position = name.end()
            attributes = []
            while (attribute := _ATTRIBUTE.match(text, position)) is not None:
                leading, qualified, quoted = attribute.groups()
                attributes.append((leading, qualified, quoted[1:-1]))
                position = attribute.end()
            end = _TAG_END.match(text, position)
            if end is None:
                return None
            position = end.end()
            if depth == 0:
                root_start = opening
            tags.append(StartTag(attributes, end.group(1), bool(end.group(2))))
            if end.group(2):
                if depth == 0:
                    root_end = position
            else:
                depth += 1
        if position < 0:
            return None
        if markup >= 0:
            prepared.append(text[markup:position])
        if root_end >= 0 and depth == 0 and root_start >= 0 and position >= root_end:
            break
    if root_start < 0 or root_end < 0:
        return None
    prepared.append(text[position:])
    prolog_start = match.end() if match is not None else 0
    newlines = text.count("\n")
    return Layout(
        declaration,
        text[prolog_start:root_start],
        text[root_end:],
        tags,
        crlf=newlines > 0 and text.count("\r\n") == newlines,
        prepared="".join(prepared),
        cdata=cdata,
    )


def after(text: str, end: str, start: int) -> int:
    """The position just past ``end`` found from ``start``, or -1."""
    found = text.find(end, start)
    return -1 if found < 0 else found + len(end)


def after_doctype(text: str, start: int) -> int:
    """The position just past the DOCTYPE at ``start`` (quotes and its subset skipped), or -1."""
    quote = ""
    brackets = 0
    for position in range(start + 2, len(text)):
        char = text[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "[":
            brackets += 1
        elif char == "]":
            brackets -= 1
        elif char == ">" and brackets <= 0:
            return position + 1
    return -1


class Document:
    """A parsed document with what the writers need beside lxml's tree: each original
    element's start tag, which elements were written ``<x/>``, and the layout around the
    root. Elements added later (not ``original``) are new to the formatter."""

    def __init__(
        self, content: bytes, *, key: str = "d", raw_line_ends: bool = True, entities: bool = False
    ) -> None:
        """``key`` names this document's CDATA sections apart from another's (a transform
        copies its own into the target); ``raw_line_ends`` keeps carriage returns in
        character data as the server's transform reader does; ``entities`` expands entity
        references as the server's configuration-variable reader does."""
        self.tree = parse_xml(content, expand_entities=entities)
        text, self.declared_encoding, self.bom = decode_source(content)
        self.layout = scan(text, escape_cr=raw_line_ends)
        self.cdata: dict[str, str] = {}
        self.raw_line_ends = False
        if self.layout is not None and _can_prepare(text):
            wanted_cr = raw_line_ends and "\r" in text
            if self.layout.cdata or wanted_cr:
                prepared = self.layout.prepared.encode("utf-8")
                self.tree = parse_xml(prepared, expand_entities=entities)
                self.raw_line_ends = wanted_cr
                for node in self.tree.getroot().iter(etree.ProcessingInstruction):
                    if is_cdata(node):
                        index = int(node.text or "0")
                        node.text = f"{key}{index}"
                        self.cdata[node.text] = self.layout.cdata[index]
        elements = [e for e in self.tree.getroot().iter() if is_element(e)]
        self.original: set[etree._Element] = set(elements)
        self.tags: dict[etree._Element, StartTag] = {}
        self.self_closing: set[etree._Element] = set()
        if self.layout is not None and len(self.layout.tags) == len(elements):
            for element, tag in zip(elements, self.layout.tags, strict=True):
                self.tags[element] = tag
                if tag.self_closing:
                    self.self_closing.add(element)
        else:
            self.layout = None
            self.self_closing.update(e for e in elements if len(e) == 0 and e.text is None)
        self.root_removed = False
        # the prefix a transform gave an attribute it added: element -> Clark name -> prefix
        self.prefixes: dict[etree._Element, dict[str, str]] = {}
        # lines to end with CR LF again, where lxml has made them "\n"
        self.crlf = self.layout is not None and self.layout.crlf and not self.raw_line_ends

    def attribute_name(self, element: etree._Element, key: str) -> str:
        """The qualified name the attribute ``key`` (a Clark name) is written with."""
        prefix = self.prefixes.get(element, {}).get(key)
        if prefix is not None:
            return f"{prefix}:{etree.QName(key).localname}"
        return qualified_name(element, key)

    def attribute_names(self, element: etree._Element) -> dict[str, str]:
        """The element's attributes by qualified name (as its start tag wrote them, or as
        they were added), each to its Clark name."""
        names: dict[str, str] = {}
        tag = self.tags.get(element)
        present = [str(key) for key in element.attrib]  # lxml's "in" walks them each time
        held = set(present)
        for _, qualified, _ in [] if tag is None else tag.attributes:
            key = clark_name(element, qualified)
            if key in held:
                names.setdefault(qualified, key)
        listed = set(names.values())
        for key in present:
            if key not in listed:
                names.setdefault(self.attribute_name(element, key), key)
        return names

    def cdata_length(self, element: etree._Element) -> int:
        """The characters of the CDATA sections inside ``element``."""
        nodes = element.iter(etree.ProcessingInstruction)
        return sum(len(self.cdata.get(node.text or "", "")) for node in nodes if is_cdata(node))

    @property
    def root(self) -> etree._Element:
        return self.tree.getroot()

    def is_empty(self, element: etree._Element) -> bool:
        """Written ``<x />``: it was so written, and nothing has been put in it since."""
        return element in self.self_closing and len(element) == 0 and not element.text


def _can_prepare(text: str) -> bool:
    """The text was decoded without loss and holds no instruction of our own already."""
    return "\ufffd" not in text and CDATA_TARGET not in text


def is_cdata(node: Any) -> bool:
    """A CDATA section, as ``Document`` keeps it in the tree."""
    return isinstance(node, etree._ProcessingInstruction) and node.target == CDATA_TARGET


def is_element(node: Any) -> bool:
    """An element, not a comment or processing instruction (whose tag is not a string)."""
    return isinstance(node.tag, str)


def elements(context: etree._Element | etree._ElementTree, path: str) -> list[etree._Element]:
    try:
        result = context.xpath(path)
    except etree.XPathError as exc:
        raise TransformError(f"invalid XPath {path!r}: {exc}") from exc
    if not isinstance(result, list):
        return []
    return [item for item in result if isinstance(item, etree._Element)]


def attribute_values(element: etree._Element) -> dict[str, str]:
    """The element's attributes by Clark name, in order, read in one pass: lxml's own
    ``attrib.items()`` (and ``get``) finds each value by walking the attributes."""
    found = element.xpath("@*")
    assert isinstance(found, list)
    return {str(item.attrname): str(item) for item in found}  # type: ignore[union-attr]


def clark_name(element: etree._Element, qualified: str) -> str:
    prefix, _, local = qualified.rpartition(":")
    if not prefix:
        return qualified
    if prefix == "xml":
        return f"{{http://www.w3.org/XML/1998/namespace}}{local}"
    uri = element.nsmap.get(prefix)
    return qualified if uri is None else f"{{{uri}}}{local}"


def qualified_name(element: etree._Element, key: str) -> str:
    if not key.startswith("{"):
        return key
    uri, _, local = key[1:].partition("}")
    if uri == "http://www.w3.org/XML/1998/namespace":
        return f"xml:{local}"
    prefixes = [p for p, u in element.nsmap.items() if u == uri and p]
    return f"{prefixes[0]}:{local}" if prefixes else local
