"""Substitute Variables in Templates: the deployment server's template language (Octostache).

``#{Name}`` is replaced by the variable's value (names are case-insensitive, values may hold
templates themselves, a cycle is an error); ``##{`` writes a literal ``#{``; an expression
that cannot be evaluated (an undefined variable, an unknown filter, a filter whose arguments
do not fit) is left as the server writes it back and named in ``Rendered.error``. Also
``#{Name[#{Key}]}`` indexes, ``#{Json.Path[0].field}`` navigation into JSON values,
``#{if}``/``#{elseif}``/``#{else}``/``#{unless}`` with ``==`` and ``!=`` (either side a
variable, a filter chain or a quoted literal), ``#{each x in Items}`` (over
``Items[Key].Prop`` groups, JSON arrays and objects, or comma-separated values) with
``Octopus.Template.Each.Index|First|Last``, ``#{calc}``, and filters after ``|``
(``features.filters``).

The grammar is the server's, rule for rule, so what does not parse is what the server cannot
parse. A template that does not parse is handled as the server does in one of its two modes:
``halt_on_error`` (how it evaluates a variable's value, and ``VariableDictionary.Evaluate``)
leaves the whole template as written; otherwise (how it substitutes in files) the part that
does not parse is kept as text and the rest is evaluated; a block opened and never closed,
or closed and never opened, is text like any other and named in ``Rendered.error``.

Templates and variables are the tenant's, so evaluation has a Budget: characters produced
(every intermediate value, so a template that doubles itself at each level fails long before
its result exists) and steps (expressions, loop items, variables scanned: work that produces
nothing). Nesting, of blocks and expressions and of variables in variables, is bounded too,
and so are JSON values (as deep as the server reads them). An Evaluator also notes which
sensitive variables a rendering read, directly, through a filter or through another
variable, so that text bound for the image config can refuse them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from services.builder.features.filters import (
    FilterError,
    FilterFailed,
    ResultTooLarge,
    apply_filter,
)
from services.builder.features.variables import Variable, VariableSet

DEFAULT_OUTPUT_BUDGET = 64 * 1024 * 1024  # characters produced in one feature run
DEFAULT_STEP_BUDGET = 1_000_000  # expressions evaluated, loop items, variables scanned
MAX_DEPTH = 32  # variables whose values refer to variables
MAX_NESTING = 64  # blocks, expressions and indexers inside each other
MAX_PARENTHESES = 32  # in a #{calc}
MAX_JSON_DEPTH = 64  # the server's JSON reader refuses deeper documents
_T = TypeVar("_T")


class TemplateError(Exception):
    """The template cannot be evaluated: a cycle, a nesting or budget limit, or (strictly) a
    malformed block or a template that does not parse."""


class ParseError(TemplateError):
    """The template does not parse (the server then leaves it as written)."""


class _CycleError(TemplateError):
    """A variable's value refers, through others, to the variable itself."""


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


# --- syntax ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Name:
    text: str  # ".Name", trimmed


@dataclass(frozen=True, slots=True)
class Index:
    text: str  # "[Key]"


@dataclass(frozen=True, slots=True)
class SymbolIndex:
    symbol: Symbol  # "[#{Other.Name}]"


Step = Name | Index | SymbolIndex


@dataclass(frozen=True, slots=True)
class Symbol:
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class FilterCall:
    argument: Expression
    name: str
    options: tuple[Node, ...]  # each rendered to one argument string


Expression = Symbol | FilterCall


@dataclass(frozen=True, slots=True)
class Literal:
    text: str  # a quoted string in a condition


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Substitution:
    expression: Expression


@dataclass(frozen=True, slots=True)
class Conditional:
    keyword: str  # "if" or "unless"
    left: Expression | Literal
    operator: str | None  # "==", "!=" or None (truthiness)
    right: Expression | Literal | None
    then: tuple[Node, ...]
    otherwise: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Repetition:
    enumerator: str
    collection: Symbol
    body: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class CalcVariable:
    symbol: Symbol


@dataclass(frozen=True, slots=True)
class Operation:
    left: Calc
    operator: str
    right: Calc


Calc = Number | CalcVariable | Operation


@dataclass(frozen=True, slots=True)
class Calculation:
    expression: Calc


Node = Text | Substitution | Conditional | Repetition | Calculation


# --- parsing -----------------------------------------------------------------------------------

# Identifiers: letters, digits, white space and _ - : / ~ ( ); white space before a keyword
# (" in ", " == ", " != ") ends one. Filter names and bare filter arguments take no spaces.
_IDENTIFIER = re.compile(r"[\w\s\-:/~()]+")
_IDENTIFIER_NO_SPACE = re.compile(r"[\w\-:/~()]+")
_BEFORE_KEYWORD = re.compile(r"\s(?=(?:in|==|!=)\s)")
_SPACE = re.compile(r"\s*")
_NOT_BRACKET = re.compile(r"[^\[\]]+")
_QUOTED = re.compile(r'"[^"#]*')  # a quoted filter argument holds neither " nor #
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_CONDITIONAL = re.compile(r"#\{\s*(if|unless)\s+", re.IGNORECASE)
_ELSEIF = re.compile(r"#\{\s*elseif\s+", re.IGNORECASE)
_EACH = re.compile(r"#\{\s*each\s+", re.IGNORECASE)
_CALC = re.compile(r"#\{\s*calc\s+", re.IGNORECASE)


class _NoMatch(Exception):
    """A rule does not match; ``at`` is how far it got (the furthest of its alternatives)."""

    def __init__(self, at: int) -> None:
        self.at = at


class _Parser:
    """Recursive descent over one template, the server's rules in its order: at each place a
    conditional, a repetition, a calculation, a substitution, or text. A rule that fails is
    retried as the next one, as the server's parser does; results are remembered by position,
    so a failed block costs its length once, not once per enclosing attempt."""

    def __init__(self, text: str, budget: Budget | None = None) -> None:
        self.text = text
        self.budget = budget
        self.length = len(text)
        self.depth = 0
        self.memo: dict[tuple[str, int], tuple[Any, int] | int] = {}

    # the template --------------------------------------------------------------------------

    def template(self, position: int, *, until_else: bool = False) -> tuple[tuple[Node, ...], int]:
        nodes: list[Node] = []
        while position < self.length:
            if until_else and (
                self.text.startswith("#{else}", position) or _ELSEIF.match(self.text, position)
            ):
                break
            if self.budget is not None:
                self.budget.step()  # a block that never closes walks what follows it
            try:
                node, position = self.token(position)
            except _NoMatch:
                break
            nodes.append(node)
        return tuple(nodes), position

    def whole(self, *, halt_on_error: bool) -> tuple[Node, ...]:
        nodes, position = self.template(0)
        if position == self.length:
            return nodes
        result = list(nodes)
        while position < self.length:
            try:
                node, position = self.token(position)
                result.append(node)
            except _NoMatch as failure:
                if halt_on_error or failure.at <= position:
                    raise self.error(failure.at) from None
                result.append(Text(self.text[position : failure.at]))
                position = failure.at
        return tuple(result)

    def error(self, at: int) -> ParseError:
        line = self.text.count("\n", 0, at) + 1
        column = at - (self.text.rfind("\n", 0, at) + 1) + 1
        return ParseError(f"the template does not parse at line {line}, column {column}")

    def token(self, position: int) -> tuple[Node, int]:
        return self._memo("token", position, self._token)

    def _token(self, position: int) -> tuple[Node, int]:
        if not self.text.startswith("#{", position):
            return self.plain_text(position)
        furthest = position + 2  # where a block's keyword was expected
        rules: list[Callable[[int], tuple[Node, int]]] = []
        if _CONDITIONAL.match(self.text, position):
            rules.append(self.conditional)
        elif _EACH.match(self.text, position):
            rules.append(self.repetition)
        elif _CALC.match(self.text, position):
            rules.append(self.calculation)
        rules.append(self.substitution)
        for rule in rules:
            try:
                return rule(position)
            except _NoMatch as failure:
                furthest = max(furthest, failure.at)
        raise _NoMatch(furthest)

    def plain_text(self, position: int) -> tuple[Node, int]:
        """Text up to an unescaped ``#{``: ``##{`` is ``#{``, ``###{`` is ``#`` and a token."""
        text, length, at = self.text, self.length, position
        pieces: list[str] = []
        while at < length:
            hash_at = text.find("#", at)
            if hash_at < 0:
                pieces.append(text[at:])
                at = length
                break
            pieces.append(text[at:hash_at])
            at = hash_at
            if at + 1 == length:
                pieces.append("#")
                at += 1
            elif text.startswith("###{", at) and at + 2 < length - 2:
                pieces.append("#")
                at += 2
            elif text.startswith("##{", at):
                pieces.append("#{")
                at += 3
            elif text[at + 1] != "{":
                pieces.append(text[at : at + 2])
                at += 2
            else:
                break
        if at == position:
            raise _NoMatch(position + 1)
        return Text("".join(pieces)), at

    # blocks --------------------------------------------------------------------------------

    def conditional(self, position: int) -> tuple[Node, int]:
        return self._memo("conditional", position, self._conditional)

    def _conditional(self, position: int) -> tuple[Node, int]:
        opener = _CONDITIONAL.match(self.text, position)
        if opener is None:
            raise _NoMatch(position + 2)
        keyword = opener.group(1).lower()
        with self._nested():
            left, operator, right, at = self.condition(opener.end())
            at = self.expect("}", self.space(at))
            then, at = self.template(at, until_else=True)
            # "#{elseif B}...": an #{if B} in the else branch of what precedes it
            chain: list[tuple[Expression | Literal, str | None, Expression | Literal | None]] = []
            bodies: list[tuple[Node, ...]] = []
            while (elseif := _ELSEIF.match(self.text, at)) is not None:
                condition = self.condition(elseif.end())
                chain.append(condition[:3])
                body, at = self.template(
                    self.expect("}", self.space(condition[3])), until_else=True
                )
                bodies.append(body)
            otherwise: tuple[Node, ...] = ()
            if self.text.startswith("#{else}", at):
                otherwise, at = self.template(at + len("#{else}"))
            at = self.expect("#{/" + keyword + "}", at)
        for (else_left, else_operator, else_right), body in zip(
            reversed(chain), reversed(bodies), strict=True
        ):
            nested = Conditional("if", else_left, else_operator, else_right, body, otherwise)
            otherwise = (nested,)
        return Conditional(keyword, left, operator, right, then, otherwise), at

    def condition(
        self, position: int
    ) -> tuple[Expression | Literal, str | None, Expression | Literal | None, int]:
        left, at = self.operand(position)
        operator_at = self.space(at)
        operator = self.text[operator_at : operator_at + 2]
        if operator in ("==", "!="):
            right, end = self.operand(operator_at + 2)
            return left, operator, right, end
        if isinstance(left, Literal):
            raise _NoMatch(operator_at)
        return left, None, None, at

    def operand(self, position: int) -> tuple[Expression | Literal, int]:
        at = self.space(position)
        furthest = at
        for quoted in (self.quoted, self.escaped_quoted):
            try:
                text, end = quoted(at)
                return Literal(text), end
            except _NoMatch as failure:
                furthest = max(furthest, failure.at)
        try:
            expression, end = self.expression(at)
        except _NoMatch as failure:
            raise _NoMatch(max(furthest, failure.at)) from None
        return expression, self.space(end)

    def repetition(self, position: int) -> tuple[Node, int]:
        return self._memo("repetition", position, self._repetition)

    def _repetition(self, position: int) -> tuple[Node, int]:
        opener = _EACH.match(self.text, position)
        if opener is None:
            raise _NoMatch(position + 2)
        with self._nested():
            enumerator, at = self.identifier(opener.end())
            at = self.space(at)
            if self.text[at : at + 2].lower() != "in":
                raise _NoMatch(at)
            collection, at = self.symbol(self.space(at + 2))
            at = self.expect("}", self.space(at))
            body, at = self.template(at)
            at = self.expect("#{/each}", at)
        return Repetition(enumerator, collection, body), at

    def calculation(self, position: int) -> tuple[Node, int]:
        opener = _CALC.match(self.text, position)
        if opener is None:
            raise _NoMatch(position + 2)
        with self._nested():
            expression, at = self.calc_sum(opener.end(), 0)
            at = self.expect("}", self.space(at))
        return Calculation(expression), at

    # expressions ---------------------------------------------------------------------------

    def substitution(self, position: int) -> tuple[Substitution, int]:
        return self._memo("substitution", position, self._substitution)

    def _substitution(self, position: int) -> tuple[Substitution, int]:
        if not self.text.startswith("#{", position) or self.text.startswith("#{/", position):
            raise _NoMatch(position)
        with self._nested():
            expression, at = self.expression(self.space(position + 2))
            at = self.expect("}", self.space(at))
        return Substitution(expression), at

    def expression(self, position: int) -> tuple[Expression, int]:
        """A filter chain, else a symbol (a chain needs a ``|``: looked for first)."""
        try:
            symbol, end = self.symbol(position)
        except _NoMatch:
            if self.text.startswith("|", position):
                return self.filter_chain(position)
            raise
        bar = self.space(end)
        if self.text.startswith("|", bar):
            try:
                return self.filter_chain(position)
            except _NoMatch:
                pass
        return symbol, end

    def filter_chain(self, position: int) -> tuple[Expression, int]:
        return self._memo("filter_chain", position, self._filter_chain)

    def _filter_chain(self, position: int) -> tuple[Expression, int]:
        expression: Expression
        try:
            expression, at = self.symbol(position)
            at = self.space(at)
        except _NoMatch:
            expression, at = Symbol(()), position
        calls = 0
        while at < self.length and self.text[at] == "|":
            try:
                name, after = self.identifier(self.space(at + 1), spaces=False)
            except _NoMatch:
                if calls == 0:
                    raise
                break
            options, at = self.options(self.space(after))
            expression = FilterCall(expression, name, options)
            calls += 1
        if calls == 0:
            raise _NoMatch(at)
        return expression, at

    def options(self, position: int) -> tuple[tuple[Node, ...], int]:
        options: list[Node] = []
        while position < self.length:
            try:
                option, after = self.option(position)
            except _NoMatch:
                break
            options.append(option)
            position = after
        return tuple(options), position

    def option(self, position: int) -> tuple[Node, int]:
        """A filter argument: a block, a substitution, a bare word, ``"quoted"`` (neither
        ``"`` nor ``#`` inside) or ``\\"escaped quotes\\"`` (anything up to the next)."""
        furthest = position
        blocks: tuple[Callable[[int], tuple[Node, int]], ...] = (
            self.conditional,
            self.repetition,
            self.substitution,
        )
        for block in blocks:
            try:
                return block(position)
            except _NoMatch as failure:
                furthest = max(furthest, failure.at)
        at = self.space(position)
        try:
            word, end = self.identifier(at, spaces=False)
            return Text(word), self.space(end)
        except _NoMatch as failure:
            furthest = max(furthest, failure.at)
        for quoted in (self.quoted, self.escaped_quoted):
            try:
                text, end = quoted(at)
                return Text(text), end
            except _NoMatch as failure:
                furthest = max(furthest, failure.at)
        raise _NoMatch(furthest)

    def quoted(self, position: int) -> tuple[str, int]:
        match = _QUOTED.match(self.text, position)
        if match is None:
            raise _NoMatch(position)
        end = self.expect('"', match.end())
        return self.text[position + 1 : end - 1], self.space(end)

    def escaped_quoted(self, position: int) -> tuple[str, int]:
        if not self.text.startswith('\\"', position):
            raise _NoMatch(position)
        close = self.text.find('\\"', position + 2)
        if close < 0:
            raise _NoMatch(self.length)
        return self.text[position + 2 : close], self.space(close + 2)

    def symbol(self, position: int) -> tuple[Symbol, int]:
        return self._memo("symbol", position, self._symbol)

    def _symbol(self, position: int) -> tuple[Symbol, int]:
        first, at = self.identifier(position)
        steps: list[Step] = [Name(first)]
        while at < self.length:
            if self.text[at] == ".":
                try:
                    name, at_next = self.identifier(at + 1)
                except _NoMatch:
                    break
                steps.append(Name(name))
            elif self.text[at] == "[":
                try:
                    step, at_next = self.indexer(at)
                except _NoMatch:
                    break
                steps.append(step)
            else:
                break
            at = at_next
        return Symbol(tuple(steps)), at

    def identifier(self, position: int, *, spaces: bool = True) -> tuple[str, int]:
        match = (_IDENTIFIER if spaces else _IDENTIFIER_NO_SPACE).match(self.text, position)
        if match is None:
            raise _NoMatch(position)
        end = match.end()
        if spaces:
            keyword = _BEFORE_KEYWORD.search(self.text, position, min(end + 3, self.length))
            if keyword is not None and keyword.start() < end:
                end = keyword.start()
        if end == position:
            raise _NoMatch(position)
        return self.text[position:end].strip(), end

    def indexer(self, position: int) -> tuple[Step, int]:
        furthest = position
        with self._nested():
            try:
                inner, at = self.substitution(self.space(position + 1))
                if not isinstance(inner.expression, Symbol):
                    raise _NoMatch(position + 1)
                return SymbolIndex(inner.expression), self.expect("]", self.space(at))
            except _NoMatch as failure:
                furthest = max(furthest, failure.at)
            try:
                text, at = self.string_index(position)
                return Index(text), at
            except _NoMatch as failure:
                raise _NoMatch(max(furthest, failure.at)) from None

    def string_index(self, position: int) -> tuple[str, int]:
        """``[Package A]``, ``[container[0]]``: the text between balanced brackets, with the
        white space at its start dropped (as the server does) and at its end kept."""
        at = self.expect("[", position)
        at = self.space(at)
        pieces: list[str] = []
        with self._nested():
            while at < self.length and self.text[at] != "]":
                if self.text[at] == "[":
                    try:
                        inner, at = self.string_index(at)
                    except _NoMatch:
                        break
                    pieces.append("[" + inner + "]")
                    continue
                match = _NOT_BRACKET.match(self.text, at)
                assert match is not None
                pieces.append(match.group())
                at = match.end()
        return "".join(pieces), self.expect("]", at)

    # #{calc} -------------------------------------------------------------------------------

    def calc_sum(self, position: int, depth: int) -> tuple[Calc, int]:
        return self._calc_chain(position, depth, "+-", self.calc_product)

    def calc_product(self, position: int, depth: int) -> tuple[Calc, int]:
        return self._calc_chain(position, depth, "*/%", self.calc_factor)

    def _calc_chain(
        self,
        position: int,
        depth: int,
        operators: str,
        operand: Callable[[int, int], tuple[Calc, int]],
    ) -> tuple[Calc, int]:
        value, at = operand(position, depth)
        while True:
            operator_at = self.space(at)
            if operator_at >= self.length or self.text[operator_at] not in operators:
                return value, at
            try:
                right, after = operand(operator_at + 1, depth)
            except _NoMatch:
                return value, at
            value, at = Operation(value, self.text[operator_at], right), after

    def calc_factor(self, position: int, depth: int) -> tuple[Calc, int]:
        at = self.space(position)
        if at < self.length and self.text[at] == "(":
            if depth >= MAX_PARENTHESES:
                raise _NoMatch(at)
            inner, after = self.calc_sum(at + 1, depth + 1)
            return inner, self.expect(")", self.space(after))
        number = _NUMBER.match(self.text, at)
        if number is not None:
            return Number(float(number.group())), number.end()
        if at < self.length and self.text[at] == "{":
            symbol, after = self.symbol(at + 1)
            return CalcVariable(symbol), self.expect("}", after)
        symbol, after = self.symbol(at)
        return CalcVariable(symbol), after

    # helpers -------------------------------------------------------------------------------

    def space(self, position: int) -> int:
        match = _SPACE.match(self.text, position)
        assert match is not None
        return match.end()

    def expect(self, literal: str, position: int) -> int:
        if self.text.startswith(literal, position):
            return position + len(literal)
        matched = 0
        while (
            matched < len(literal)
            and position + matched < self.length
            and self.text[position + matched] == literal[matched]
        ):
            matched += 1
        raise _NoMatch(position + matched)

    def _memo(
        self, rule: str, position: int, parse: Callable[[int], tuple[_T, int]]
    ) -> tuple[_T, int]:
        key = (rule, position)
        known = self.memo.get(key)
        if isinstance(known, int):
            raise _NoMatch(known)
        if known is not None:
            return known
        try:
            result = parse(position)
        except _NoMatch as failure:
            self.memo[key] = failure.at
            raise
        self.memo[key] = result
        return result

    def _nested(self) -> _Nesting:
        return _Nesting(self)


class _Nesting:
    def __init__(self, parser: _Parser) -> None:
        self.parser = parser

    def __enter__(self) -> None:
        self.parser.depth += 1
        if self.parser.depth > MAX_NESTING:
            raise TemplateError(f"blocks or expressions nest more than {MAX_NESTING} deep")

    def __exit__(self, *exc: object) -> None:
        self.parser.depth -= 1


def parse(
    template: str, *, halt_on_error: bool = True, budget: Budget | None = None
) -> tuple[Node, ...]:
    """The template's syntax tree. ParseError when it does not parse and ``halt_on_error``;
    otherwise what does not parse is kept as text."""
    try:
        return _Parser(template, budget or Budget()).whole(halt_on_error=halt_on_error)
    except RecursionError as exc:
        raise TemplateError("the template nests too deeply") from exc


# --- writing expressions back, as the server echoes what it cannot evaluate -------------------


def symbol_text(symbol: Symbol) -> str:
    pieces: list[str] = []
    for number, step in enumerate(symbol.steps):
        if isinstance(step, Name):
            pieces.append(("." if number else "") + step.text)
        elif isinstance(step, Index):
            pieces.append("[" + step.text + "]")
        else:
            pieces.append("[#{" + symbol_text(step.symbol) + "}]")
    return "".join(pieces)


def expression_text(expression: Expression | Literal) -> str:
    if isinstance(expression, Literal):
        return '"' + expression.text + '"'
    if isinstance(expression, Symbol):
        return symbol_text(expression)
    options = " ".join(node_text(option) for option in expression.options)
    return f"{expression_text(expression.argument)} | {expression.name}" + (
        " " + options if options else ""
    )


def calc_text(calc: Calc) -> str:
    if isinstance(calc, Number):
        return dotnet_double(calc.value)
    if isinstance(calc, CalcVariable):
        return symbol_text(calc.symbol)
    return calc_text(calc.left) + calc.operator + calc_text(calc.right)


def node_text(node: Node) -> str:
    if isinstance(node, Text):
        return node.text.replace("#{", "##{")
    if isinstance(node, Substitution):
        return "#{" + expression_text(node.expression) + "}"
    if isinstance(node, Calculation):
        return "#{" + calc_text(node.expression) + "}"
    if isinstance(node, Repetition):
        body = "".join(node_text(n) for n in node.body)
        collection = symbol_text(node.collection)
        return f"#{{each {node.enumerator} in {collection}}}{body}#{{/each}}"
    comparison = ""
    if node.operator is not None and node.right is not None:
        comparison = f" {node.operator} {expression_text(node.right)} "
    then = "".join(node_text(n) for n in node.then)
    otherwise = "".join(node_text(n) for n in node.otherwise)
    return (
        f"#{{{node.keyword} {expression_text(node.left)}{comparison}}}{then}"
        + (f"#{{else}}{otherwise}" if otherwise else "")
        + f"#{{/{node.keyword}}}"
    )


# --- values -----------------------------------------------------------------------------------

_UNPARSED: Any = object()
_INVALID: Any = object()


class _Binding:
    """A name's place in the variables: its value (``item``), properties (``.Name``) and
    indexed entries (``[Key]``), both case-insensitive; ``key`` is the index that made it.
    A JSON object or array keeps its parsed ``document`` and writes ``item`` when read."""

    __slots__ = ("_item", "children", "document", "indexable", "key", "variable")

    def __init__(
        self,
        item: str | None = None,
        *,
        variable: Variable | None = None,
        key: str | None = None,
        document: Any = _UNPARSED,
    ) -> None:
        self._item = item
        self.children: dict[str, _Binding] = {}
        self.indexable: dict[str, _Binding] = {}
        self.variable = variable
        self.key = key
        self.document = document

    @property
    def item(self) -> str | None:
        if self._item is None and self.document is not _UNPARSED:
            self._item = json_text(self.document)
        return self._item

    @item.setter
    def item(self, value: str | None) -> None:
        self._item = value


@dataclass(slots=True)
class _Context:
    binding: _Binding
    parent: _Context | None
    stack: list[str]


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    sensitive: frozenset[str]  # names of the sensitive variables whose values were read
    error: str | None = None  # the server's: tokens it could not evaluate, or a parse error


class Evaluator:
    """Evaluates templates against one VariableSet, spending one Budget (a feature run)."""

    def __init__(self, variables: VariableSet, budget: Budget | None = None) -> None:
        self.variables = variables
        self.budget = budget or Budget()
        self._root: _Binding | None = None
        self._read: set[str] = set()
        self._nesting = 0  # variables being evaluated inside each other
        self._depth = 0  # blocks and values being evaluated inside each other
        self._cycles = 0  # cycles met (and survived) while reading JSON values
        self._parsed: dict[str, tuple[Node, ...] | None] = {}  # values, parsed once each
        # Values of variables rendered, with what they read: a template that uses A twice,
        # A using B twice, ... costs one rendering per variable, not 2**depth.
        self._values: dict[int, tuple[_Binding, frozenset[str], tuple[str, ...]]] = {}
        self._documents: dict[str, Any] = {}  # values read as JSON, once each

    # public ------------------------------------------------------------------------------

    def render(self, template: str, *, halt_on_error: bool = False) -> str:
        return self.evaluate(template, halt_on_error=halt_on_error).text

    def evaluate(self, template: str, *, halt_on_error: bool = False) -> Rendered:
        """``template`` rendered, with the sensitive variables the rendering read and the
        server's error. ``halt_on_error``: a template that does not parse stays as written
        (the server's ``Evaluate``); otherwise the part that does not parse stays as written
        and the rest is evaluated (its substitution in files)."""
        self._read = set()
        if "#{" not in template:
            return Rendered(template, frozenset())
        parser = _Parser(template, self.budget)
        try:
            nodes = self._guarded(lambda: parser.whole(halt_on_error=halt_on_error))
        except ParseError as exc:
            return Rendered(template, frozenset(), str(exc))
        missing: list[str] = []
        text = self._guarded(lambda: self._text(self._context(), nodes, missing))
        return Rendered(text, frozenset(self._read), _missing_error(missing))

    def lookup(self, name: str) -> str | None:
        """The value of the variable ``name`` evaluated (as written when it does not parse),
        or None when it is not defined."""
        variable = self.variables.find(name)
        if variable is None:
            return None
        return self.evaluate(variable.value, halt_on_error=True).text

    def _guarded(self, evaluate: Callable[[], _T]) -> _T:
        # The nesting limits keep well inside Python's recursion limit; this is the backstop
        # for a caller that is already deep.
        try:
            return evaluate()
        except RecursionError as exc:
            raise TemplateError("the template or a value nests too deeply") from exc

    # rendering ---------------------------------------------------------------------------

    def _context(self) -> _Context:
        if self._root is None:
            self._root = self._bind(self.variables)
        return _Context(self._root, None, [])

    def _text(self, context: _Context, nodes: tuple[Node, ...], missing: list[str]) -> str:
        if self._depth >= MAX_NESTING:
            raise TemplateError("the template and the variables it uses nest too deeply")
        self._depth += 1
        try:
            pieces = [self._node(context, node, missing) for node in nodes]
            return self._join(pieces)
        finally:
            self._depth -= 1

    def _join(self, pieces: list[str]) -> str:
        """The pieces as one string, charged to the budget before it is made."""
        if len(pieces) == 1:
            return pieces[0]
        self.budget.produce(sum(map(len, pieces)))
        return "".join(pieces)

    def _node(self, context: _Context, node: Node, missing: list[str]) -> str:
        self.budget.step()
        if isinstance(node, Text):
            return node.text
        if isinstance(node, Substitution):
            value = self._calculate(context, node.expression, missing)
            if value is None:
                echo = node_text(node)
                missing.append(echo)
                return echo
            return value
        if isinstance(node, Conditional):
            return self._conditional(context, node, missing)
        if isinstance(node, Repetition):
            return self._repeat(context, node, missing)
        result = self._arithmetic(context, node.expression, missing)
        return node_text(node) if result is None else dotnet_double(result)

    def _calculate(
        self, context: _Context, expression: Expression, missing: list[str]
    ) -> str | None:
        if isinstance(expression, Symbol):
            found = self._walk(context, expression, missing)
            return None if found is None else found.item
        argument = self._calculate(context, expression.argument, missing)
        options = tuple(self._option(context, option, missing) for option in expression.options)
        self.budget.step()
        self.budget.produce(len(argument or "") + sum(map(len, options)))  # what it reads
        try:
            value = apply_filter(expression.name, argument, options)
        except ResultTooLarge as exc:
            raise TemplateError(f"evaluation exceeds the output budget: {exc}") from exc
        except FilterFailed as exc:
            # Octostache's function throws and the server's step fails. The message names
            # the filter alone: its input may be a sensitive value.
            raise TemplateError(f"the filter {expression.name} fails on its input") from exc
        except FilterError:
            return None
        if value is not None:
            self.budget.produce(len(value))
        return value

    def _option(self, context: _Context, option: Node, missing: list[str]) -> str:
        return self._text(_Context(_Binding(), context, []), (option,), missing)

    def _conditional(self, context: _Context, node: Conditional, missing: list[str]) -> str:
        left = self._side(context, node.left, missing)
        if left is None:  # a filter that cannot be applied: the block is written back
            missing.append(expression_text(node.left))
            return node_text(node)
        if node.operator is None:
            chosen = _truthy(left)
        else:
            assert node.right is not None
            right = self._side(context, node.right, missing)
            if right is None:
                missing.append(expression_text(node.right))
                return node_text(node)
            chosen = (left == right) == (node.operator == "==")
        if node.keyword == "unless":
            chosen = not chosen
        return self._text(context, node.then if chosen else node.otherwise, missing)

    def _side(
        self, context: _Context, side: Expression | Literal, missing: list[str]
    ) -> str | None:
        """A side of a condition: a variable reads as empty when it is not defined; a filter
        that cannot be applied has no value."""
        if isinstance(side, Literal):
            return side.text
        value = self._calculate(context, side, missing)
        self.budget.produce(len(value or ""))  # read again at every test
        if value is None and isinstance(side, Symbol):
            return ""
        return value

    def _repeat(self, context: _Context, node: Repetition, missing: list[str]) -> str:
        items = self._items(context, node.collection, missing)
        pieces = []
        for index, item in enumerate(items):
            self.budget.step()
            scope = _Binding()
            each = scope.children.setdefault("octopus", _Binding())
            each = each.children.setdefault("template", _Binding())
            each = each.children.setdefault("each", _Binding())
            each.children["index"] = _Binding(str(index))
            each.children["first"] = _Binding("True" if index == 0 else "False")
            each.children["last"] = _Binding("True" if index == len(items) - 1 else "False")
            scope.children[node.enumerator.lower()] = item
            pieces.append(self._text(_Context(scope, context, []), node.body, missing))
        return self._join(pieces)

    def _arithmetic(self, context: _Context, calc: Calc, missing: list[str]) -> float | None:
        if isinstance(calc, Number):
            return calc.value
        if isinstance(calc, CalcVariable):
            found = self._walk(context, calc.symbol, missing)
            text = None if found is None else found.item
            self.budget.produce(len(text or ""))
            return None if text is None else dotnet_parse_double(text)
        left = self._arithmetic(context, calc.left, missing)
        if left is None:
            return None
        right = self._arithmetic(context, calc.right, missing)
        if right is None:
            return None
        return _operate(left, calc.operator, right)

    # lookups -----------------------------------------------------------------------------

    def _walk(self, context: _Context, symbol: Symbol, missing: list[str]) -> _Binding | None:
        """Where ``symbol`` leads from ``context`` (else from its parents), its value
        evaluated in the context it was found in; None when it leads nowhere."""
        self.budget.step()
        key = symbol_text(symbol).lower()
        self.budget.produce(len(key))
        ancestor: _Context | None = context
        while ancestor is not None:
            if key in ancestor.stack:
                chain = " -> ".join([*ancestor.stack, key])
                raise _CycleError(f"variables refer to each other in a cycle: {chain}")
            ancestor = ancestor.parent
        context.stack.append(key)
        try:
            steps = self._resolve_indexes(context, symbol.steps)
            if steps is None:
                return None
            current = context.binding
            for step in steps:
                found = self._step(context, current, step)
                if found is None:
                    if context.parent is None:
                        return None
                    return self._walk(context.parent, Symbol(steps), missing)
                current = found
            return self._evaluated(context, current, missing)
        finally:
            context.stack.pop()

    def _resolve_indexes(
        self, context: _Context, steps: tuple[Step, ...]
    ) -> tuple[Step, ...] | None:
        """``Step[#{Name}]`` becomes ``Step[value of Name]`` (read where the lookup starts);
        None when such an index has no value."""
        if not any(isinstance(step, SymbolIndex) for step in steps):
            return steps
        resolved: list[Step] = []
        for step in steps:
            if isinstance(step, SymbolIndex):
                found = self._walk(context, step.symbol, [])
                if found is None or found.item is None:
                    return None
                resolved.append(Index(found.item))
            else:
                resolved.append(step)
        return tuple(resolved)

    def _step(self, context: _Context, current: _Binding, step: Step) -> _Binding | None:
        if isinstance(step, Name):
            lowered = step.text.lower()
            found = current.children.get(lowered)
            if found is None and lowered == "key" and current.key is not None:
                found = _Binding(current.key)  # an entry of Name[Key] knows its key
            return found or self._json_property(context, current, step.text)
        assert isinstance(step, Index)
        if step.text == "*" and current.indexable:
            return next(iter(current.indexable.values()))
        found = current.indexable.get(step.text.lower())
        return found or self._json_property(context, current, step.text)

    def _evaluated(self, context: _Context, binding: _Binding, missing: list[str]) -> _Binding:
        """``binding`` with its value rendered (in a scope under ``context``): a value that is
        not a template, or does not parse, is its own rendering."""
        item = binding.item
        if item is None:
            return binding
        variable = binding.variable
        if variable is not None and variable.sensitive:
            self._read.add(variable.name)
        if "#{" not in item:  # its own rendering; a rendering has no entries or properties
            if binding.children or binding.indexable:
                return _Binding(item, document=binding.document)
            return binding
        cacheable = context.parent is None and variable is not None
        if cacheable and id(binding) in self._values:
            rendered, read, inner_missing = self._values[id(binding)]
            self._read |= read
            missing.extend(inner_missing)
            return rendered
        nodes = self._parse_value(item)
        if nodes is None:
            return binding
        if self._nesting >= MAX_DEPTH:
            raise TemplateError(f"variables refer to variables more than {MAX_DEPTH} deep")
        self._nesting += 1
        outer_read, self._read = self._read, set()
        cycles = self._cycles
        inner: list[str] = []
        try:
            text = self._text(_Context(_Binding(), context, []), nodes, inner)
            if variable is not None and variable.sensitive:  # its missing tokens quote it
                inner = [f"(a token in the value of {variable.name})" for _ in inner[:1]]
            rendered = _Binding(text)
            if cacheable and cycles == self._cycles:
                self._values[id(binding)] = (rendered, frozenset(self._read), tuple(inner))
            missing.extend(inner)
            return rendered
        finally:
            self._nesting -= 1
            self._read = outer_read | self._read

    def _parse_value(self, value: str) -> tuple[Node, ...] | None:
        if value not in self._parsed:
            self.budget.produce(len(value))
            try:
                self._parsed[value] = _Parser(value, self.budget).whole(halt_on_error=True)
            except ParseError:
                self._parsed[value] = None
        return self._parsed[value]

    def _json_property(self, context: _Context, parent: _Binding, name: str) -> _Binding | None:
        """``Name.Prop`` or ``Name[Prop]`` read from the value of ``Name`` as JSON: the value
        as written first, then (when that is not JSON) as rendered; a rendering that meets
        a cycle means the property is not there."""
        item = parent.item
        if not item or not name:
            return None
        if parent.variable is not None and parent.variable.sensitive:
            self._read.add(parent.variable.name)
        document = parent.document if parent.document is not _UNPARSED else self._json(item)
        if document is _INVALID and "#{" in item:
            try:
                rendered = self._evaluated(context, parent, [])
            except _CycleError:
                self._cycles += 1
                return None
            document = self._json(rendered.item or "")
        if document is _INVALID:
            return None
        return self._json_child(document, name)

    def _json(self, value: str) -> Any:
        if value not in self._documents:
            self.budget.produce(len(value))
            self._documents[value] = read_json(value)
        return self._documents[value]

    def _json_child(self, document: Any, name: str) -> _Binding | None:
        if isinstance(document, dict):
            if name not in document:  # properties are case-sensitive; a missing one is empty
                return _Binding("")
            return self._json_binding(document[name])
        if isinstance(document, list):
            index = dotnet_parse_int(name)
            if index is None:
                return None
            if 0 <= index < len(document):
                return self._json_binding(document[index])
            return _Binding("")
        return _Binding(json_value_text(document))  # a plain value is its every property

    def _json_binding(self, element: Any) -> _Binding:
        if isinstance(element, (dict, list)):
            return _Binding(document=element)
        return _Binding(json_value_text(element))

    def _items(self, context: _Context, collection: Symbol, missing: list[str]) -> list[_Binding]:
        found = self._walk(context, collection, missing)
        if found is None:
            return []
        if found.indexable:
            self.budget.step(len(found.indexable))
            return list(found.indexable.values())
        item = found.item
        if item is None:
            return []
        document = found.document if found.document is not _UNPARSED else self._json(item)
        if isinstance(document, list):
            self.budget.step(len(document))
            return [self._json_binding(element) for element in document]
        if isinstance(document, dict):
            self.budget.step(len(document))
            entries = []
            for key, value in document.items():
                entry = _Binding(key)
                entry.children["key"] = _Binding(key)
                entry.children["value"] = self._json_binding(value)
                entries.append(entry)
            return entries
        self.budget.produce(len(item))  # before splitting: the parts cost memory
        self.budget.step(item.count(","))
        return [_Binding(part) for part in item.split(",")]

    def _bind(self, variables: VariableSet) -> _Binding:
        """The variables as the tree their names describe: ``A.B[C].D`` is D of the entry C
        of B of A. A name is read as far as it parses."""
        root = _Binding()
        self.budget.step(len(variables))
        for variable in variables:
            self.budget.produce(len(variable.name))
            steps = _name_steps(variable.name)
            if steps is None:
                continue
            current = root
            for step in steps:
                if isinstance(step, Name):
                    current = current.children.setdefault(step.text.lower(), _Binding())
                else:
                    index = (
                        step.text
                        if isinstance(step, Index)
                        else node_text(Substitution(step.symbol))
                    )
                    entry = current.indexable.get(index.lower())
                    if entry is None:
                        entry = current.indexable[index.lower()] = _Binding(index, key=index)
                    current = entry
            current.item = variable.value
            current.variable = variable
        return root


def render(template: str, variables: VariableSet, *, halt_on_error: bool = True) -> str:
    """``template`` evaluated as the server's ``VariableDictionary.Evaluate`` does."""
    return Evaluator(variables).render(template, halt_on_error=halt_on_error)


def _name_steps(name: str) -> tuple[Step, ...] | None:
    parser = _Parser(name)
    try:
        symbol, _ = parser.symbol(0)
    except (_NoMatch, TemplateError, RecursionError):
        return None
    return symbol.steps


def _truthy(value: str) -> bool:
    """False for "", "0", and (trimmed, any case) "False" and "No"."""
    return value not in ("", "0") and value.strip().lower() not in ("no", "false")


def _missing_error(missing: list[str]) -> str | None:
    if not missing:
        return None
    tokens = ", ".join(f"'{token}'" for token in dict.fromkeys(missing))
    return f"The following tokens were unable to be evaluated: {tokens}"


def _operate(left: float, operator: str, right: float) -> float | None:
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if operator == "/":
        if right == 0:
            if left == 0 or math.isnan(left):
                return math.nan
            return math.copysign(math.inf, left) * math.copysign(1.0, right)
        return left / right
    # % is for whole numbers that fit a long; by zero it has no answer
    if not all(math.isfinite(v) and v == int(v) and -(2**63) <= v < 2**63 for v in (left, right)):
        return None
    whole_left, whole_right = int(left), int(right)
    if whole_right == 0:
        return None
    remainder = abs(whole_left) % abs(whole_right)
    return float(remainder if whole_left >= 0 else -remainder)


# --- .NET text for numbers ---------------------------------------------------------------------

_DOTNET_DOUBLE = re.compile(r"\s*[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")
_DOTNET_INT = re.compile(r"\s*[+-]?\d+\s*")


def dotnet_parse_double(text: str) -> float | None:
    """``double.TryParse``: white space around, thousands separators, an exponent,
    Infinity, NaN; out of range is infinite."""
    if _DOTNET_DOUBLE.fullmatch(text):
        return float(text.strip().replace(",", ""))
    word = text.strip().lower()
    if word in ("infinity", "+infinity", "∞", "+∞"):
        return math.inf
    if word in ("-infinity", "-∞"):
        return -math.inf
    if word == "nan":
        return math.nan
    return None


def dotnet_parse_int(text: str) -> int | None:
    """``int.TryParse``."""
    if not _DOTNET_INT.fullmatch(text):
        return None
    value = int(text.strip())
    return value if -(2**31) <= value < 2**31 else None


def dotnet_double(value: float) -> str:
    """``double.ToString()``: the shortest text that reads back, in exponent form from
    1E+15 up and below 1E-04."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign = "-" if value < 0 else ""
    digits_tuple = Decimal(repr(abs(value))).as_tuple()
    assert isinstance(digits_tuple.exponent, int)
    digits = "".join(map(str, digits_tuple.digits))
    exponent = len(digits) + digits_tuple.exponent - 1
    digits = digits.rstrip("0") or "0"
    if exponent >= 15 or exponent < -4:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}E{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    whole = digits[: exponent + 1].ljust(exponent + 1, "0")
    fraction = digits[exponent + 1 :]
    return sign + whole + ("." + fraction if fraction else "")


# --- JSON as the server reads and writes it (Json.NET) -----------------------------------------


def json_value_text(value: Any) -> str:
    """A JSON value as text: strings as they are, booleans True/False, null empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return dotnet_double(value)
    if isinstance(value, (dict, list)):
        return json_text(value)
    return str(value)


_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f"}  # fmt: skip
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f\x85\u2028\u2029]')


def _json_string(text: str) -> str:
    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return _JSON_ESCAPES.get(char) or f"\\u{ord(char):04x}"

    return '"' + _JSON_ESCAPED.sub(escape, text) + '"'


def json_text(value: Any) -> str:
    """Compact JSON, as the server writes an object or array read from a value."""
    if isinstance(value, dict):
        return "{" + ",".join(_json_string(k) + ":" + json_text(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = dotnet_double(value)
        if math.isfinite(value) and not any(c in text for c in ".E"):
            text += ".0"
        return {"∞": "Infinity", "-∞": "-Infinity"}.get(text, text)
    return str(value)


_JSON_TOKEN = re.compile(
    r"""(?P<space>(?:\s|//[^\n]*|/\*.*?\*/)+)
    |(?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<word>[A-Za-z_$][\w$]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<punct>[{}\[\],:])""",
    re.VERBOSE | re.DOTALL,
)
_JSON_STRING_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_JSON_WORDS: dict[str, Any] = {"true": True, "false": False, "null": None, "undefined": None,
                               "NaN": math.nan, "Infinity": math.inf}  # fmt: skip


def read_json(text: str) -> Any:
    """``text`` read as the server reads a value as JSON (leniently: unquoted property
    names, single quotes, comments, trailing commas; at most MAX_JSON_DEPTH deep), or
    _INVALID. A value that is empty or null is not JSON."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        match = _JSON_TOKEN.match(text, position)
        if match is None:
            return _INVALID
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
        position = match.end()
    if not tokens:
        return _INVALID
    reader = _JsonReader(tokens)
    try:
        value = reader.value(0)
    except ValueError:
        return _INVALID
    if reader.position != len(tokens) or value is None:
        return _INVALID
    return value


class _JsonReader:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.position = 0

    def next(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ValueError("unexpected end")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def value(self, depth: int) -> Any:
        kind, text = self.next()
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return _json_unquote(text)
        if kind == "word":
            if text not in _JSON_WORDS:
                raise ValueError(f"unexpected {text}")
            return _JSON_WORDS[text]
        if text not in "{[" or depth >= MAX_JSON_DEPTH:
            raise ValueError(f"unexpected {text}")
        return self.object(depth + 1) if text == "{" else self.array(depth + 1)

    def object(self, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            kind, text = self.next()
            if text == "}" and kind == "punct":
                return result
            if kind == "string":
                name = _json_unquote(text)
            elif kind == "word" or (kind == "number" and text.isdigit()):
                name = text
            else:
                raise ValueError("a property name is expected")
            if self.next() != ("punct", ":"):
                raise ValueError(": is expected")
            result[name] = self.value(depth)
            kind, text = self.next()
            if text == "}" and kind == "punct":
                return result
            if (kind, text) != ("punct", ","):
                raise ValueError(", is expected")

    def array(self, depth: int) -> list[Any]:
        result: list[Any] = []
        while True:
            if self.position < len(self.tokens) and self.tokens[self.position] == ("punct", "]"):
                self.position += 1
                return result
            result.append(self.value(depth))
            kind, text = self.next()
            if (kind, text) == ("punct", "]"):
                return result
            if (kind, text) != ("punct", ","):
                raise ValueError(", is expected")


def _json_unquote(text: str) -> str:
    def unescape(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] == "u":
            return chr(int(code[1:], 16))
        return {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}.get(code, code)

    return _JSON_STRING_ESCAPE.sub(unescape, text[1:-1])
