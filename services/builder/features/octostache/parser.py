"""The template grammar, rule for rule the server's: recursive descent with the server's
retries, remembered by position."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from services.builder.features.octostache.budget import (
    MAX_NESTING,
    MAX_PARENTHESES,
    Budget,
    ParseError,
    TemplateError,
)
from services.builder.features.octostache.syntax import (
    Calc,
    Calculation,
    CalcVariable,
    Conditional,
    Expression,
    FilterCall,
    Index,
    Literal,
    Name,
    Node,
    Number,
    Operation,
    Repetition,
    Step,
    Substitution,
    Symbol,
    SymbolIndex,
    Text,
)

_T = TypeVar("_T")


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


class NoMatch(Exception):
    """A rule does not match; ``at`` is how far it got (the furthest of its alternatives)."""

    def __init__(self, at: int) -> None:
        self.at = at


class Parser:
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
            except NoMatch:
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
            except NoMatch as failure:
                if halt_on_error or failure.at <= position:
                    raise self.error(position) from None
                result.append(Text(self.text[position : failure.at]))
                position = failure.at
        return tuple(result)

    def error(self, at: int) -> ParseError:
        """The server's words (its parser library's) for a template that stops parsing at
        ``at``: the token there, where it is, and the ten characters before it."""
        line = self.text.count("\n", 0, at) + 1
        column = at - (self.text.rfind("\n", 0, at) + 1) + 1
        recent = self.text[max(0, at - 10) : at]
        return ParseError(
            f"Parsing failure: unexpected '{self.text[at]}'; expected end of input "
            f"(Line {line}, Column {column}); recently consumed: {recent}"
        )

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
            except NoMatch as failure:
                furthest = max(furthest, failure.at)
        raise NoMatch(furthest)

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
            raise NoMatch(position + 1)
        return Text("".join(pieces)), at

    # blocks --------------------------------------------------------------------------------

    def conditional(self, position: int) -> tuple[Node, int]:
        return self._memo("conditional", position, self._conditional)

    def _conditional(self, position: int) -> tuple[Node, int]:
        opener = _CONDITIONAL.match(self.text, position)
        if opener is None:
            raise NoMatch(position + 2)
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
            nested = Conditional(else_left, else_operator, else_right, body, otherwise)
            otherwise = (nested,)
        if keyword == "unless":  # the server keeps it as an #{if} with its branches swapped
            then, otherwise = otherwise, then
        return Conditional(left, operator, right, then, otherwise), at

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
            raise NoMatch(operator_at)
        return left, None, None, at

    def operand(self, position: int) -> tuple[Expression | Literal, int]:
        at = self.space(position)
        furthest = at
        for quoted in (self.quoted, self.escaped_quoted):
            try:
                text, end = quoted(at)
                return Literal(text), end
            except NoMatch as failure:
                furthest = max(furthest, failure.at)
        try:
            expression, end = self.expression(at)
        except NoMatch as failure:
            raise NoMatch(max(furthest, failure.at)) from None
        return expression, self.space(end)

    def repetition(self, position: int) -> tuple[Node, int]:
        return self._memo("repetition", position, self._repetition)

    def _repetition(self, position: int) -> tuple[Node, int]:
        opener = _EACH.match(self.text, position)
        if opener is None:
            raise NoMatch(position + 2)
        with self._nested():
            enumerator, at = self.identifier(opener.end())
            at = self.space(at)
            if self.text[at : at + 2].lower() != "in":
                raise NoMatch(at)
            collection, at = self.symbol(self.space(at + 2))
            at = self.expect("}", self.space(at))
            body, at = self.template(at)
            at = self.expect("#{/each}", at)
        return Repetition(enumerator, collection, body), at

    def calculation(self, position: int) -> tuple[Node, int]:
        opener = _CALC.match(self.text, position)
        if opener is None:
            raise NoMatch(position + 2)
        with self._nested():
            expression, at = self.calc_sum(opener.end(), 0)
            at = self.expect("}", self.space(at))
        return Calculation(expression), at

    # expressions ---------------------------------------------------------------------------

    def substitution(self, position: int) -> tuple[Substitution, int]:
        return self._memo("substitution", position, self._substitution)

    def _substitution(self, position: int) -> tuple[Substitution, int]:
        if not self.text.startswith("#{", position) or self.text.startswith("#{/", position):
            raise NoMatch(position)
        with self._nested():
            expression, at = self.expression(self.space(position + 2))
            at = self.expect("}", self.space(at))
        return Substitution(expression), at

    def expression(self, position: int) -> tuple[Expression, int]:
        """A filter chain, else a symbol (a chain needs a ``|``: looked for first)."""
        try:
            symbol, end = self.symbol(position)
        except NoMatch:
            if self.text.startswith("|", position):
                return self.filter_chain(position)
            raise
        bar = self.space(end)
        if self.text.startswith("|", bar):
            try:
                return self.filter_chain(position)
            except NoMatch:
                pass
        return symbol, end

    def filter_chain(self, position: int) -> tuple[Expression, int]:
        return self._memo("filter_chain", position, self._filter_chain)

    def _filter_chain(self, position: int) -> tuple[Expression, int]:
        expression: Expression
        try:
            expression, at = self.symbol(position)
            at = self.space(at)
        except NoMatch:
            expression, at = Symbol(()), position
        calls = 0
        while at < self.length and self.text[at] == "|":
            try:
                name, after = self.identifier(self.space(at + 1), spaces=False)
            except NoMatch:
                if calls == 0:
                    raise
                break
            options, at = self.options(self.space(after))
            expression = FilterCall(expression, name, options)
            calls += 1
        if calls == 0:
            raise NoMatch(at)
        return expression, at

    def options(self, position: int) -> tuple[tuple[Node, ...], int]:
        options: list[Node] = []
        while position < self.length:
            try:
                option, after = self.option(position)
            except NoMatch:
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
            except NoMatch as failure:
                furthest = max(furthest, failure.at)
        at = self.space(position)
        try:
            word, end = self.identifier(at, spaces=False)
            return Text(word), self.space(end)
        except NoMatch as failure:
            furthest = max(furthest, failure.at)
        for quoted in (self.quoted, self.escaped_quoted):
            try:
                text, end = quoted(at)
                return Text(text), end
            except NoMatch as failure:
                furthest = max(furthest, failure.at)
        raise NoMatch(furthest)

    def quoted(self, position: int) -> tuple[str, int]:
        match = _QUOTED.match(self.text, position)
        if match is None:
            raise NoMatch(position)
        end = self.expect('"', match.end())
        return self.text[position + 1 : end - 1], self.space(end)

    def escaped_quoted(self, position: int) -> tuple[str, int]:
        if not self.text.startswith('\\"', position):
            raise NoMatch(position)
        close = self.text.find('\\"', position + 2)
        if close < 0:
            raise NoMatch(self.length)
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
                except NoMatch:
                    break
                steps.append(Name(name))
            elif self.text[at] == "[":
                try:
                    step, at_next = self.indexer(at)
                except NoMatch:
                    break
                steps.append(step)
            else:
                break
            at = at_next
        return Symbol(tuple(steps)), at

    def identifier(self, position: int, *, spaces: bool = True) -> tuple[str, int]:
        match = (_IDENTIFIER if spaces else _IDENTIFIER_NO_SPACE).match(self.text, position)
        if match is None:
            raise NoMatch(position)
        end = match.end()
        if spaces:
            keyword = _BEFORE_KEYWORD.search(self.text, position, min(end + 3, self.length))
            if keyword is not None and keyword.start() < end:
                end = keyword.start()
        if end == position:
            raise NoMatch(position)
        return self.text[position:end].strip(), end

    def indexer(self, position: int) -> tuple[Step, int]:
        furthest = position
        with self._nested():
            try:
                inner, at = self.substitution(self.space(position + 1))
                if not isinstance(inner.expression, Symbol):
                    raise NoMatch(position + 1)
                return SymbolIndex(inner.expression), self.expect("]", self.space(at))
            except NoMatch as failure:
                furthest = max(furthest, failure.at)
            try:
                text, at = self.string_index(position)
                return Index(text), at
            except NoMatch as failure:
                raise NoMatch(max(furthest, failure.at)) from None

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
                    except NoMatch:
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
            except NoMatch:
                return value, at
            value, at = Operation(value, self.text[operator_at], right), after

    def calc_factor(self, position: int, depth: int) -> tuple[Calc, int]:
        at = self.space(position)
        if at < self.length and self.text[at] == "(":
            if depth >= MAX_PARENTHESES:
                raise NoMatch(at)
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
        raise NoMatch(position + matched)

    def _memo(
        self, rule: str, position: int, parse: Callable[[int], tuple[_T, int]]
    ) -> tuple[_T, int]:
        key = (rule, position)
        known = self.memo.get(key)
        if isinstance(known, int):
            raise NoMatch(known)
        if known is not None:
            return known
        try:
            result = parse(position)
        except NoMatch as failure:
            self.memo[key] = failure.at
            raise
        self.memo[key] = result
        return result

    def _nested(self) -> _Nesting:
        return _Nesting(self)


class _Nesting:
    def __init__(self, parser: Parser) -> None:
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
        return Parser(template, budget or Budget()).whole(halt_on_error=halt_on_error)
    except RecursionError as exc:
        raise TemplateError("the template nests too deeply") from exc


# A name of plain steps (``Octopus.Action[Package A].Name``: no white space in its names, no
# nested or variable index) read without the parser: binding thousands of variables is
# then quick, as the server's cache of parsed names makes it.
_PLAIN_NAME = re.compile(r"[\w\-:/~()]+(?:\.[\w\-:/~()]+|\[[^\[\]#]*\])*")
_PLAIN_STEP = re.compile(r"\.?([\w\-:/~()]+)|\[\s*([^\[\]#]*)\]")


def name_steps(name: str) -> tuple[Step, ...] | None:
    """The steps of a variable's name, read as far as they parse; None when none do."""
    if _PLAIN_NAME.fullmatch(name):
        return tuple(
            Name(step.group(1)) if step.group(1) is not None else Index(step.group(2))
            for step in _PLAIN_STEP.finditer(name)
        )
    parser = Parser(name)
    try:
        symbol, _ = parser.symbol(0)
    except (NoMatch, TemplateError, RecursionError):
        return None
    return symbol.steps
