""".NET configuration transforms (XDT), as the deployment server's Microsoft.Web.XmlTransform
applies them: ``Web.Release.config`` applied to ``Web.config``.

Each element of the transform document stands for an XPath built from its parent's:
``/configuration/appSettings/add``, narrowed by its ``xdt:Locator`` — ``Match(a,b)``
(``[@a='..' and @b='..']`` with the transform element's values), ``Condition(expr)``
(``[expr]``) or ``XPath(path)`` (the path itself; a relative one continues the element's
own path). Elements are visited in document order, each one's ``xdt:Transform`` run (when it
has one) before its children are visited:

- ``Replace`` and ``Remove`` act on the first element selected, ``RemoveAll``,
  ``SetAttributes[(names)]`` and ``RemoveAttributes[(names)]`` on every one;
- ``Insert`` and ``InsertIfMissing`` append a copy to the elements the parent selects
  (every one: see below), ``InsertBefore(xpath)`` / ``InsertAfter(xpath)`` put one copy
  beside the first element ``xpath`` selects from the first parent.

What the server counts as an error fails the transform (TransformError), and so does what it
counts as a warning, since the server treats warnings as errors unless told otherwise: a
transform whose locator selects nothing, ``Replace`` or ``Remove`` selecting more than one
element, arguments given to a transform that takes none, ``SetAttributes`` with nothing to set
or ``RemoveAttributes`` naming an attribute the element lacks, an unknown transform, locator
or ``xdt:`` element. ``xdt:SupressWarnings="true"`` on an element turns its warnings into
nothing, as on the server. A transform without the XDT namespace changes nothing.

``Insert`` appends to the first element its parent selects only, as the server's does.

The document is written back as the server writes it: attributes in their order, with the
whitespace and line breaks between them kept, values re-quoted with ``"`` and escaped as .NET
does, ``<x />`` and ``<x></x>`` kept apart, elements that a transform added indented like
their siblings, and the encoding (a UTF-8 byte order mark when the declaration names
``utf-8``) chosen as the server's writer chooses it.

What a transform writes into the document is counted as it is written, against a growth
allowance: a rule whose locator selects every element (``XPath(//*)``) copies its content
into each, so a few such rules would otherwise double the document again and again.
"""

from __future__ import annotations

import codecs
import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from lxml import etree

XDT = "http://schemas.microsoft.com/XML-Document-Transform"
TRANSFORM = f"{{{XDT}}}Transform"
LOCATOR = f"{{{XDT}}}Locator"
SUPPRESS_WARNINGS = f"{{{XDT}}}SupressWarnings"  # sic: the server's spelling
MAX_GROWTH = 64 * 1024 * 1024  # bytes a transform may write into a document
NODE_COST = 128  # bytes charged for each element copied, beside its text: libxml2 keeps ~120
MAX_DEPTH = 400  # elements nested in a transformed document (libxml2 reads at most 256)
_MAX_LINE = 160  # the server's writer breaks an added attribute onto a new line past this
_XML_SPACE = " \t\r\n"


class TransformError(ValueError):
    """The transform cannot be applied: bad syntax, or it selects nothing it must."""


def parse_xml(content: bytes) -> etree._ElementTree:
    parser = etree.XMLParser(remove_blank_text=False, resolve_entities=False, no_network=True)
    try:
        return etree.ElementTree(etree.fromstring(content, parser))
    except etree.XMLSyntaxError as exc:
        raise TransformError(f"not well-formed XML: {exc}") from exc


# --- The source text: what lxml does not keep ------------------------------------------


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
    root element (lxml keeps no whitespace there), every start tag in document order, and
    whether lines end with CR LF throughout."""

    declaration: dict[str, str] | None
    prolog: str  # after the declaration, before the root's start tag
    epilog: str  # after the root's end tag
    tags: list[StartTag]
    crlf: bool


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


def scan(text: str) -> Layout | None:
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
    depth = 0
    root_start = root_end = -1
    while True:
        opening = text.find("<", position)
        if opening < 0:
            break
        if text.startswith("<!--", opening):
            position = _after(text, "-->", opening + 4)
        elif text.startswith("<![CDATA[", opening):
            position = _after(text, "]]>", opening + 9)
        elif text.startswith("<?", opening):
            position = _after(text, "?>", opening + 2)
        elif text.startswith("<!", opening):
            position = _after_doctype(text, opening)
        elif text.startswith("</", opening):
            position = _after(text, ">", opening + 2)
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
        if root_end >= 0 and depth == 0 and root_start >= 0 and position >= root_end:
            break
    if root_start < 0 or root_end < 0:
        return None
    prolog_start = match.end() if match is not None else 0
    newlines = text.count("\n")
    return Layout(
        declaration,
        text[prolog_start:root_start],
        text[root_end:],
        tags,
        crlf=newlines > 0 and text.count("\r\n") == newlines,
    )


def _after(text: str, end: str, start: int) -> int:
    found = text.find(end, start)
    return -1 if found < 0 else found + len(end)


def _after_doctype(text: str, start: int) -> int:
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


# --- One document being transformed --------------------------------------------------


class Document:
    """A parsed document with what the writers need beside lxml's tree: each original
    element's start tag, which elements were written ``<x/>``, and the layout around the
    root. Elements added later (not ``original``) are new to the formatter."""

    def __init__(self, content: bytes) -> None:
        self.tree = parse_xml(content)
        text, self.declared_encoding, self.bom = decode_source(content)
        self.layout = scan(text)
        elements = [e for e in self.tree.getroot().iter() if _is_element(e)]
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
        self.crlf = self.layout is not None and self.layout.crlf

    @property
    def root(self) -> etree._Element:
        return self.tree.getroot()

    def is_empty(self, element: etree._Element) -> bool:
        """Written ``<x />``: it was so written, and nothing has been put in it since."""
        return element in self.self_closing and len(element) == 0 and not element.text


# --- The transform ---------------------------------------------------------------------


class _Growth:
    """What a transform may still write into the document."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def charge(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise TransformError(
                f"the transform writes more than {self.limit} bytes into the document (each "
                f"element copied counts {NODE_COST} bytes beside its text); does a locator "
                "select every element?"
            )


def apply_transform(
    target: bytes,
    transform: bytes,
    *,
    max_growth: int = MAX_GROWTH,
    log: Callable[[str], None] | None = None,
) -> bytes:
    """``target`` transformed and written as the server writes it; TransformError when the
    transform cannot be applied (or warns) or would write more than ``max_growth`` bytes."""
    document = Document(target)
    rules = Document(transform)
    _strip_blank_text(rules.root)
    engine = _Engine(document, rules, _Growth(max_growth), log or (lambda line: None))
    engine.run()
    if not document.root_removed:
        _check_depth(document.root)
    return write_transformed(document, rules)


def _strip_blank_text(root: etree._Element) -> None:
    """The server reads the transform without its insignificant whitespace."""
    for node in root.iter():
        if node.text is not None and _is_element(node) and not node.text.strip(_XML_SPACE):
            node.text = None
        if node.tail is not None and not node.tail.strip(_XML_SPACE):
            node.tail = None


def _check_depth(root: etree._Element) -> None:
    depth = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_DEPTH:
            raise TransformError(f"the transformed document nests elements over {MAX_DEPTH} deep")


_CALL = re.compile(r"\A\s*(\w+)(?:\s*\((.*)\))?\s*\Z", re.DOTALL)


def _call(text: str) -> tuple[str, str | None]:
    """``Name(arguments)`` as the server reads a Transform or Locator attribute."""
    match = _CALL.match(text)
    if match is None:
        raise TransformError(
            f"{text!r}: Transform and Locator attributes must contain only a type name, or a "
            "type name followed by a list of attributes in parentheses"
        )
    return match.group(1), match.group(2) or None


def split_arguments(text: str) -> list[str]:
    """The server's argument list: split at commas outside parentheses, each trimmed (a
    single argument is not trimmed)."""
    if "," not in text:
        return [text]
    arguments: list[str] = []
    pending: str | None = None
    depth = 0
    for piece in text.split(","):
        pending = piece if pending is None else f"{pending},{piece}"
        depth += piece.count("(") - piece.count(")")
        if depth == 0:
            arguments.append(pending)
            pending = None
    if pending is not None:
        arguments.append(pending)
    return [argument.strip() for argument in arguments]


class _Context:
    """One element of the transform document and the XPath it stands for."""

    def __init__(self, parent: _Context | None, element: etree._Element) -> None:
        self.parent = parent
        self.element = element
        self._xpath: str | None = None
        self._parent_xpath: str | None = None

    @property
    def namespaces(self) -> dict[str, str]:
        return {
            prefix or "_defaultNamespace": uri
            for prefix, uri in self.element.nsmap.items()
            if uri is not None
        }

    def node_test(self) -> str:
        name = etree.QName(self.element)
        if name.namespace and not self.element.prefix:
            return f"_defaultNamespace:{name.localname}"
        prefix = self.element.prefix
        return f"{prefix}:{name.localname}" if prefix else name.localname

    @property
    def xpath(self) -> str:
        if self._xpath is None:
            self._xpath, self._parent_xpath = self._paths()
        return self._xpath

    @property
    def parent_xpath(self) -> str:
        if self._parent_xpath is None:
            self._xpath, self._parent_xpath = self._paths()
        return self._parent_xpath

    def _paths(self) -> tuple[str, str]:
        base = "" if self.parent is None else self.parent.xpath
        locator = self.element.get(LOCATOR)
        if locator is None:
            return _step(base, self.node_test()), base
        kind, argument = _call(locator)
        arguments = None if argument is None else split_arguments(argument)
        if kind == "Match":
            if not arguments:
                raise TransformError("Match requires at least 1 arguments")
            predicates = []
            for key in arguments:
                value = _attribute_by_name(self.element, key)
                if value is None:
                    raise TransformError(f"No attribute '{key}' exists for the Match Locator")
                predicates.append(f"@{key}='{value}'")
            return _step(base, self.node_test(), " and ".join(predicates)), base
        if kind in ("Condition", "XPath"):
            if arguments is None or len(arguments) != 1:
                raise TransformError(f"{kind} requires exactly 1 arguments")
            if kind == "Condition":
                return _step(base, self.node_test(), arguments[0]), base
            path = arguments[0]
            if not path.startswith("/"):
                path = _step(_step(base, self.node_test()), path).replace("/./", "/")
            return path, path
        raise TransformError(f"unknown xdt:Locator {kind!r}")


def _step(base: str, node_test: str, predicate: str = "") -> str:
    if predicate:
        predicate = predicate if predicate.startswith("[") else f"[{predicate}"
        predicate = predicate if predicate.endswith("]") else f"{predicate}]"
    return f"{base if base.endswith('/') else base + '/'}{node_test}{predicate}"


def _attribute_by_name(element: etree._Element, qualified: str) -> str | None:
    prefix, _, local = qualified.rpartition(":")
    uri = element.nsmap.get(prefix) if prefix else ""
    if uri is None:
        return None
    try:
        return element.get(f"{{{uri}}}{local}" if uri else qualified)
    except ValueError:  # not a name at all: Match(,key)
        return None


_TRANSFORMS = {
    "Replace",
    "Remove",
    "RemoveAll",
    "Insert",
    "InsertIfMissing",
    "InsertBefore",
    "InsertAfter",
    "SetAttributes",
    "RemoveAttributes",
}


class _Engine:
    def __init__(
        self, document: Document, rules: Document, growth: _Growth, log: Callable[[str], None]
    ) -> None:
        self.document = document
        self.rules = rules
        self.growth = growth
        self.log = log
        self.suppress = False

    def run(self) -> None:
        root = self.rules.root
        if not any(XDT in (e.nsmap.values()) for e in root.iter() if _is_element(e)):
            self.log("the transform does not use the XDT namespace: nothing to do")
            return
        for element in root.iter(f"{{{XDT}}}*"):
            if etree.QName(element).localname == "Import":
                raise TransformError("xdt:Import (loading transforms from code) is not supported")
            raise TransformError(f"Unknown tag '{element.tag}'")
        self._visit(_Context(None, root))

    def _visit(self, context: _Context) -> None:
        transform = context.element.get(TRANSFORM)
        if transform is not None:
            self.suppress = _suppressing(context.element)
            try:
                self._execute(context, transform)
            finally:
                self.suppress = False
        for child in context.element:
            if _is_element(child):
                self._visit(_Context(context, child))

    def warn(self, message: str) -> None:
        if self.suppress:
            self.log(f"warning suppressed: {message}")
            return
        raise TransformError(message)

    def select(self, path: str, namespaces: dict[str, str]) -> list[Any]:
        if self.document.root_removed:
            return []
        try:
            found = self.document.tree.xpath(path, namespaces=namespaces)
        except (etree.XPathError, TypeError, ValueError) as exc:
            raise TransformError(f"invalid XPath {path!r}: {exc}") from exc
        if not isinstance(found, list):
            raise TransformError(f"the XPath {path!r} does not select nodes")
        return found

    def _nodes(self, path: str, context: _Context) -> list[etree._Element]:
        found = self.select(path, context.namespaces)
        if any(not isinstance(node, etree._Element) for node in found):
            raise TransformError(f"{path!r} selects attributes or text, not elements")
        return found

    def _missing(self, context: _Context, error: bool) -> None:
        failed = context
        while failed.parent is not None and not self._nodes(failed.parent.xpath, failed.parent):
            failed = failed.parent
        message = f"No element in the source document matches '{failed.xpath}'"
        if error:
            raise TransformError(message)
        self.warn(message)

    def _execute(self, context: _Context, text: str) -> None:
        name, argument = _call(text)
        if name not in _TRANSFORMS:
            raise TransformError(f"unknown xdt:Transform {name!r}")
        if name.startswith("Insert"):
            if context.parent is None:
                raise TransformError(f"{name} cannot apply to the root element")
            parents = self._nodes(context.parent_xpath, context)
            if not parents:
                self._missing(context, error=True)
            if name == "InsertBefore" or name == "InsertAfter":
                self._insert_beside(context, name, argument, parents[0])
                return
            _no_arguments(self, name, argument)
            if name == "InsertIfMissing" and self._nodes(context.xpath, context):
                return
            self.growth.charge(_size(context.element))  # before the copy
            parents[0].append(self.copy(context.element))
            return
        targets = self._nodes(context.xpath, context)
        if not targets:
            self._missing(context, error=False)
            return
        if name in ("Replace", "Remove"):
            if len(targets) > 1:
                self.warn(f"{name} selects {len(targets)} elements; it applies to the first only")
            _no_arguments(self, name, argument)
            if name == "Replace":
                self.growth.charge(_size(context.element))
                self.replace(targets[0], self.copy(context.element))
            else:
                self.remove(targets[0])
        elif name == "RemoveAll":
            for target in targets:
                _no_arguments(self, name, argument)
                self.remove(target)
        elif name == "SetAttributes":
            attributes = _selected_attributes(self, self.copy(context.element), argument)
            for target in targets:
                for key, value in attributes:
                    self.growth.charge(len(key) + len(value))
                    _element_only(target).set(key, value)
        else:
            for target in targets:
                self._remove_attributes(argument, _element_only(target))

    def _insert_beside(
        self, context: _Context, name: str, argument: str | None, parent: etree._Element
    ) -> None:
        arguments = [] if argument is None else split_arguments(argument)
        if not arguments:
            raise TransformError(f"{name} requires an XPath argument")
        if len(arguments) > 1:
            raise TransformError(f"Too many arguments to {name}")
        try:
            siblings = parent.xpath(arguments[0])
        except (etree.XPathError, TypeError, ValueError) as exc:
            raise TransformError(f"invalid XPath {arguments[0]!r}: {exc}") from exc
        if not isinstance(siblings, list) or not siblings:
            raise TransformError(f"No element in the source document matches '{arguments[0]}'")
        sibling = siblings[0]
        if not isinstance(sibling, etree._Element) or not _is_element(sibling):
            raise TransformError(f"'{arguments[0]}' does not evaluate to an element")
        if sibling.getparent() is None:
            raise TransformError("a document has one root element: nothing can be put beside it")
        self.growth.charge(_size(context.element))
        new = self.copy(context.element)
        if name == "InsertBefore":
            sibling.addprevious(new)
        else:
            new.tail, sibling.tail = sibling.tail, None
            sibling.addnext(new)

    def _remove_attributes(self, argument: str | None, target: etree._Element) -> None:
        chosen = _selected_attributes(self, target, argument, setting=False)
        for name, _ in chosen:
            del target.attrib[name]

    def copy(self, rule: etree._Element) -> etree._Element:
        """The transform's element as the server copies it into the document: without xdt
        attributes, namespace declarations or (its own) whitespace, ``<x/>`` kept."""
        element = copy.deepcopy(rule)
        element.tail = None
        for original, node in zip(rule.iter(), element.iter(), strict=True):
            if not _is_element(node):
                continue
            for name in [n for n in node.attrib if str(n).startswith(f"{{{XDT}}}")]:
                del node.attrib[name]
            if original in self.rules.self_closing and len(node) == 0 and node.text is None:
                self.document.self_closing.add(node)
        etree.cleanup_namespaces(element, top_nsmap=None, keep_ns_prefixes=None)
        return element

    def replace(self, old: etree._Element, new: etree._Element) -> None:
        parent = old.getparent()
        new.tail = old.tail
        if parent is None:
            self.document.tree._setroot(new)
        else:
            parent.replace(old, new)

    def remove(self, node: etree._Element) -> None:
        """``node`` taken out; the whitespace either side of it becomes one run, as the
        server's formatter leaves it (the later one, unless only the earlier has a newline)."""
        parent = node.getparent()
        if parent is None:
            if node is not self.document.root:
                raise TransformError("only elements inside the root element can be removed")
            self.document.root_removed = True
            return
        tail = node.tail
        previous = node.getprevious()
        before = parent.text if previous is None else previous.tail
        parent.remove(node)
        joined = _join_text(before, tail)
        if previous is None:
            parent.text = joined
        else:
            previous.tail = joined


def _join_text(before: str | None, after: str | None) -> str | None:
    if not before or not after:
        return before or after
    if before.strip(_XML_SPACE) or after.strip(_XML_SPACE):
        return before + after
    return after if "\n" in after or "\n" not in before else before


def _element_only(node: etree._Element) -> etree._Element:
    if not _is_element(node):
        raise TransformError("an attribute transform selects a comment or processing instruction")
    return node


def _no_arguments(engine: _Engine, name: str, argument: str | None) -> None:
    if argument:
        engine.warn(f"{name} does not expect arguments; ignoring")


def _suppressing(element: etree._Element) -> bool:
    value = element.get(SUPPRESS_WARNINGS)
    if value is None:
        return False
    if value.strip().lower() not in ("true", "false"):
        raise TransformError(f"xdt:SupressWarnings={value!r} is not true or false")
    return value.strip().lower() == "true"


def _selected_attributes(
    engine: _Engine, element: etree._Element, argument: str | None, *, setting: bool = True
) -> list[tuple[str, str]]:
    """The attributes of ``element`` an attribute transform names (all without arguments),
    warning, as the server does, for an argument that names none and for an empty choice."""
    names = None if argument is None else split_arguments(argument)

    def select(arguments: list[str]) -> list[tuple[str, str]]:
        try:
            found = element.xpath("|".join(f"@{name}" for name in arguments))
        except (etree.XPathError, TypeError, ValueError) as exc:
            raise TransformError(f"invalid attribute names {argument!r}: {exc}") from exc
        if not isinstance(found, list) or not all(
            getattr(item, "is_attribute", False) for item in found
        ):
            raise TransformError(f"{argument!r} names something other than attributes")
        return [(str(cast(Any, item).attrname), str(item)) for item in found]

    if not names:
        chosen = select(["*"])
    else:
        for name in names:
            if not select([name]):
                engine.warn(f"Argument '{name}' did not match any attributes")
        chosen = select(names)
    if not chosen:
        engine.warn(f"No attributes found to {'set' if setting else 'remove'}")
    return chosen


def _size(rule: etree._Element) -> int:
    """What a copy of ``rule`` adds to a document: its text and a node's cost per node."""
    return len(etree.tostring(rule, with_tail=False)) + NODE_COST * sum(1 for _ in rule.iter())


def _is_element(node: Any) -> bool:
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


# --- Writing: the formatter and the attribute-preserving writer -------------------------


@dataclass(eq=False, slots=True)
class _Piece:
    """Text between nodes: whitespace (``blank``) or character data; ``raw`` pieces (the
    declaration, and comments or a DOCTYPE outside the root) are written as they are."""

    text: str
    parent: etree._Element | None
    blank: bool
    raw: bool = False


Item = Any  # an lxml node or a _Piece


@dataclass(slots=True)
class _Attributes:
    """The server's record of a start tag: the attribute names in order and the whitespace
    before each ("" for the whitespace before ``>``), updated as attributes come and go."""

    ordered: list[str] = field(default_factory=list)
    leading: dict[str, str] = field(default_factory=dict)
    newline: str | None = None
    one_per_line: bool | None = None


class _Layout:
    """The formatter's view of the transformed document: each element's content as a list
    of items, each element's attribute record, the document's top level."""

    def __init__(self, document: Document, rules: Document) -> None:
        self.document = document
        self.rules = rules
        self.contents: dict[etree._Element, list[Item]] = {}
        self.records: dict[etree._Element, _Attributes] = {}

    def is_new(self, item: Item) -> bool:
        element = item.parent if isinstance(item, _Piece) else item
        if element is not None and not _is_element(element):
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
            items.append(_Piece(text, parent, not text.strip(_XML_SPACE)))

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
        current = {str(key): str(value) for key, value in element.attrib.items()}
        listed: list[tuple[str, str]] = []
        if tag is not None:
            for _, name, raw in tag.attributes:
                if name == "xmlns" or name.startswith("xmlns:"):
                    uri = element.nsmap.get(name[6:] or None)
                    if uri is not None:
                        listed.append((name, _server_value(raw, uri)))
                    continue
                key = clark_name(element, name)
                if key in current:
                    listed.append((name, _server_value(raw, current.pop(key))))
        listed.extend((qualified_name(element, key), value) for key, value in current.items())
        return listed


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

    def __init__(self, layout: _Layout) -> None:
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
            if isinstance(node, _Piece):
                if node.blank and not node.raw:
                    index += self.whitespace(node, items)
            elif _is_element(node):
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

    def whitespace(self, node: _Piece, items: list[Item]) -> int:
        change = 0
        previous = self.previous
        if isinstance(previous, _Piece) and previous.blank and not previous.raw:
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
        if isinstance(previous, _Piece) and not previous.raw:
            return 0  # whitespace or text before it
        if not (
            self.layout.is_new(node) or (previous is not None and self.layout.is_new(previous))
        ):
            return 0
        parent = node if before_end else _parent_of(node)
        piece = _Piece(self.current_indent(items if siblings is None else siblings), parent, True)
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
        if isinstance(last, _Piece) and last.blank:
            return
        index = len(items) - 1
        while index >= 0:
            item = items[index]
            if isinstance(item, _Piece) and item.blank:
                items.append(items.pop(index))
                return
            if isinstance(item, etree._Element) and _is_element(item) and self.layout.is_new(item):
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
            elif isinstance(item, etree._Element) and _is_element(item):
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
    return node.parent if isinstance(node, _Piece) else node.getparent()


def _index_of(items: list[Item], node: Item) -> int:
    return next(index for index, item in enumerate(items) if item is node)


def _remove_item(items: list[Item], node: Item) -> None:
    del items[_index_of(items, node)]


def _look_ahead(siblings: list[Item]) -> str | None:
    for item in siblings[:-1]:
        if isinstance(item, _Piece) and item.blank and not item.raw:
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

    def __init__(self, layout: _Layout, output: _Output) -> None:
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
        if isinstance(item, _Piece):
            if item.raw or item.blank:
                self.out.write(item.text)
            else:
                self.out.write(escape_net(item.text, attribute=False))
        elif _is_element(item):
            self.element(item)
        elif isinstance(item, etree._Comment):
            self.out.write(f"<!--{item.text or ''}-->")
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
                attribute_uri = element.nsmap.get(attribute_prefix)
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
        for declared_prefix, declared_uri in automatic:
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
    layout = _Layout(document, rules)
    top: list[Item] = []
    source = document.layout
    if source is not None and source.declaration is not None:
        top.append(_Piece(_declaration(source.declaration), None, False, raw=True))
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


_TOP_LEVEL = re.compile(r"([ \t\r\n]+)|(<!--.*?-->|<\?.*?\?>|<![^>]*(?:\[.*?\])?\s*>)", re.DOTALL)


def top_level(text: str) -> Iterator[_Piece]:
    """Whitespace, comments, processing instructions and a DOCTYPE outside the root."""
    position = 0
    while position < len(text):
        match = _TOP_LEVEL.match(text, position)
        if match is None:
            yield _Piece(text[position:], None, False, raw=True)
            return
        if match.group(1):
            yield _Piece(match.group(1), None, True)
        else:
            yield _Piece(match.group(2), None, False, raw=True)
        position = match.end()


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
