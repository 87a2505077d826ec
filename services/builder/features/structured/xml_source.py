"""What lxml's tree forgets about an XML file and the server's writes back.

The server's XML reader keeps things libxml2 folds away: the order of an element's
attributes and namespace declarations, whether it was written ``<e/>``, CDATA sections
beside text (libxml2 merges them into the text), attribute values exactly as written (no
white-space normalisation, entity references kept) and the DOCTYPE's internal subset. They
are read here from the source text, with a light scan of its markup, and matched to the
tree's elements by document order; when the two disagree (entities that expand to
elements would make them), nothing is recorded and the tree's view is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

Segments = list[tuple[bool, str]]  # (is CDATA, text) in document order
XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"

_MARKUP = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>|<!DOCTYPE(?:[^\[>]|\[.*?\])*>"
    r"|</[^>]*>|<([^\s/>!?]+)((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>",
    re.DOTALL,
)
_ATTRIBUTE = re.compile(r"""([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REFERENCE = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|[^\s;&]+);")
_PREDEFINED = {"lt": "<", "gt": ">", "amp": "&", "apos": "'", "quot": '"'}


@dataclass(slots=True)
class ElementSource:
    """An element as the source wrote it."""

    attributes: list[str]  # names in order, namespace declarations among them
    raw_values: dict[str, str]  # each attribute's value as written between its quotes
    empty: bool  # written <e/>
    cdata: bool = False  # its content is one CDATA section (white space aside)
    text_segments: Segments | None = None  # its text, when CDATA is part of it
    tail_segments: Segments | None = None  # the text after it, when CDATA is part of it
    read_values: dict[str, str] = field(default_factory=dict)  # attributes as first read


def element_sources(text: str, root: etree._Element) -> dict[etree._Element, ElementSource]:
    """The source of each element of ``root``'s tree, read from ``text``."""
    found: list[ElementSource] = []
    open_elements: list[tuple[ElementSource, int]] = []
    owner: tuple[ElementSource, str] | None = None  # whose text or tail is being read
    segments: Segments | None = None
    position = 0

    def close() -> None:
        if owner is not None and segments and any(is_cdata for is_cdata, _ in segments):
            setattr(owner[0], f"{owner[1]}_segments", segments)

    for match in _MARKUP.finditer(text):
        run = text[position : match.start()]
        position = match.end()
        if run and segments is not None:
            decoded = decode_references(run)
            segments = None if decoded is None else [*segments, (False, _lines(decoded))]
        token = match.group(0)
        if token.startswith("<![CDATA["):
            if segments is not None:
                segments.append((True, _lines(token[9:-3])))
            continue
        close()
        owner, segments = None, None
        if match.group(1):
            pairs = _ATTRIBUTE.findall(match.group(2))
            source = ElementSource(
                [name for name, _, _ in pairs],
                {name: double or single for name, double, single in pairs},
                bool(match.group(3)),
            )
            found.append(source)
            owner, segments = (source, "tail" if source.empty else "text"), []
            if not source.empty:
                open_elements.append((source, match.end()))
        elif token.startswith("</") and open_elements:
            source, start = open_elements.pop()
            inner = text[start : match.start()].strip(" \t\r\n")
            source.cdata = (
                inner.startswith("<![CDATA[")
                and inner.endswith("]]>")
                and inner.count("<![CDATA[") == 1
            )
            owner, segments = (source, "tail"), []
    close()
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    if len(elements) != len(found):
        return {}
    sources = dict(zip(elements, found, strict=True))
    maps = NamespaceMaps(sources)
    for element, source in sources.items():
        values = attribute_values(element)
        for name in source.attributes:
            value = values.get(attribute_key(element, name, maps.of(element)))
            if value is not None:
                source.read_values[name] = value
    return sources


class NamespaceMaps:
    """Each element's namespaces in scope, as lxml's ``nsmap`` gives them, built once for
    each element that declares some: lxml builds the map again at each call, from every
    ancestor's declarations, and an element read from the source that declares none has
    its parent's."""

    def __init__(self, sources: dict[etree._Element, ElementSource]) -> None:
        self.sources = sources
        self.maps: dict[etree._Element, dict[str | None, str]] = {}

    def of(self, element: etree._Element) -> dict[str | None, str]:
        pending: list[etree._Element] = []
        node: etree._Element | None = element
        found: dict[str | None, str] | None = None
        while node is not None:
            found = self.maps.get(node)
            if found is not None:
                break
            pending.append(node)
            source = self.sources.get(node)
            parent = node.getparent()
            if parent is None or source is None or _declares(source):
                found = node.nsmap or {}
                self.maps[node] = found
                pending.pop()
                break
            node = parent
        assert found is not None
        for inheriting in pending:
            self.maps[inheriting] = found
        return found

    def declared(self, element: etree._Element) -> dict[str | None, str]:
        """The namespaces ``element`` declares, or all in scope when that is not known."""
        source = self.sources.get(element)
        if source is not None and not _declares(source):
            return {}
        nsmap = self.of(element)
        if source is None:
            return nsmap
        prefixes = [None if name == "xmlns" else name[6:] for name in source.attributes
                    if name == "xmlns" or name.startswith("xmlns:")]  # fmt: skip
        return {prefix: nsmap[prefix] for prefix in prefixes if prefix in nsmap}


def _declares(source: ElementSource) -> bool:
    return any(name == "xmlns" or name.startswith("xmlns:") for name in source.attributes)


def attribute_values(element: etree._Element) -> dict[str, str]:
    """The element's attributes by lxml's key, read in one pass: lxml's own ``attrib``
    (and ``get``) finds each value by walking the attributes, the square of their number."""
    found = element.xpath("@*")
    assert isinstance(found, list)
    return {str(item.attrname): str(item) for item in found}  # type: ignore[union-attr]


def attribute_key(
    element: etree._Element, name: str, nsmap: dict[str | None, str] | None = None
) -> str:
    """lxml's key (``{namespace}local``) for the attribute written ``name``; ``nsmap`` is
    the element's namespace map, when the caller has it already."""
    prefix, _, local = name.rpartition(":")
    if not prefix:
        return name
    if prefix != "xml" and nsmap is None:
        nsmap = element.nsmap or {}
    uri = XML_NAMESPACE if prefix == "xml" else (nsmap or {}).get(prefix)
    return f"{{{uri}}}{local}" if uri else name


def internal_subset(text: str) -> str | None:
    """The DOCTYPE's internal subset as written (between its brackets), or None."""
    for match in _MARKUP.finditer(text):
        token = match.group(0)
        if token.startswith("<!DOCTYPE"):
            opening = token.find("[")
            return None if opening < 0 else token[opening + 1 : token.rindex("]")]
        if match.group(1):
            return None  # the root element: no DOCTYPE
    return None


def decode_references(raw: str, *, keep_entities: bool = False) -> str | None:
    """``raw`` text with its character references and predefined entities resolved; a
    reference to any other entity is kept as written when ``keep_entities``, else the
    answer is None."""
    failed = False

    def one(match: re.Match[str]) -> str:
        nonlocal failed
        name = match.group(1)
        if name.startswith("#"):
            try:
                code = int(name[2:], 16) if name[1] == "x" else int(name[1:])
                return chr(code)
            except (ValueError, OverflowError):
                failed = True
                return match.group(0)
        if name in _PREDEFINED:
            return _PREDEFINED[name]
        failed = failed or not keep_entities
        return match.group(0)

    decoded = _REFERENCE.sub(one, raw)
    return None if failed else decoded


def _lines(text: str) -> str:
    return re.sub(r"\r\n?", "\n", text)
