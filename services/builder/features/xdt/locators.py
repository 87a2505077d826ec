"""Locators and the XPath each transform element stands for.

Each element of the transform document stands for an XPath built from its parent's:
``/configuration/appSettings/add``, narrowed by its ``xdt:Locator`` — ``Match(a,b)``
(``[@a='..' and @b='..']`` with the transform element's values), ``Condition(expr)``
(``[expr]``) or ``XPath(path)`` (the path itself; a relative one continues the element's
own path)."""

from __future__ import annotations

import re

from lxml import etree

from services.builder.features.xdt.document import LOCATOR, TransformError

_CALL = re.compile(r"\A\s*(\w+)(?:\s*\((.*)\))?\s*\Z", re.DOTALL)


def read_call(text: str) -> tuple[str, str | None]:
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


class Context:
    """One element of the transform document and the XPath it stands for."""

    def __init__(self, parent: Context | None, element: etree._Element) -> None:
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
        kind, argument = read_call(locator)
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
