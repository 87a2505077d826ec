"""XML: values replaced at what the variables' XPath expressions select, re-indented as the
server's XML writer writes them, in the declared encoding."""

from __future__ import annotations

import codecs
import re
from typing import Any

from lxml import etree

from services.builder.features.structured.common import (
    Context,
    NotThisFormat,
    Replacement,
    StructuredError,
)
from services.builder.features.structured.encoding import (
    TextEncoding,
    decode_text,
    encode_text,
    line_break_of,
)
from services.builder.features.structured.xml_source import (
    ElementSource,
    NamespaceMaps,
    element_sources,
    internal_subset,
)
from services.builder.features.structured.xml_writer import XmlWriter, preserves_space
from services.builder.features.structured.xpath2 import EXTENSIONS, xpath1
from services.builder.features.xdt.work import NODE_HANDLED, document_size, xpath_cost

_WEB_NAMES = {"utf-8": "utf-8", "utf-16": "utf-16", "utf-16-le": "utf-16", "utf-16-be": "utf-16BE",
              "cp1252": "Windows-1252", "windows-1252": "Windows-1252", "ascii": "us-ascii",
              "latin-1": "iso-8859-1", "iso8859-1": "iso-8859-1"}  # fmt: skip
_STANDALONE = re.compile(r"""standalone\s*=\s*["'](yes|no)["']""")
_DECLARATION = re.compile(r"""<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")


def _declared_encoding(content: bytes) -> TextEncoding | None:
    head = content[:1024].decode("latin-1")
    match = _DECLARATION.match(head)
    if match is None:
        return None
    try:
        codec = codecs.lookup(match.group(1)).name
    except LookupError:
        return None
    if codec == "utf-8":
        return TextEncoding("utf-8", codecs.BOM_UTF8, "utf-8")  # the server adds the BOM
    if codec.startswith("utf-16"):
        return TextEncoding("utf-16-le", codecs.BOM_UTF16_LE, "utf-16")
    return TextEncoding(codec, b"", _WEB_NAMES.get(codec, match.group(1).lower()))


def replace_xml(content: bytes, context: Context) -> tuple[bytes, list[Replacement]]:
    text, encoding = decode_text(content, _declared_encoding(content))
    parser = etree.XMLParser(
        remove_blank_text=False, strip_cdata=False, resolve_entities=False, no_network=True,
        encoding="utf-8", remove_comments=False, remove_pis=False,
    )  # fmt: skip
    try:
        root = etree.fromstring(text.encode("utf-8", errors="surrogatepass"), parser)
    except etree.XMLSyntaxError as exc:
        raise NotThisFormat(_syntax_problem(exc)) from exc
    except ValueError as exc:
        raise NotThisFormat("not XML text") from exc
    sources = element_sources(text, root)
    _drop_insignificant_whitespace(root, sources)
    maps = NamespaceMaps(sources)
    namespaces = _namespaces(root, maps)
    nodes, weight = document_size(root)
    for name in context.names:
        if "/" not in name and ":" not in name:
            continue
        expression = xpath1(name)
        try:  # what does not compile, or names an undeclared prefix first, visits nothing
            etree.XPath(expression, namespaces=namespaces, extensions=EXTENSIONS)
        except (etree.XPathError, ValueError):
            continue
        if _undeclared_first_prefix(expression, namespaces):
            continue
        context.spend(xpath_cost(expression, nodes, weight))
        try:
            matches = root.getroottree().xpath(
                expression, namespaces=namespaces, extensions=EXTENSIONS
            )
        except (etree.XPathError, ValueError):
            continue
        if not isinstance(matches, list) or not matches:
            continue
        context.spend(len(matches) * NODE_HANDLED)
        value = context.lookup(name)
        if value is None:
            continue
        for match in matches:
            context.take(value, name, "xml")
            try:
                _set_xml(match, value, sources, namespaces)
            except ValueError as exc:  # lxml refuses what XML cannot hold; so does the server
                raise StructuredError("a value holds a character that XML cannot hold") from exc
    line_break = line_break_of(text)
    declaration = re.match(r"<\?xml\s[^>]*\?>", text)
    standalone = None if declaration is None else _STANDALONE.search(declaration.group(0))

    def render(web_name: str) -> str:
        writer = XmlWriter(line_break, sources, internal_subset(text), maps)
        if declaration is not None:
            extra = "" if standalone is None else f' standalone="{standalone.group(1)}"'
            writer.raw(f'<?xml version="1.0" encoding="{web_name}"{extra}?>')
        writer.document(root)
        return "".join(writer.out)

    data, written = encode_text(render(encoding.web_name), encoding)
    if written is not encoding:
        data, _ = encode_text(render(written.web_name), written)
    return data, context.replaced


def _syntax_problem(exc: etree.XMLSyntaxError) -> str:
    """libxml2's kind of error and where, not its message: that quotes names and text of
    the file, where an earlier feature may have written a secret."""
    last: Any = getattr(exc.error_log, "last_error", None)  # lxml's stubs do not know it
    kind = getattr(last, "type_name", None)
    line, column = exc.position if exc.position else (exc.lineno, 0)
    return f"not well-formed XML ({kind or 'a syntax error'}) at line {line}, column {column}"


_FIRST_PREFIX = re.compile(r"\s*([A-Za-z_][\w.-]*)\s*:(?!:)")


def _undeclared_first_prefix(expression: str, namespaces: dict[str, str]) -> bool:
    """The expression starts with a name whose prefix is not declared (a JSON-style name
    such as ``ConnectionStrings:Default``): libxml2 fails on it before visiting a node."""
    match = _FIRST_PREFIX.match(expression)
    return match is not None and match.group(1) not in (*namespaces, "xml")


def _drop_insignificant_whitespace(
    root: etree._Element, sources: dict[etree._Element, ElementSource] | None = None
) -> None:
    """What the server's reader drops: text of only white space between nodes (text that
    was written with CDATA in it is not white space to the server)."""
    sources = sources or {}
    for element in root.iter():
        parent = element.getparent()
        source = sources.get(element) if isinstance(element.tag, str) else None
        if (
            element.tail is not None
            and not element.tail.strip(" \t\r\n")
            and (parent is None or not preserves_space(parent))
            and (source is None or source.tail_segments is None)
        ):
            element.tail = None
        if (
            isinstance(element.tag, str)
            and element.text is not None
            and not element.text.strip(" \t\r\n")
            and not preserves_space(element)
            and (source is None or (source.text_segments is None and not source.cdata))
        ):
            element.text = None


def _namespaces(root: etree._Element, maps: NamespaceMaps) -> dict[str, str]:
    """Prefixes declared anywhere in the document; the first declaration of a prefix wins."""
    found: dict[str, str] = {}
    for element in root.iter(etree.Element):  # elements only: comments declare nothing
        for prefix, uri in maps.declared(element).items():
            if prefix is not None:
                found.setdefault(prefix, uri)
    return found


def _set_xml(
    match: Any, value: str, sources: dict[etree._Element, ElementSource], ns: dict[str, str]
) -> None:
    if isinstance(match, (etree._Comment, etree._ProcessingInstruction)):
        match.text = value
    elif isinstance(match, etree._Element):
        source = sources.get(match)
        children = list(match)
        if source is not None and source.cdata and not children:
            match.text = value
        elif any(isinstance(child.tag, str) for child in children):
            _set_inner_xml(match, value, sources)
        else:
            for child in children:
                match.remove(child)
            match.text = value
            if source is not None:
                source.empty = source.cdata = False
                source.text_segments = None
    elif isinstance(match, etree._ElementUnicodeResult):
        parent = match.getparent()
        if parent is None:
            return
        if match.is_attribute:
            parent.set(str(match.attrname), value)
        elif match.is_tail:
            parent.tail = value
        else:
            parent.text = value


def _set_inner_xml(
    element: etree._Element, value: str, sources: dict[etree._Element, ElementSource]
) -> None:
    """The element's content replaced by ``value`` parsed as a fragment in its namespaces;
    left as it was when the value is not well-formed (the server warns)."""
    declarations = "".join(
        f' xmlns="{uri}"' if prefix is None else f' xmlns:{prefix}="{uri}"'
        for prefix, uri in (element.nsmap or {}).items()
    )
    try:
        fragment = etree.fromstring(
            f"<fragment{declarations}>{value}</fragment>",
            etree.XMLParser(resolve_entities=False, no_network=True, strip_cdata=False),
        )
    except (etree.XMLSyntaxError, ValueError):
        return
    _drop_insignificant_whitespace(fragment)
    for child in list(element):
        element.remove(child)
    element.text = fragment.text
    for child in list(fragment):
        element.append(child)
    source = sources.get(element)
    if source is not None:
        source.empty = source.cdata = False
        source.text_segments = None
