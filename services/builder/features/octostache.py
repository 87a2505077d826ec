"""Substitute Variables in Templates: the deployment server's template language (Octostache).

``#{Name}`` is replaced by the variable's value (names are case-insensitive, values may hold
templates themselves, a cycle is an error); ``##{`` writes a literal ``#{``; a variable that
is not defined is left exactly as written. Also ``#{Name[#{Key}]}`` indexes,
``#{Json.Path[0].field}`` navigation into JSON values, ``#{if}``/``#{else}``/``#{unless}``
with ``==`` and ``!=``, ``#{each x in Items}`` (over ``Items[Key].Prop`` groups, JSON arrays
and objects, or comma-separated values) with ``Octopus.Template.Each.Index|First|Last``,
``#{calc}``, and filters after ``|`` (``features.filters``).

Templates and variables are the tenant's, so evaluation has a Budget: characters produced
(every intermediate value, so a template that doubles itself at each level fails long before
its result exists) and steps (expressions, loop items, variables scanned: work that produces
nothing). Nesting, of blocks and expressions and of variables in variables, is bounded too.
An Evaluator also notes which sensitive variables a rendering read, directly, through a
filter or through another variable, so that text bound for the image config can refuse them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.builder.features.filters import FilterError, ResultTooLarge, apply_filter
from services.builder.features.variables import VariableSet

DEFAULT_OUTPUT_BUDGET = 64 * 1024 * 1024  # characters produced in one feature run
DEFAULT_STEP_BUDGET = 1_000_000  # expressions evaluated, loop items, variables scanned
MAX_DEPTH = 32  # variables whose values refer to variables
MAX_NESTING = 64  # blocks, expressions and variables inside each other
MAX_PARENTHESES = 32  # in a #{calc}
EACH_INDEX = "octopus.template.each.index"
EACH_FIRST = "octopus.template.each.first"
EACH_LAST = "octopus.template.each.last"
_T = TypeVar("_T")


class TemplateError(Exception):
    """The template cannot be evaluated: unbalanced blocks, a cycle, a bad expression, a
    budget spent."""


class Budget:
    """What evaluating may spend, shared by every template of one feature run: characters
    (each string evaluation makes, and each value a filter, comparison or lookup reads, every
    time) and steps. Work per step is bounded by characters, so together they bound time."""

    def __init__(
        self, characters: int = DEFAULT_OUTPUT_BUDGET, steps: int = DEFAULT_STEP_BUDGET
    ) -> None:
        self.characters_limit, self.characters = characters, characters
        self.steps_limit, self.steps = steps, steps

    def produce(self, count: int) -> None:
        """Charge ``count`` characters made or read (a join before it is made)."""
        self.characters -= count
        if self.characters < 0:
            raise TemplateError(
                f"evaluation exceeds the output budget of {self.characters_limit} characters"
            )

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise TemplateError(f"evaluation exceeds the step budget of {self.steps_limit} steps")


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


def parse(template: str, depth: int = 0) -> list[Node]:
    if depth > MAX_NESTING:
        raise TemplateError(f"expressions nest more than {MAX_NESTING} deep")
    root: list[Node] = []
    stack: list[Conditional | Repetition] = []

    def target() -> list[Node]:
        if not stack:
            return root
        block = stack[-1]
        if isinstance(block, Conditional):
            return block.otherwise if block.in_else else block.then
        return block.body

    for kind, value in _tokens(template, MAX_NESTING - depth):
        if kind == "text":
            target().append(Text(value))
            continue
        inner = value[2:-1].strip()
        keyword, _, rest = inner.partition(" ")
        rest = rest.strip()
        if keyword in ("if", "unless") and rest:
            block: Conditional | Repetition = Conditional(
                _condition(rest, depth), keyword == "unless"
            )
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
            block = Repetition(match.group(1), tuple(parse(match.group(2).strip(), depth + 1)))
            target().append(block)
            stack.append(block)
        elif inner == "/each":
            if not stack or not isinstance(stack[-1], Repetition):
                raise TemplateError("#{/each} without #{each}")
            stack.pop()
        elif keyword == "calc" and rest:
            target().append(Calculation(rest, value))
        else:
            target().append(_substitution(inner, value, depth))
        if len(stack) > MAX_NESTING:
            raise TemplateError(f"blocks nest more than {MAX_NESTING} deep")
    if stack:
        opened = "#{each}" if isinstance(stack[-1], Repetition) else "#{if}"
        raise TemplateError(f"{opened} is never closed")
    return root


def _tokens(template: str, room: int) -> Iterator[tuple[str, str]]:
    """("text", text) and ("expression", "#{...}") pieces; ``##{`` is a literal ``#{``. An
    expression holding more than ``room`` levels of ``#{`` is refused before it is parsed
    (level by level, each a scan of what it holds)."""
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
        end, deepest = _closing_brace(template, start + 2)
        if end < 0:  # never closed: the rest is plain text
            yield "text", template[position:]
            return
        if deepest > room:
            raise TemplateError(f"expressions nest more than {MAX_NESTING} deep")
        if start > position:
            yield "text", template[position:start]
        yield "expression", template[start : end + 1]
        position = end + 1


_BRACES = re.compile(r'"|#\{|\}')


def _closing_brace(text: str, position: int) -> tuple[int, int]:
    """Where the ``}`` closing an expression opened before ``position`` is (or -1), and the
    deepest it nests. The scan jumps between quotes and braces: a long template is not
    walked character by character in Python."""
    depth, deepest, quoted = 1, 1, False
    for match in _BRACES.finditer(text, position):
        token = match.group()
        if token == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif token == "#{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
            if depth == 0:
                return match.start(), deepest
    return -1, deepest


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quotes, brackets and nested ``#{}``."""
    parts: list[str] = []
    depth, quoted, start = 0, False, 0
    for match in re.finditer(r'["\[\]{}]|' + re.escape(separator), text):
        char = match.group()
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif depth == 0:
            parts.append(text[start : match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts


def _words(text: str) -> list[str]:
    """Whitespace-separated words; a double-quoted word may hold spaces."""
    return [
        quoted if quoted or plain == "" else plain
        for quoted, plain in re.findall(r'"([^"]*)"|(\S+)', text)
    ]


def _substitution(inner: str, raw: str, depth: int) -> Substitution:
    pieces = _split_top_level(inner, "|")
    filters = []
    for piece in pieces[1:]:
        words = _words(piece.strip())
        if not words:
            raise TemplateError(f"empty filter in {raw!r}")
        filters.append(Filter(words[0], tuple(words[1:])))
    return Substitution(tuple(parse(pieces[0].strip(), depth + 1)), tuple(filters), raw)


def _condition(text: str, depth: int) -> Condition:
    """``Left``, ``Left == "literal"`` or ``Left != Right``: split at the first operator
    (found with ``str.find``: a pattern with ``.+?\\s*`` backtracks quadratically)."""
    found = [i for i in (text.find("==", 1), text.find("!=", 1)) if i > 0]
    operator_at = min(found, default=-1)
    right = text[operator_at + 2 :].strip() if operator_at > 0 else ""
    if not right:
        return Condition(_substitution(text, f"#{{{text}}}", depth))
    left, operator = text[:operator_at].rstrip(), text[operator_at : operator_at + 2]
    if len(right) >= 2 and right[0] == right[-1] == '"':
        return Condition(_substitution(left, left, depth), operator, right_literal=right[1:-1])
    return Condition(
        _substitution(left, left, depth), operator, right=_substitution(right, right, depth)
    )


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
    name: str  # lower case
    prefixes: tuple[str, str]  # "name." and "name["
    item: Item
    index: int
    count: int


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    sensitive: frozenset[str]  # names of the sensitive variables whose values were read


class Evaluator:
    """Evaluates templates against one VariableSet, spending one Budget (a feature run)."""

    def __init__(self, variables: VariableSet, budget: Budget | None = None) -> None:
        self.variables = variables
        self.budget = budget or Budget()
        self._resolving: list[str] = []
        self._scopes: list[_Scope] = []
        self._depth = 0
        self._read: set[str] = set()
        self._parsed: dict[str, list[Node] | None] = {}  # variable values, parsed once
        # Variable values rendered, with the sensitive variables they read: a template that
        # uses A twice, A using B twice, ... costs one rendering per variable, not 2**depth.
        # A loop item may change what a value means, so entering or leaving one forgets them.
        self._values: dict[str, tuple[str, frozenset[str]]] = {}
        self._documents: dict[str, Any] = {}  # values parsed as JSON, once each
        self._groups: dict[str, list[Item]] = {}  # "#{each e in Endpoint}": Endpoint[*]
        self._keys: dict[int, tuple[Any, dict[str, str]]] = {}  # large JSON objects' keys

    def render(self, template: str) -> str:
        return self.evaluate(template).text

    def evaluate(self, template: str) -> Rendered:
        """``template`` rendered, with the sensitive variables the rendering read."""
        self._read = set()
        if "#{" not in template:
            return Rendered(template, frozenset())
        text = self._guarded(lambda: self._text(parse(template)))
        return Rendered(text, frozenset(self._read))

    def lookup(self, name: str) -> str | None:
        """The value of the variable (or loop item, or JSON path) ``name``, evaluated."""
        return self._guarded(lambda: self._lookup(name))

    def _guarded(self, evaluate: Callable[[], _T]) -> _T:
        # The nesting limits keep well inside Python's recursion limit; this is the backstop
        # for a caller that is already deep (a JSON value nested hundreds of levels).
        try:
            return evaluate()
        except RecursionError as exc:
            raise TemplateError("the template or a value nests too deeply") from exc

    # rendering ---------------------------------------------------------------------------

    def _text(self, nodes: list[Node] | tuple[Node, ...]) -> str:
        if self._depth >= MAX_NESTING:
            raise TemplateError("the template and the variables it uses nest too deeply")
        self._depth += 1
        try:
            pieces = []
            for node in nodes:
                pieces.append(self._node(node))
            return self._join(pieces)
        finally:
            self._depth -= 1

    def _join(self, pieces: list[str]) -> str:
        """The pieces as one string, charged to the budget before it is made."""
        if len(pieces) == 1:
            return pieces[0]
        self.budget.produce(sum(map(len, pieces)))
        return "".join(pieces)

    def _node(self, node: Node) -> str:
        self.budget.step()
        if isinstance(node, Text):
            return node.text
        if isinstance(node, Substitution):
            value = self._substitute(node)
            return node.raw if value is None else value
        if isinstance(node, Conditional):
            chosen = self._truthy(node.condition) != node.negate
            return self._text(node.then if chosen else node.otherwise)
        if isinstance(node, Repetition):
            return self._repeat(node)
        result = self._calculate(node.expression)
        return node.raw if result is None else result

    def _substitute(self, node: Substitution) -> str | None:
        name = self._text(node.name).strip()
        value = self._lookup(name) if name else None
        if value is None and not (node.filters and not name):
            return None
        for filter_ in node.filters:
            self.budget.step()
            self.budget.produce(len(value or "") + sum(map(len, filter_.args)))
            try:
                value = apply_filter(filter_.name, value, filter_.args)
            except ResultTooLarge as exc:
                raise TemplateError(f"evaluation exceeds the output budget: {exc}") from exc
            except FilterError:
                return None
            if value is None:
                return None
            self.budget.produce(len(value))
        return value

    def _truthy(self, condition: Condition) -> bool:
        left = self._substitute(condition.left)
        self.budget.produce(len(left or ""))
        if condition.operator is None:
            return left is not None and left.strip().lower() not in ("", "false", "no", "0")
        if condition.right_literal is not None:
            right: str | None = condition.right_literal
        else:
            assert condition.right is not None
            right = self._substitute(condition.right)
        self.budget.produce(len(right or ""))
        equal = (left or "") == (right or "")
        return equal if condition.operator == "==" else not equal

    def _repeat(self, node: Repetition) -> str:
        name = self._text(node.collection).strip()
        items = self._items(name)
        variable = node.variable.lower()
        prefixes = (variable + ".", variable + "[")
        pieces = []
        for index, item in enumerate(items):
            self.budget.step()
            self._scopes.append(_Scope(variable, prefixes, item, index, len(items)))
            self._values.clear()
            try:
                pieces.append(self._text(node.body))
            finally:
                self._scopes.pop()
                self._values.clear()
        return self._join(pieces)

    # lookups -----------------------------------------------------------------------------

    def _lookup(self, name: str) -> str | None:
        self.budget.produce(len(name))
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
            if key.startswith(scope.prefixes):
                return self._property(scope.item, name[len(scope.name) :])
        if name in self.variables:
            return self._value_of(name)
        return self._navigate_json(name)

    def _value_of(self, name: str) -> str | None:
        variable = self.variables.find(name)
        if variable is None:
            return None
        if variable.sensitive:
            self._read.add(variable.name)
        raw = variable.value
        if raw not in self._parsed:  # the same string object each time: hashed once
            try:
                self._parsed[raw] = parse(raw) if "#{" in raw else None
            except TemplateError:
                if variable.sensitive:  # the error would quote part of the value
                    raise TemplateError(f"the value of {variable.name} is not a template") from None
                raise
        nodes = self._parsed[raw]
        if nodes is None:
            return raw
        key = name.lower()
        if key in self._values:
            value, read = self._values[key]
            self._read |= read
            return value
        if key in self._resolving:
            chain = " -> ".join([*self._resolving, key])
            raise TemplateError(f"variables refer to each other in a cycle: {chain}")
        if len(self._resolving) >= MAX_DEPTH:
            raise TemplateError(f"variables refer to variables more than {MAX_DEPTH} deep")
        self._resolving.append(key)
        outer, self._read = self._read, set()
        try:
            value = self._text(nodes)
            self._values[key] = (value, frozenset(self._read))
            return value
        finally:
            self._resolving.pop()
            self._read = outer | self._read

    def _property(self, item: Item, rest: str) -> str | None:
        """``rest`` is ``.Prop...`` or ``[i]...`` after the loop variable's name."""
        if item.group is not None:
            return self._lookup(item.group + rest)
        if item.is_json:
            return self._json_text(self._walk(item.element, _path(rest)))
        return None

    def _navigate_json(self, name: str) -> str | None:
        """``Custom.MyJson.Sizes[0].price``: the longest defined prefix holding JSON, then
        the rest of the path inside it."""
        cuts = [m.start() for m in re.finditer(r"[.\[]", name[: self.variables.longest_name + 1])]
        for cut in reversed(cuts):
            self.budget.produce(cut)
            prefix = name[:cut]
            if prefix not in self.variables:
                continue
            value = self._value_of(prefix)
            document = None if value is None else self._document(value)
            if document is None:
                return None
            return self._json_text(self._walk(document, _path(name[cut:])))
        return None

    def _walk(self, document: Any, steps: list[str | int]) -> Any:
        current = document
        for step in steps:
            if isinstance(current, dict):
                found = self._key(current, str(step))
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

    def _key(self, document: dict[str, Any], key: str) -> str | None:
        """The first key of ``document`` equal to ``key`` ignoring case; a large object is
        indexed once (it lives in ``_documents``; the index holds it, so its id stays its)."""
        if len(document) <= 8:  # an item's {"Key": ..., "Value": ...}, and other small ones
            self.budget.produce(sum(map(len, document)))
            return next((k for k in document if k.lower() == key.lower()), None)
        entry = self._keys.get(id(document))
        if entry is None or entry[0] is not document:
            self.budget.step(len(document))
            index: dict[str, str] = {}
            for k in document:
                index.setdefault(k.lower(), k)
            entry = self._keys[id(document)] = (document, index)
        return entry[1].get(key.lower())

    def _document(self, value: str) -> Any:
        """``value`` parsed as JSON, or None; each distinct value is parsed (and charged)
        once, however many lookups and loops read it."""
        if not value.lstrip().startswith(("{", "[")):
            return None
        if value not in self._documents:
            self.budget.produce(len(value))
            self._documents[value] = _as_json(value)
        return self._documents[value]

    def _json_text(self, value: Any) -> str | None:
        text = _json_text(value)
        if text is not None and isinstance(value, (dict, list)):
            self.budget.produce(len(text))
        return text

    def _items(self, name: str) -> list[Item]:
        value = self._lookup(name) if name else None
        if value is not None:
            document = self._document(value)
            if isinstance(document, list):
                self.budget.step(len(document))
                return [Item(self._json_text(e) or "", element=e, is_json=True) for e in document]
            if isinstance(document, dict):
                self.budget.step(len(document))
                return [
                    Item(key, element={"Key": key, "Value": v}, is_json=True)
                    for key, v in document.items()
                ]
            self.budget.produce(len(value))  # before splitting: the parts cost memory
            self.budget.step(value.count(","))
            return [Item(part.strip()) for part in value.split(",") if part.strip()]
        key = name.lower()
        if key not in self._groups:
            self.budget.step(len(self.variables))
            groups: dict[str, str] = {}
            pattern = re.compile(re.escape(name) + r"\[([^\]]+)\]", re.IGNORECASE)
            for variable in self.variables:
                match = pattern.match(variable.name)
                if match is not None:
                    groups.setdefault(match.group(1).lower(), match.group(1))
            self._groups[key] = [Item(g, group=f"{name}[{g}]") for g in groups.values()]
        return self._groups[key]

    # calc --------------------------------------------------------------------------------

    def _calculate(self, expression: str) -> str | None:
        def number(name: str) -> str | None:
            text = self._lookup(name)
            self.budget.produce(len(text or ""))
            return text

        try:
            result = _Arithmetic(expression, number).parse()
        except (ValueError, ZeroDivisionError):
            return None
        if not math.isfinite(result):
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
        self.depth = 0

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
        if symbol not in ("(", "-"):
            raise ValueError(f"unexpected {symbol!r}")
        self.depth += 1
        if self.depth > MAX_PARENTHESES:
            raise ValueError("parentheses or signs nest too deeply")
        try:
            if symbol == "-":
                return -self._atom()
            inner = self._sum()
            if self._peek() != ")":
                raise ValueError("missing )")
            self.position += 1
            return inner
        finally:
            self.depth -= 1
