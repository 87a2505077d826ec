"""The server's indenting XML writer, for lxml's tree and what its source adds.

A node per line, two spaces a level, except in an element once it has held text (and in
the elements within it), where nothing is added. Line breaks in text, comments, processing
instructions and CDATA are written as the file's own; in attribute values as character
references. ``--`` in a comment, ``?>`` in a processing instruction and ``]]>`` in a CDATA
section are broken up as the server's writer breaks them. The DOCTYPE keeps its internal
subset, and gets an empty one (``[]``) when it had none, as the server's writes it.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from services.builder.features.structured.common import StructuredError
from services.builder.features.structured.xml_source import (
    XML_NAMESPACE,
    ElementSource,
    NamespaceMaps,
    Segments,
    attribute_key,
    attribute_values,
    decode_references,
)

# Characters XML 1.0 cannot hold; the server's writer refuses them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_REFERENCE = re.compile(r"&(?:#x[0-9a-fA-F]+|#[0-9]+|[^\s;&]+);")


class XmlWriter:
    def __init__(
        self,
        line_break: str,
        sources: dict[etree._Element, ElementSource],
        subset: str | None,
        namespaces: NamespaceMaps | None = None,
    ) -> None:
        self.line_break = line_break
        self.sources = sources
        self.namespaces = namespaces or NamespaceMaps(sources)
        self.subset = subset
        self.out: list[str] = []
        self.level = 0
        self.mixed = False  # the current element has held text
        self.after_text = False  # the last thing written was text

    def raw(self, text: str) -> None:
        self.out.append(text)
        self.after_text = False

    def indent(self) -> None:
        if self.out and not self.mixed and not self.after_text:
            self.out.append(self.line_break + "  " * self.level)

    def document(self, root: etree._Element) -> None:
        docinfo: Any = root.getroottree().docinfo
        if docinfo.doctype:
            self.indent()
            self.raw(self.doctype(docinfo))
        for node in reversed(list(root.itersiblings(preceding=True))):
            self.node(node)
        self.node(root)
        for node in root.itersiblings():
            self.node(node)

    def doctype(self, docinfo: Any) -> str:
        declared = docinfo.internalDTD
        out = f"<!DOCTYPE {declared.name if declared is not None else docinfo.root_name}"
        if docinfo.public_id is not None:
            out += f' PUBLIC "{docinfo.public_id}" "{docinfo.system_url or ""}"'
        elif docinfo.system_url is not None:
            out += f' SYSTEM "{docinfo.system_url}"'
        else:
            out += " "
        return out + f"[{self.subset or ''}]>"

    def node(self, node: Any) -> None:
        if isinstance(node, etree._Comment):
            self.indent()
            self.raw(f"<!--{self.markup_text(node.text or '', '-')}-->")
        elif isinstance(node, etree._ProcessingInstruction):
            self.indent()
            target = str(node.target)
            body = self.markup_text(node.text or "", "?")
            self.raw(f"<?{target} {body}?>" if body else f"<?{target}?>")
        elif isinstance(node, etree._Entity):
            self.text(f"&{node.name};", escape=False)
        else:
            self.element(node)
        if node.tail is not None and node.getparent() is not None:
            source = self.sources.get(node) if isinstance(node.tag, str) else None
            segments = None if source is None else source.tail_segments
            if not self.content(node.tail, segments, node.getparent()):
                self.text(node.tail)

    def content(self, text: str, segments: Segments | None, holder: etree._Element | None) -> bool:
        """Text as read, CDATA sections and all, when it has not changed since; else
        nothing is written, and the answer is False."""
        if segments is None or "".join(part for _, part in segments) != text:
            return False
        keeps_space = holder is not None and preserves_space(holder)
        for is_cdata, part in segments:
            if is_cdata:
                self.cdata(part)
            elif keeps_space or part.strip(" \t\r\n"):
                self.text(part)
        return True

    def text(self, text: str, *, escape: bool = True) -> None:
        self.out.append(self.escape(text) if escape else text)
        self.mixed = self.after_text = True

    def cdata(self, text: str) -> None:
        self.check(text)
        body = _LINE_BREAK.sub(self.line_break, text).replace("]]>", "]]]]><![CDATA[>")
        self.text(f"<![CDATA[{body}]]>", escape=False)

    def markup_text(self, text: str, stop: str) -> str:
        """A comment's or processing instruction's text: the file's line breaks, and a
        space after ``stop`` where it would end the markup early (``--``, ``?>``) or
        run into its close."""
        self.check(text)
        text = _LINE_BREAK.sub(self.line_break, text)
        after = "-" if stop == "-" else ">"
        out = []
        for index, char in enumerate(text):
            out.append(char)
            following = text[index + 1 : index + 2]
            if char == stop and (following == after or (stop == "-" and not following)):
                out.append(" ")
        return "".join(out)

    @staticmethod
    def check(text: str) -> None:
        if _NOT_XML.search(text):
            raise StructuredError("a value holds a character that XML cannot hold")

    def escape(self, text: str, attribute: bool = False) -> str:
        self.check(text)
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if attribute:
            text = text.replace('"', "&quot;").replace("\t", "&#x9;")
            return text.replace("\n", "&#xA;").replace("\r", "&#xD;")
        return _LINE_BREAK.sub(self.line_break, text)

    def element(self, element: etree._Element) -> None:
        self.indent()
        source = self.sources.get(element)
        name = self.qualified(element)
        self.raw(f"<{name}{self.attributes(element, source)}")
        children = list(element)
        if element.text is None and not children:
            self.raw(" />" if source is None or source.empty else f"></{name}>")
            return
        self.raw(">")
        outer_mixed, self.level = self.mixed, self.level + 1
        if element.text is not None:
            segments = None if source is None else source.text_segments
            if not self.content(element.text, segments, element):
                if source is not None and source.cdata and not children:
                    self.cdata(element.text)
                else:
                    self.text(element.text)
        for child in children:
            self.node(child)
        self.level -= 1
        self.indent()
        self.raw(f"</{name}>")
        self.mixed = outer_mixed

    @staticmethod
    def qualified(element: etree._Element) -> str:
        local = etree.QName(element).localname
        return f"{element.prefix}:{local}" if element.prefix else local

    def attributes(self, element: etree._Element, source: ElementSource | None) -> str:
        # Read once: lxml builds the namespace map, and finds an attribute, by walking.
        nsmap = self.namespaces.of(element)
        values = attribute_values(element)
        names: list[str] = []
        if source is not None:
            names = source.attributes
        else:
            parent = element.getparent()
            inherited = {} if parent is None else self.namespaces.of(parent)
            declared = {p: u for p, u in nsmap.items() if inherited.get(p) != u}
            names = [f"xmlns:{p}" if p else "xmlns" for p in declared]
            names += [self.attribute_name(element, key, nsmap) for key in values]
        parts = []
        for name in names:
            if name == "xmlns" or name.startswith("xmlns:"):
                prefix = name[6:] or None
                uri = nsmap.get(prefix)
                if uri is None and prefix is None:
                    uri = ""
                if uri is None:
                    continue
                parts.append(f' {name}="{self.escape(uri, True)}"')
                continue
            value = values.get(attribute_key(element, name, nsmap))
            if value is None:
                continue
            if source is not None and source.read_values.get(name) == value:
                parts.append(f' {name}="{self.as_written(source.raw_values[name])}"')
            else:
                parts.append(f' {name}="{self.escape(value, True)}"')
        return "".join(parts)

    def as_written(self, raw: str) -> str:
        """An attribute value as the source wrote it, as the server reads and writes it:
        no white-space normalisation, references to other entities kept."""
        out, position = [], 0
        for match in _REFERENCE.finditer(raw):
            out.append(self.escape(raw[position : match.start()], True))
            resolved = decode_references(match.group(0))
            out.append(match.group(0) if resolved is None else self.escape(resolved, True))
            position = match.end()
        out.append(self.escape(raw[position:], True))
        return "".join(out)

    @staticmethod
    def attribute_name(
        element: etree._Element, key: str, nsmap: dict[str | None, str] | None = None
    ) -> str:
        qname = etree.QName(key)
        namespace: str | None = qname.namespace
        if namespace is None:
            return key
        if namespace == XML_NAMESPACE:
            return f"xml:{qname.localname}"
        for prefix, uri in (element.nsmap if nsmap is None else nsmap).items():
            if uri == namespace and prefix:
                return f"{prefix}:{qname.localname}"
        return qname.localname


def preserves_space(element: etree._Element) -> bool:
    for ancestor in (element, *element.iterancestors()):
        space = ancestor.get(f"{{{XML_NAMESPACE}}}space")
        if space is not None:
            return space == "preserve"
    return False
