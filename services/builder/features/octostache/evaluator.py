"""The evaluator: variables bound into the tree their names describe, and templates rendered
against it within a Budget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from services.builder.features.filters import (
    FilterError,
    FilterFailed,
    ResultTooLarge,
    apply_filter,
    read_cost,
)
from services.builder.features.octostache.budget import (
    MAX_DEPTH,
    MAX_NESTING,
    Budget,
    CycleError,
    ParseError,
    TemplateError,
)
from services.builder.features.octostache.calculation import operate
from services.builder.features.octostache.dotnet_numbers import (
    dotnet_double,
    dotnet_parse_double,
    dotnet_parse_int,
)
from services.builder.features.octostache.json_values import (
    INVALID,
    json_text,
    json_value_text,
    read_json,
)
from services.builder.features.octostache.parser import Parser, name_steps
from services.builder.features.octostache.syntax import (
    Calc,
    CalcVariable,
    Conditional,
    Expression,
    FilterCall,
    Index,
    Literal,
    Name,
    Node,
    Number,
    Repetition,
    Step,
    Substitution,
    Symbol,
    SymbolIndex,
    Text,
    expression_text,
    node_text,
    symbol_text,
)
from services.builder.features.variables import Variable, VariableSet

_T = TypeVar("_T")

# --- values -----------------------------------------------------------------------------------

_UNPARSED: Any = object()


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
    stack: list[tuple[str, str]]  # the symbols being looked up here: (key, as written)


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    sensitive: frozenset[str]  # names of the sensitive variables whose values were read
    error: str | None = None  # the server's: tokens it could not evaluate, or a parse error
    # The server's result is null: the template wrote nothing but ``#{... | null}`` (its
    # ``null`` filter, so that a value can be set to null); ``text`` is then empty.
    null: bool = False


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
        parser = Parser(template, self.budget)
        try:
            nodes = self._guarded(lambda: parser.whole(halt_on_error=halt_on_error))
        except ParseError as exc:
            return Rendered(template, frozenset(), str(exc))
        missing: list[str] = []
        text = self._guarded(lambda: self._text(self._context(), nodes, missing))
        nulls = [token for token in missing if isinstance(token, _NullToken)]
        if nulls and text == "".join(nulls):
            return Rendered("", frozenset(self._read), _missing_error(missing), null=True)
        return Rendered(text, frozenset(self._read), _missing_error(missing))

    def lookup(self, name: str) -> str | None:
        """The value of the variable ``name`` evaluated (as written when it does not parse),
        or None when it is not defined or defined with no value."""
        variable = self.variables.find(name)
        if variable is None or variable.value is None:
            return None  # not defined, or defined with no value (the server's null)
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
                null = isinstance(node.expression, FilterCall) and node.expression.name == "null"
                missing.append(_NullToken(echo) if null else echo)
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
        self.budget.produce(read_cost(expression.name, argument, options))  # what it reads
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
        return operate(left, calc.operator, right)

    # lookups -----------------------------------------------------------------------------

    def _walk(self, context: _Context, symbol: Symbol, missing: list[str]) -> _Binding | None:
        """Where ``symbol`` leads from ``context`` (else from its parents), its value
        evaluated in the context it was found in; None when it leads nowhere."""
        self.budget.step()
        written = symbol_text(symbol)
        key = written.lower()
        self.budget.produce(len(key))
        ancestor: _Context | None = context
        while ancestor is not None:
            if any(key == looked_up for looked_up, _ in ancestor.stack):
                raise CycleError(_cycle_message(context, written))
            ancestor = ancestor.parent
        context.stack.append((key, written))
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
            # a value's null tokens are not the template's: the server drops them
            inner = [token for token in inner if not isinstance(token, _NullToken)]
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
                self._parsed[value] = Parser(value, self.budget).whole(halt_on_error=True)
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
        if document is INVALID and "#{" in item:
            try:
                rendered = self._evaluated(context, parent, [])
            except CycleError:
                self._cycles += 1
                return None
            document = self._json(rendered.item or "")
        if document is INVALID:
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
            steps = name_steps(variable.name)
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
            current.item = variable.value or ""  # no value is empty in a template
            current.variable = variable
        return root


def render(template: str, variables: VariableSet, *, halt_on_error: bool = True) -> str:
    """``template`` evaluated as the server's ``VariableDictionary.Evaluate`` does."""
    return Evaluator(variables).render(template, halt_on_error=halt_on_error)


def _cycle_message(context: _Context, symbol: str) -> str:
    """The server's words for a cycle, with the lookups that led to it, outermost first
    (names as the templates write them; no value is quoted)."""
    stacks: list[list[tuple[str, str]]] = []
    ancestor: _Context | None = context
    while ancestor is not None:
        stacks.append(ancestor.stack)
        ancestor = ancestor.parent
    chain = [written for stack in reversed(stacks) for _, written in stack]
    return (
        f'An attempt to parse the variable symbol "{symbol}" appears to have resulted in a '
        f"self referencing loop ({' -> '.join([*chain, symbol])}). "
        "Ensure that recursive loops do not exist in the variable values."
    )


def _truthy(value: str) -> bool:
    """False for "", "0", and (trimmed, any case) "False" and "No"."""
    return value not in ("", "0") and value.strip().lower() not in ("no", "false")


class _NullToken(str):
    """A ``#{... | null}`` the server writes back as it does a missing token, but does not
    count as one."""


def _missing_error(missing: list[str]) -> str | None:
    missing = [token for token in missing if not isinstance(token, _NullToken)]
    if not missing:
        return None
    tokens = ", ".join(f"'{token}'" for token in dict.fromkeys(missing))
    return f"The following tokens were unable to be evaluated: {tokens}"
