"""The syntax tree of a template, and each node written back as the server echoes what it
cannot evaluate."""

from __future__ import annotations

from dataclasses import dataclass

from services.builder.features.octostache.dotnet_numbers import dotnet_double


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
    """``#{if}``; an ``#{unless}`` is one with its branches swapped, as the server keeps it
    (and writes it back)."""

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
    # The server writes every option back in quotes, however it was written.
    options = " ".join(f'"{node_text(option)}"' for option in expression.options)
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
        f"#{{if {expression_text(node.left)}{comparison}}}{then}"
        + (f"#{{else}}{otherwise}" if node.otherwise else "")
        + "#{/if}"
    )
