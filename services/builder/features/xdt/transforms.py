"""The transforms, run as Microsoft.Web.XmlTransform runs them.

Elements of the transform document are visited in document order, each one's
``xdt:Transform`` run (when it has one) before its children are visited:

- ``Replace`` and ``Remove`` act on the first element selected, ``RemoveAll``,
  ``SetAttributes[(names)]`` and ``RemoveAttributes[(names)]`` on every one;
- ``Insert`` and ``InsertIfMissing`` append a copy to the first element the parent
  selects, ``InsertBefore(xpath)`` / ``InsertAfter(xpath)`` put one copy beside the first
  element ``xpath`` selects from that parent.

What the server counts as an error fails the transform (TransformError), and so does what it
counts as a warning, since the server treats warnings as errors unless told otherwise: a
transform whose locator selects nothing, ``Replace`` or ``Remove`` selecting more than one
element, arguments given to a transform that takes none, ``SetAttributes`` with nothing to set
or ``RemoveAttributes`` naming an attribute the element lacks, an unknown transform, locator
or ``xdt:`` element. ``xdt:SupressWarnings="true"`` on an element turns its warnings into
nothing, as on the server. A transform without the XDT namespace changes nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

from lxml import etree

from services.builder.features.xdt.document import (
    SUPPRESS_WARNINGS,
    TRANSFORM,
    XDT,
    XML_SPACE,
    Document,
    TransformError,
    is_element,
    qualified_name,
)
from services.builder.features.xdt.growth import MAX_GROWTH, Growth, check_depth, copy_size
from services.builder.features.xdt.locators import Context, read_call, split_arguments
from services.builder.features.xdt.work import NODE_HANDLED, Work, document_size, xpath_cost
from services.builder.features.xdt.writer import write_transformed


def apply_transform(
    target: bytes,
    transform: bytes,
    *,
    max_growth: int = MAX_GROWTH,
    log: Callable[[str], None] | None = None,
    warnings_are_errors: bool = True,
    work: Work | None = None,
) -> bytes:
    """``target`` transformed and written as the server writes it; TransformError when the
    transform cannot be applied (or warns, unless ``warnings_are_errors`` is false: the
    server's ``TreatConfigTransformationWarningsAsErrors``), would write more than
    ``max_growth`` bytes, or its locators' XPath would cost more than is left of ``work``
    (``WorkExceeded``; a fresh allowance of ``MAX_WORK`` when None: pass one to share it).
    A transform that removes the root element is not an error: the server saves what is
    left and logs that the file is no longer valid, and so does this."""
    note = log or (lambda line: None)
    document = Document(target)
    rules = Document(transform, key="r")
    _strip_blank_text(rules.root)
    Engine(document, rules, Growth(max_growth), note, warnings_are_errors, work or Work()).run()
    if document.root_removed:
        note("the file no longer has a root element and is invalid after being transformed")
    else:
        check_depth(document.root)
    return write_transformed(document, rules)


def _strip_blank_text(root: etree._Element) -> None:
    """The server reads the transform without its insignificant whitespace."""
    for node in root.iter():
        if node.text is not None and is_element(node) and not node.text.strip(XML_SPACE):
            node.text = None
        if node.tail is not None and not node.tail.strip(XML_SPACE):
            node.tail = None


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


class Engine:
    def __init__(
        self,
        document: Document,
        rules: Document,
        growth: Growth,
        log: Callable[[str], None],
        warnings_are_errors: bool = True,
        work: Work | None = None,
    ) -> None:
        self.document = document
        self.rules = rules
        self.growth = growth
        self.log = log
        self.warnings_are_errors = warnings_are_errors
        self.work = work or Work()
        self.suppress = False
        self._size: tuple[int, int] | None = None  # the document's, while it has not grown
        self._sized_at = growth.left

    def charge(self, path: str) -> None:
        """Charge evaluating ``path`` to the work allowance, before it runs: the document's
        size (measured again once it has grown, which the measuring costs no more than)."""
        grown = (self._sized_at - self.growth.left) // 4  # nodes added: 4 bytes at least
        if self._size is None or grown > self._size[0]:
            self._size = document_size(self.document.root)
            self._sized_at, grown = self.growth.left, 0
        nodes, weight = self._size
        # what was added since it was measured, as deep as the document's nodes on average
        self.work.spend(xpath_cost(path, nodes + grown, weight + grown * (weight // nodes + 1)))

    def run(self) -> None:
        root = self.rules.root
        if not any(XDT in (e.nsmap.values()) for e in root.iter() if is_element(e)):
            self.log("the transform does not use the XDT namespace: nothing to do")
            return
        for element in root.iter(f"{{{XDT}}}*"):
            if etree.QName(element).localname == "Import":
                raise TransformError("xdt:Import (loading transforms from code) is not supported")
            raise TransformError(f"Unknown tag '{element.tag}'")
        self._visit(Context(None, root))

    def _visit(self, context: Context) -> None:
        transform = context.element.get(TRANSFORM)
        if transform is not None:
            self.suppress = _suppressing(context.element)
            try:
                self._execute(context, transform)
            finally:
                self.suppress = False
        for child in context.element:
            if is_element(child):
                self._visit(Context(context, child))

    def warn(self, message: str) -> None:
        if self.suppress:
            self.log(f"warning suppressed: {message}")
            return
        if not self.warnings_are_errors:
            self.log(f"warning: {message}")
            return
        raise TransformError(message)

    def select(self, path: str, namespaces: dict[str, str]) -> list[Any]:
        if self.document.root_removed:
            return []
        self.charge(path)
        try:
            found = self.document.tree.xpath(path, namespaces=namespaces)
        except (etree.XPathError, TypeError, ValueError) as exc:
            raise TransformError(f"invalid XPath {path!r}: {exc}") from exc
        if not isinstance(found, list):
            raise TransformError(f"the XPath {path!r} does not select nodes")
        self.work.spend(len(found))
        return found

    def _nodes(self, path: str, context: Context) -> list[etree._Element]:
        found = self.select(path, context.namespaces)
        if any(not isinstance(node, etree._Element) for node in found):
            raise TransformError(f"{path!r} selects attributes or text, not elements")
        return found

    def _missing(self, context: Context, error: bool) -> None:
        failed = context
        while failed.parent is not None and not self._nodes(failed.parent.xpath, failed.parent):
            failed = failed.parent
        message = f"No element in the source document matches '{failed.xpath}'"
        if error:
            raise TransformError(message)
        self.warn(message)

    def _execute(self, context: Context, text: str) -> None:
        name, argument = read_call(text)
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
            self.growth.charge(self.copy_size(context.element))  # before the copy
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
                self.growth.charge(self.copy_size(context.element))
                self.replace(targets[0], self.copy(context.element))
            else:
                self.remove(targets[0])
        elif name == "RemoveAll":
            for target in targets:
                _no_arguments(self, name, argument)
                self.remove(target)
        elif name == "SetAttributes":
            source = self.copy(context.element)
            attributes = _selected_attributes(self, source, argument)
            for target in targets:
                for key, value in attributes:
                    self.growth.charge(len(key) + len(value))
                    self.set_attribute(
                        _element_only(target), qualified_name(source, key), key, value
                    )
        else:
            for target in targets:
                self._remove_attributes(argument, _element_only(target))

    def _insert_beside(
        self, context: Context, name: str, argument: str | None, parent: etree._Element
    ) -> None:
        arguments = [] if argument is None else split_arguments(argument)
        if not arguments:
            raise TransformError(f"{name} requires an XPath argument")
        if len(arguments) > 1:
            raise TransformError(f"Too many arguments to {name}")
        self.charge(arguments[0])
        try:
            siblings = parent.xpath(arguments[0])
        except (etree.XPathError, TypeError, ValueError) as exc:
            raise TransformError(f"invalid XPath {arguments[0]!r}: {exc}") from exc
        if isinstance(siblings, list):
            self.work.spend(len(siblings))
        if not isinstance(siblings, list) or not siblings:
            raise TransformError(f"No element in the source document matches '{arguments[0]}'")
        sibling = siblings[0]
        if not isinstance(sibling, etree._Element) or not is_element(sibling):
            raise TransformError(f"'{arguments[0]}' does not evaluate to an element")
        if sibling.getparent() is None:
            raise TransformError("a document has one root element: nothing can be put beside it")
        self.growth.charge(self.copy_size(context.element))
        new = self.copy(context.element)
        if name == "InsertBefore":
            sibling.addprevious(new)
        else:
            new.tail, sibling.tail = sibling.tail, None
            sibling.addnext(new)

    def _remove_attributes(self, argument: str | None, target: etree._Element) -> None:
        chosen = _selected_attributes(self, target, argument, setting=False)
        for name, _ in chosen:
            self.work.spend(NODE_HANDLED + len(target.attrib))  # lxml finds it by walking them
            del target.attrib[name]

    def set_attribute(self, target: etree._Element, qualified: str, key: str, value: str) -> None:
        """As the server sets an attribute: the one of the same qualified name takes the
        value; else it is appended (in place of one of the same namespace and local name),
        keeping the transform's prefix."""
        self.work.spend(NODE_HANDLED + len(target.attrib))  # its attributes read and walked
        existing = self.document.attribute_names(target).get(qualified)
        if existing is not None:
            target.set(existing, value)
            return
        if key in target.attrib:
            del target.attrib[key]
        target.set(key, value)
        prefix, _, _ = qualified.rpartition(":")
        if prefix:
            self.document.prefixes.setdefault(target, {})[key] = prefix

    def copy_size(self, rule: etree._Element) -> int:
        return copy_size(rule) + self.rules.cdata_length(rule)

    def copy(self, rule: etree._Element) -> etree._Element:
        """The transform's element as the server copies it into the document: without xdt
        attributes, namespace declarations or (its own) whitespace, ``<x/>`` kept."""
        element = copy.deepcopy(rule)
        element.tail = None
        for original, node in zip(rule.iter(), element.iter(), strict=True):
            if not is_element(node):
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
    if before.strip(XML_SPACE) or after.strip(XML_SPACE):
        return before + after
    return after if "\n" in after or "\n" not in before else before


def _element_only(node: etree._Element) -> etree._Element:
    if not is_element(node):
        raise TransformError("an attribute transform selects a comment or processing instruction")
    return node


def _no_arguments(engine: Engine, name: str, argument: str | None) -> None:
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
    engine: Engine, element: etree._Element, argument: str | None, *, setting: bool = True
) -> list[tuple[str, str]]:
    """The attributes of ``element`` an attribute transform names (all without arguments),
    warning, as the server does, for an argument that names none and for an empty choice."""
    names = None if argument is None else split_arguments(argument)

    def select(arguments: list[str]) -> list[tuple[str, str]]:
        expression = "|".join(f"@{name}" for name in arguments)
        engine.charge(expression)
        try:
            found = element.xpath(expression)
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
