"""XPath 2 selectors, as far as lxml's XPath 1 engine can run them.

The server compiles each variable name that holds ``/`` or ``:`` as an XPath 2 expression.
The XPath 2 forms people write in selectors are translated here: the ``*:name`` wildcard
(any namespace), the value comparisons ``eq ne lt le gt ge``, and the string functions
``ends-with``, ``matches``, ``replace``, ``lower-case``, ``upper-case``, ``string-join``,
``tokenize``, ``exists`` and ``empty`` (supplied as extension functions; regular expressions
are Python's, which agree with XPath's on everything but character-class subtraction; a
quantified group such as ``(a+)+`` is refused, as it can take exponential time).
Anything else XPath 2 adds (``if``, ``for``, sequences, ``intersect``) is not supported, and
a selector using it selects nothing, as one that does not compile on the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
_ANY_NAMESPACE = re.compile(r"\*:([A-Za-z_][\w.-]*)")
_COMPARISON = re.compile(r"(?<=\s)(eq|ne|lt|le|gt|ge)(?=\s)")
_OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_MAX_PATTERN = 1_000  # regular expressions come from variable names: keep them small
_QUANTIFIED_GROUP = re.compile(r"\)[*+?{]")
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}


def xpath1(expression: str) -> str:
    """``expression`` with its XPath 2 forms written as XPath 1 (outside string literals)."""
    out, position = [], 0
    for literal in _LITERAL.finditer(expression):
        out.append(_translate(expression[position : literal.start()]))
        out.append(literal.group(0))
        position = literal.end()
    out.append(_translate(expression[position:]))
    return "".join(out)


def _translate(code: str) -> str:
    code = _ANY_NAMESPACE.sub(r"*[local-name()='\1']", code)
    return _COMPARISON.sub(lambda match: _OPERATORS[match.group(1)], code)


def _string(value: Any) -> str:
    """An argument's string value, as XPath takes it (the first node of a node-set)."""
    if isinstance(value, list):
        if not value:
            return ""
        value = value[0]
        if hasattr(value, "xpath"):
            return str(value.xpath("string()"))
    return str(value)


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item.xpath("string()")) if hasattr(item, "xpath") else str(item)
                for item in value]  # fmt: skip
    return [_string(value)]


def _regex(pattern: Any, flags: Any = "") -> re.Pattern[str]:
    text, options = _string(pattern), 0
    if len(text) > _MAX_PATTERN or _QUANTIFIED_GROUP.search(text):
        raise ValueError("the regular expression is too long or has a quantified group")
    for flag in _string(flags):
        if flag not in _FLAGS:
            raise ValueError("an unknown regular expression flag")
        options |= _FLAGS[flag]
    try:
        return re.compile(text, options)
    except re.error as exc:
        raise ValueError("the regular expression does not compile") from exc


def _ends_with(_: Any, value: Any, suffix: Any) -> bool:
    return _string(value).endswith(_string(suffix))


def _matches(_: Any, value: Any, pattern: Any, flags: Any = "") -> bool:
    return _regex(pattern, flags).search(_string(value)) is not None


def _replace(_: Any, value: Any, pattern: Any, replacement: Any, flags: Any = "") -> str:
    # XPath writes group references $1; Python \1.
    template = re.sub(r"\$(\d)", r"\\\1", _string(replacement).replace("\\", "\\\\"))
    return _regex(pattern, flags).sub(template, _string(value))


def _tokenize(_: Any, value: Any, pattern: Any, flags: Any = "") -> list[str]:
    return _regex(pattern, flags).split(_string(value))


EXTENSIONS: dict[tuple[None, str], Callable[..., Any]] = {
    (None, "ends-with"): _ends_with,
    (None, "matches"): _matches,
    (None, "replace"): _replace,
    (None, "tokenize"): _tokenize,
    (None, "lower-case"): lambda _, value: _string(value).lower(),
    (None, "upper-case"): lambda _, value: _string(value).upper(),
    (None, "string-join"): lambda _, values, separator="": _string(separator).join(
        _strings(values)
    ),
    (None, "exists"): lambda _, values: bool(values),
    (None, "empty"): lambda _, values: not values,
}
