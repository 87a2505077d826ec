"""Substitute Variables in Templates: the deployment server's template language (Octostache).

``#{Name}`` is replaced by the variable's value (names are case-insensitive, values may hold
templates themselves, a cycle is an error); ``##{`` writes a literal ``#{``; a variable that
is not defined is left exactly as written. Also ``#{Name[#{Key}]}`` indexes,
``#{Json.Path[0].field}`` navigation into JSON values, ``#{if}``/``#{else}``/``#{unless}``
with ``==`` and ``!=``, ``#{each x in Items}`` (over ``Items[Key].Prop`` groups, JSON arrays
and objects, or comma-separated values) with ``Octopus.Template.Each.Index|First|Last``,
``#{calc}``, and filters after ``|`` (``features.filters``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from services.builder.features.filters import FilterError, apply_filter
from services.builder.features.variables import VariableSet

MAX_DEPTH = 64
EACH_INDEX = "octopus.template.each.index"
EACH_FIRST = "octopus.template.each.first"
EACH_LAST = "octopus.template.each.last"


class TemplateError(Exception):
    """The template cannot be evaluated: unbalanced blocks, a cycle, a bad expression."""


# --- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Substitution:
    name: tuple[Node, ...]  # a template itself: "Password[#{User}]"
    filters: tuple[Filter, ...]
    raw: str


@dataclass(frozen=True, slots=True)
class Condition:
    left: Substitution
    operator: str | None = None  # "==" or "!="
    right_literal: str | None = None
    right: Substitution | None = None


@dataclass(slots=True)
class Conditional:
    condition: Condition
    negate: bool
    then: list[Node] = field(default_factory=list)
    otherwise: list[Node] = field(default_factory=list)
    in_else: bool = False


@dataclass(slots=True)
class Repetition:
    variable: str
    collection: tuple[Node, ...]
    body: list[Node] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Calculation:
    expression: str
    raw: str


Node = Text | Substitution | Conditional | Repetition | Calculation


def parse(template: str) -> list[Node]:
    root: list[Node] = []
    stack: list[Conditional | Repetition] = []

    def target() -> list[Node]:
        if not stack:
            return root
        block = stack[-1]
        if isinstance(block, Conditional):
            return block.otherwise if block.in_else else block.then
        return block.body

    for kind, value in _tokens(template):
        if kind == "text":
            target().append(Text(value))
            continue
        inner = value[2:-1].strip()
        keyword, _, rest = inner.partition(" ")
        rest = rest.strip()
        if keyword in ("if", "unless") and rest:
            block: Conditional | Repetition = Conditional(_condition(rest), keyword == "unless")
            target().append(block)
            stack.append(block)
        elif inner == "else":
            if not stack or not isinstance(stack[-1], Conditional) or stack[-1].in_else:
                raise TemplateError("#{else} outside #{if} or #{unless}")
            stack[-1].in_else = True
        elif inner in ("/if", "/unless"):
            if not stack or not isinstance(stack[-1], Conditional):
                raise TemplateError(f"#{{{inner}}} without its opening block")
            stack.pop()
        elif keyword == "each" and rest:
            match = re.fullmatch(r"(\S+)\s+in\s+(.+)", rest, re.DOTALL)
            if match is None:
                raise TemplateError(f"expected #{{each item in Collection}}, got {value!r}")
            block = Repetition(match.group(1), tuple(parse(match.group(2).strip())))
            target().append(block)
            stack.append(block)
        elif inner == "/each":
            if not stack or not isinstance(stack[-1], Repetition):
                raise TemplateError("#{/each} without #{each}")
            stack.pop()
        elif keyword == "calc" and rest:
            target().append(Calculation(rest, value))
        else:
            target().append(_substitution(inner, value))
    if stack:
        opened = "#{each}" if isinstance(stack[-1], Repetition) else "#{if}"
        raise TemplateError(f"{opened} is never closed")
    return root


def _tokens(template: str) -> Iterator[tuple[str, str]]:
    """("text", text) and ("expression", "#{...}") pieces; ``##{`` is a literal ``#{``."""
    position, length = 0, len(template)
    while position < length:
        start = template.find("#{", position)
        if start < 0:
            yield "text", template[position:]
            return
        if start > 0 and template[start - 1] == "#":
            yield "text", template[position : start - 1] + "#{"
            position = start + 2
            continue
        end = _closing_brace(template, start + 2)
        if end < 0:  # never closed: the rest is plain text
            yield "text", template[position:]
            return
        if start > position:
            yield "text", template[position:start]
        yield "expression", template[start : end + 1]
        position = end + 1


def _closing_brace(text: str, position: int) -> int:
    depth, quoted = 1, False
    while position < len(text):
        char = text[position]
        if char == '"':
            quoted = not quoted
        elif not quoted and text.startswith("#{", position):
            depth += 1
            position += 2
            continue
        elif not quoted and char == "}":
            depth -= 1
            if depth == 0:
                return position
        position += 1
    return -1


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quotes, brackets and nested ``#{}``."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, index = 0, False, 0
    while index < len(text):
        char = text[index]
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "[{":
            depth += 1
        elif not quoted and char in "]}":
            depth -= 1
        elif not quoted and depth == 0 and char == separator:
            parts.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _words(text: str) -> list[str]:
    """Whitespace-separated words; a double-quoted word may hold spaces."""
    return [
        quoted if quoted or plain == "" else plain
        for quoted, plain in re.findall(r'"([^"]*)"|(\S+)', text)
    ]


def _substitution(inner: str, raw: str) -> Substitution:
    pieces = _split_top_level(inner, "|")
    filters = []
    for piece in pieces[1:]:
        words = _words(piece.strip())
        if not words:
            raise TemplateError(f"empty filter in {raw!r}")
        filters.append(Filter(words[0], tuple(words[1:])))
    return Substitution(tuple(parse(pieces[0].strip())), tuple(filters), raw)


def _condition(text: str) -> Condition:
    match = re.fullmatch(r"(.+?)\s*(==|!=)\s*(.+)", text, re.DOTALL)
    if match is None:
        return Condition(_substitution(text, f"#{{{text}}}"))
    left, operator, right = match.group(1), match.group(2), match.group(3).strip()
    if len(right) >= 2 and right[0] == right[-1] == '"':
        return Condition(_substitution(left, left), operator, right_literal=right[1:-1])
    return Condition(_substitution(left, left), operator, right=_substitution(right, right))


# --- evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One element of an ``#{each}``: its value, and how to read ``item.Property``."""

    value: str
    group: str | None = None  # "Endpoint[A]": properties are variables under it
    element: Any = None  # a JSON element: properties navigate it
    is_json: bool = False


@dataclass(slots=True)
class _Scope:
    name: str
    item: Item
    index: int
    count: int


class Evaluator:
    def __init__(self, variables: VariableSet) -> None:
        self.variables = variables
        self._resolving: list[str] = []
        self._scopes: list[_Scope] = []

    def render(self, template: str) -> str:
        return "".join(self._render(parse(template)))

    # rendering ---------------------------------------------------------------------------

    def _render(self, nodes: list[Node] | tuple[Node, ...]) -> Iterator[str]:
        for node in nodes:
            if isinstance(node, Text):
                yield node.text
            elif isinstance(node, Substitution):
                value = self._substitute(node)
                yield node.raw if value is None else value
            elif isinstance(node, Conditional):
                chosen = self._truthy(node.condition) != node.negate
                yield from self._render(node.then if chosen else node.otherwise)
            elif isinstance(node, Repetition):
                yield from self._repeat(node)
            else:
                result = self._calculate(node.expression)
                yield node.raw if result is None else result

    def _substitute(self, node: Substitution) -> str | None:
        name = "".join(self._render(node.name)).strip()
        value = self.lookup(name) if name else None
        if value is None and not (node.filters and not name):
            return None
        for filter_ in node.filters:
            try:
                value = apply_filter(filter_.name, value, filter_.args)
            except FilterError:
                return None
            if value is None:
                return None
        return value

    def _truthy(self, condition: Condition) -> bool:
        left = self._substitute(condition.left)
        if condition.operator is None:
            return left is not None and left.strip().lower() not in ("", "false", "no", "0")
        if condition.right_literal is not None:
            right: str | None = condition.right_literal
        else:
            assert condition.right is not None
            right = self._substitute(condition.right)
        equal = (left or "") == (right or "")
        return equal if condition.operator == "==" else not equal

    def _repeat(self, node: Repetition) -> Iterator[str]:
        name = "".join(self._render(node.collection)).strip()
        items = self._items(name)
        for index, item in enumerate(items):
            self._scopes.append(_Scope(node.variable.lower(), item, index, len(items)))
            try:
                yield "".join(self._render(node.body))
            finally:
                self._scopes.pop()

    # lookups -----------------------------------------------------------------------------

    def lookup(self, name: str) -> str | None:
        key = name.lower()
        for scope in reversed(self._scopes):
            if key in (EACH_INDEX, EACH_FIRST, EACH_LAST):
                return {
                    EACH_INDEX: str(scope.index),
                    EACH_FIRST: str(scope.index == 0),
                    EACH_LAST: str(scope.index == scope.count - 1),
                }[key]
            if key == scope.name:
                return scope.item.value
            if key.startswith(scope.name + ".") or key.startswith(scope.name + "["):
                return self._property(scope.item, name[len(scope.name) :])
        if name in self.variables:
            return self._value_of(name)
        return self._navigate_json(name)

    def _value_of(self, name: str) -> str | None:
        key = name.lower()
        if key in self._resolving:
            chain = " -> ".join([*self._resolving, key])
            raise TemplateError(f"variables refer to each other in a cycle: {chain}")
        if len(self._resolving) >= MAX_DEPTH:
            raise TemplateError("variables nest too deeply")
        raw = self.variables.get(name)
        if raw is None:
            return None
        if "#{" not in raw:
            return raw
        self._resolving.append(key)
        try:
            return "".join(self._render(parse(raw)))
        finally:
            self._resolving.pop()

    def _property(self, item: Item, rest: str) -> str | None:
        """``rest`` is ``.Prop...`` or ``[i]...`` after the loop variable's name."""
        if item.group is not None:
            return self.lookup(item.group + rest)
        if item.is_json:
            return _json_text(_walk(item.element, _path(rest)))
        return None

    def _navigate_json(self, name: str) -> str | None:
        """``Custom.MyJson.Sizes[0].price``: the longest defined prefix holding JSON, then
        the rest of the path inside it."""
        for cut in reversed([m.start() for m in re.finditer(r"[.\[]", name)]):
            prefix = name[:cut]
            if prefix not in self.variables:
                continue
            document = _as_json(self._value_of(prefix))
            if document is None:
                return None
            return _json_text(_walk(document, _path(name[cut:])))
        return None

    def _items(self, name: str) -> list[Item]:
        value = self.lookup(name) if name else None
        if value is not None:
            document = _as_json(value)
            if isinstance(document, list):
                return [Item(_json_text(e) or "", element=e, is_json=True) for e in document]
            if isinstance(document, dict):
                return [
                    Item(key, element={"Key": key, "Value": v}, is_json=True)
                    for key, v in document.items()
                ]
            return [Item(part.strip()) for part in value.split(",") if part.strip()]
        groups: dict[str, str] = {}
        pattern = re.compile(re.escape(name) + r"\[([^\]]+)\]", re.IGNORECASE)
        for variable in self.variables:
            match = pattern.match(variable.name)
            if match is not None:
                groups.setdefault(match.group(1).lower(), match.group(1))
        return [Item(key, group=f"{name}[{key}]") for key in groups.values()]

    # calc --------------------------------------------------------------------------------

    def _calculate(self, expression: str) -> str | None:
        try:
            result = _Arithmetic(expression, self.lookup).parse()
        except (ValueError, ZeroDivisionError):
            return None
        return str(int(result)) if result == int(result) else repr(result)


def render(template: str, variables: VariableSet) -> str:
    """``template`` with its expressions evaluated; TemplateError when it cannot be."""
    return Evaluator(variables).render(template)


# --- JSON values ----------------------------------------------------------------------------


def _as_json(value: str | None) -> Any:
    if value is None:
        return None
    stripped = value.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def _path(rest: str) -> list[str | int]:
    steps: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[([^\]]*)\]", rest):
        if name:
            steps.append(name)
        elif index.strip().lstrip("-").isdigit():
            steps.append(int(index))
        else:
            steps.append(index.strip().strip("'\""))
    return steps


_MISSING = object()


def _walk(document: Any, steps: list[str | int]) -> Any:
    current = document
    for step in steps:
        if isinstance(current, dict):
            key = str(step)
            found = next((k for k in current if k.lower() == key.lower()), None)
            current = current[found] if found is not None else _MISSING
        elif (
            isinstance(current, list)
            and isinstance(step, int)
            and -len(current) <= step < len(current)
        ):
            current = current[step]
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def _json_text(value: Any) -> str | None:
    if value is _MISSING:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class _Arithmetic:
    """``+ - * /`` with parentheses over numbers and variable names (``#{calc}``)."""

    _TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][\w.:\[\]-]*)|(.))")

    def __init__(self, text: str, lookup: Callable[[str], str | None]) -> None:
        self.tokens = [m.groups() for m in self._TOKEN.finditer(text) if any(m.groups())]
        self.position = 0
        self.lookup = lookup

    def parse(self) -> float:
        value = self._sum()
        if self.position != len(self.tokens):
            raise ValueError("unexpected input")
        return value

    def _peek(self) -> str | None:
        if self.position < len(self.tokens):
            return self.tokens[self.position][2]
        return None

    def _sum(self) -> float:
        value = self._product()
        while self._peek() in ("+", "-"):
            operator = self.tokens[self.position][2]
            self.position += 1
            right = self._product()
            value = value + right if operator == "+" else value - right
        return value

    def _product(self) -> float:
        value = self._atom()
        while self._peek() in ("*", "/"):
            operator = self.tokens[self.position][2]
            self.position += 1
            right = self._atom()
            value = value * right if operator == "*" else value / right
        return value

    def _atom(self) -> float:
        if self.position >= len(self.tokens):
            raise ValueError("unexpected end")
        number, name, symbol = self.tokens[self.position]
        self.position += 1
        if number:
            return float(number)
        if name:
            text = self.lookup(name)
            if text is None:
                raise ValueError(f"{name} is not defined")
            return float(text)
        if symbol == "(":
            inner = self._sum()
            if self._peek() != ")":
                raise ValueError("missing )")
            self.position += 1
            return inner
        if symbol == "-":
            return -self._atom()
        raise ValueError(f"unexpected {symbol!r}")
