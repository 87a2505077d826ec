"""Match and Replace: .NET regular expressions and .NET's replacement syntax, read into
Python's."""

from __future__ import annotations

import re
from collections.abc import Callable

from services.builder.features.filters.errors import bounded


def dotnet_pattern(pattern: str) -> re.Pattern[str]:
    """A .NET pattern in Python's syntax: named groups ``(?<n>)``/``(?'n')``, ``\\k<n>``,
    ``\\z`` and ``\\Z``. Other .NET-only syntax (``\\p{L}``, class subtraction, inline
    options in the middle) is refused by Python's parser: a FilterFailed, as .NET's parser
    would refuse what it does not know."""
    translated = re.sub(
        r"\\\\|\\k<(\w+)>|\\k'(\w+)'|\(\?<(?![=!])(\w+)>|\(\?'(\w+)'|\\z|\\Z",
        _translate_pattern_piece,
        pattern,
    )
    return re.compile(translated)


def _translate_pattern_piece(match: re.Match[str]) -> str:
    text = match.group()
    if text == "\\\\":
        return text
    if text == "\\z":
        return "\\Z"
    if text == "\\Z":
        return "(?=\\n?\\Z)"
    if match.group(1) or match.group(2):
        return f"(?P={match.group(1) or match.group(2)})"
    return f"(?P<{match.group(3) or match.group(4)}>"


def _substitution(pattern: re.Pattern[str], replacement: str) -> Callable[[re.Match[str]], str]:
    """.NET's replacement syntax: ``$1``, ``${name}``, ``$&``, ``$0``, ``$```, ``$'``,
    ``$+``, ``$_`` and ``$$``; anything else is literal."""
    pieces: list[str | Callable[[re.Match[str]], str]] = []
    position, literal = 0, []
    while position < len(replacement):
        char = replacement[position]
        if char != "$" or position + 1 == len(replacement):
            literal.append(char)
            position += 1
            continue
        taken, piece = _dollar(pattern, replacement, position + 1)
        if piece is None:
            literal.append("$")
            position += 1
            continue
        if literal:
            pieces.append("".join(literal))
            literal = []
        pieces.append(piece)
        position = taken
    if literal:
        pieces.append("".join(literal))

    def expand(match: re.Match[str]) -> str:
        return "".join(p if isinstance(p, str) else p(match) for p in pieces)

    return expand


def _dollar(
    pattern: re.Pattern[str], text: str, at: int
) -> tuple[int, str | Callable[[re.Match[str]], str] | None]:
    """The ``$`` reference starting at ``text[at]``: where it ends and what it stands for."""
    char = text[at]
    if char == "$":
        return at + 1, "$"
    if char in "&0" and not (char == "0" and at + 1 < len(text) and text[at + 1].isdigit()):
        return at + 1, lambda m: m.group(0)
    if char == "`":
        return at + 1, lambda m: m.string[: m.start()]
    if char == "'":
        return at + 1, lambda m: m.string[m.end() :]
    if char == "_":
        return at + 1, lambda m: m.string
    if char == "+":
        return at + 1, lambda m: (m.group(m.lastindex) or "") if m.lastindex else ""
    if char == "{":
        end = text.find("}", at)
        name = text[at + 1 : end] if end > 0 else ""
        if name.isascii() and name.isdigit() and int(name) <= pattern.groups:
            number = int(name)
            return end + 1, lambda m: m.group(number) or ""
        if name in pattern.groupindex:
            return end + 1, lambda m: m.group(name) or ""
        return at, None
    if "0" <= char <= "9":
        number, end, position = -1, at, at
        while position < len(text) and "0" <= text[position] <= "9" and position - at < 10:
            candidate = int(text[at : position + 1])
            position += 1
            if candidate <= pattern.groups:
                number, end = candidate, position
        if number >= 0:
            found = number
            return end, lambda m: m.group(found) or ""
    return at, None


def replace(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None or not args:
        return None
    pattern = dotnet_pattern(args[0])
    expand = _substitution(pattern, args[1] if len(args) > 1 else "")
    produced = 0

    def counted(match: re.Match[str]) -> str:
        # An empty pattern matches between every two characters: count as pieces are made.
        nonlocal produced
        piece = expand(match)
        produced += len(piece)
        bounded(produced, "Replace")
        return piece

    return pattern.sub(counted, value)


def match(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None or len(args) != 1:
        return None
    return "true" if dotnet_pattern(args[0]).search(value) is not None else "false"
