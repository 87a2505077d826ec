""".NET configuration transforms (XDT): ``Web.Release.config`` applied to ``Web.config``.

A transform document mirrors the target. Each of its elements selects the target elements
of the same name under the parent's selection, narrowed by ``xdt:Locator`` —
``Match(attr,...)`` (same attribute values as the transform element), ``Condition(expr)``
(an XPath predicate) or ``XPath(path)`` (an absolute path) — and then either applies its
``xdt:Transform`` or, without one, descends. Transforms: ``Replace`` (the first selected),
``Insert`` (as the parent's last child), ``InsertBefore(xpath)``, ``InsertAfter(xpath)``,
``Remove`` (the first), ``RemoveAll``, ``SetAttributes[(names)]``, ``RemoveAttributes(names)``.

What a transform writes into the document is counted as it is written, against a growth
allowance: a rule whose locator selects every element (``XPath(//*)``) copies its content
into each, so a few such rules would otherwise double the document again and again.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from lxml import etree

XDT = "http://schemas.microsoft.com/XML-Document-Transform"
TRANSFORM = f"{{{XDT}}}Transform"
LOCATOR = f"{{{XDT}}}Locator"
MAX_GROWTH = 64 * 1024 * 1024  # bytes a transform may write into a document
NODE_COST = 128  # bytes charged for each element copied, beside its text: libxml2 keeps ~120


class TransformError(ValueError):
    """The transform cannot be applied: bad syntax, or it selects nothing it must."""


def parse_xml(content: bytes) -> etree._ElementTree:
    parser = etree.XMLParser(remove_blank_text=False, resolve_entities=False, no_network=True)
    try:
        return etree.ElementTree(etree.fromstring(content, parser))
    except etree.XMLSyntaxError as exc:
        raise TransformError(f"not well-formed XML: {exc}") from exc


def serialize(tree: etree._ElementTree, original: bytes) -> bytes:
    """The document, with the original's XML declaration if it had one."""
    declaration = re.match(rb"\s*<\?xml[^>]*\?>\s*", original)
    body = etree.tostring(tree.getroot(), encoding="utf-8")
    tail = b"\n" if original.endswith(b"\n") else b""
    return (declaration.group(0) if declaration else b"") + body + tail


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


def apply_transform(target: bytes, transform: bytes, *, max_growth: int = MAX_GROWTH) -> bytes:
    """``target`` transformed; TransformError when the transform cannot be applied or would
    write more than ``max_growth`` bytes into it."""
    document = parse_xml(target)
    rules = parse_xml(transform).getroot()
    root = document.getroot()
    if _name(rules) != _name(root):
        raise TransformError(
            f"the transform's root <{rules.tag}> does not match the document's <{root.tag}>"
        )
    _apply(rules, [root], document, _Growth(max_growth))
    etree.cleanup_namespaces(root)
    return serialize(document, target)


def _name(element: etree._Element) -> str:
    return str(element.tag)


def _apply(
    rule: etree._Element,
    targets: list[etree._Element],
    document: etree._ElementTree,
    growth: _Growth,
) -> None:
    """``rule`` matched ``targets``: run its transform, then its children's."""
    transform = rule.get(TRANSFORM)
    if transform is not None and rule.getparent() is not None:
        _transform(rule, transform, targets, document, growth)
        return
    for child in rule:
        if not _is_element(child):
            continue  # comments in the transform
        if child.get(TRANSFORM, "").startswith(("Insert", "InsertBefore", "InsertAfter")):
            _transform(child, child.get(TRANSFORM, ""), targets, document, growth)
            continue
        selected = _select_all(child, targets, document)
        if selected or child.get(TRANSFORM) is not None:
            _apply(child, selected, document, growth)


def _select_all(
    rule: etree._Element, targets: list[etree._Element], document: etree._ElementTree
) -> list[etree._Element]:
    """What ``rule`` selects under the ``targets``, each element once: an ``XPath`` locator
    is absolute, the same under every target (evaluated once, not once per target)."""
    locator = rule.get(LOCATOR)
    if locator is not None and targets:
        kind, argument = _call(locator)
        if kind == "XPath":
            return elements(document, argument)
    return [match for parent in targets for match in _select(rule, parent)]


def _select(rule: etree._Element, parent: etree._Element) -> list[etree._Element]:
    """The children of ``parent`` that ``rule`` selects (by name, ``Match`` or ``Condition``)."""
    locator = rule.get(LOCATOR)
    if locator is None:
        return [c for c in parent if _is_element(c) and c.tag == rule.tag]
    kind, argument = _call(locator)
    if kind == "Match":
        names = [n.strip() for n in argument.split(",") if n.strip()]
        return [
            c
            for c in parent
            if _is_element(c) and c.tag == rule.tag and all(c.get(n) == rule.get(n) for n in names)
        ]
    if kind == "Condition":
        return elements(parent, f"./*[name()='{_local(rule)}'][{argument}]")
    raise TransformError(f"unknown xdt:Locator {locator!r}")


def _transform(
    rule: etree._Element,
    transform: str,
    targets: list[etree._Element],
    document: etree._ElementTree,
    growth: _Growth,
) -> None:
    kind, argument = _call(transform)
    if kind == "Replace":
        if targets:
            growth.charge(_size(rule))
            _replace(targets[0], _clean_copy(rule))
    elif kind == "Insert":
        growth.charge(_size(rule) * len(targets))  # before any copy is made
        for parent in targets:
            parent.append(_clean_copy(rule))
    elif kind in ("InsertBefore", "InsertAfter"):
        anchors = elements(document, argument)
        if not anchors:
            raise TransformError(f"{kind}({argument}) selects nothing")
        anchor = anchors[0]
        growth.charge(_size(rule))
        (anchor.addprevious if kind == "InsertBefore" else anchor.addnext)(_clean_copy(rule))
    elif kind == "Remove":
        if targets:
            _remove(targets[0])
    elif kind == "RemoveAll":
        for element in targets:
            _remove(element)
    elif kind == "SetAttributes":
        names = _names(argument) or [
            str(n) for n in rule.attrib if not str(n).startswith(f"{{{XDT}}}")
        ]
        for element in targets:
            for name in names:
                value = rule.get(name)
                if value is not None:
                    growth.charge(len(name) + len(value))
                    element.set(name, value)
    elif kind == "RemoveAttributes":
        for element in targets:
            for name in _names(argument):
                if name in element.attrib:
                    del element.attrib[name]
    else:
        raise TransformError(f"unknown xdt:Transform {transform!r}")


def _call(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", text, re.DOTALL)
    if match is None:
        raise TransformError(f"cannot read {text!r}")
    return match.group(1), (match.group(2) or "").strip()


def _names(argument: str) -> list[str]:
    return [name.strip() for name in argument.split(",") if name.strip()]


def _local(element: etree._Element) -> str:
    return etree.QName(element).localname


def elements(context: etree._Element | etree._ElementTree, path: str) -> list[etree._Element]:
    try:
        result = context.xpath(path)
    except etree.XPathError as exc:
        raise TransformError(f"invalid XPath {path!r}: {exc}") from exc
    if not isinstance(result, list):
        return []
    return [item for item in result if isinstance(item, etree._Element)]


def _size(rule: etree._Element) -> int:
    """What a copy of ``rule`` adds to a document: its text and a node's cost per node."""
    return len(etree.tostring(rule, with_tail=False)) + NODE_COST * sum(1 for _ in rule.iter())


def _clean_copy(rule: etree._Element) -> etree._Element:
    """The transform's element without any xdt attributes, at any depth."""
    element = copy.deepcopy(rule)
    for node in element.iter():
        if not _is_element(node):
            continue
        for name in [n for n in node.attrib if str(n).startswith(f"{{{XDT}}}")]:
            del node.attrib[name]
    element.tail = None
    return element


def _replace(old: etree._Element, new: etree._Element) -> None:
    new.tail = old.tail
    parent = old.getparent()
    if parent is None:
        raise TransformError("the root element cannot be replaced")
    parent.replace(old, new)


def _remove(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is None:
        raise TransformError("the root element cannot be removed")
    parent.remove(element)  # with its tail: the whitespace before the next sibling stays


def _is_element(node: Any) -> bool:
    """An element, not a comment or processing instruction (whose tag is not a string)."""
    return isinstance(node.tag, str)
