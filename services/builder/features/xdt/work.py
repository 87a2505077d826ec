"""What evaluating tenants' XPath expressions may cost: transform locators here, structured
variables' selectors too.

libxml2 cannot be stopped part way through an expression, so each one is charged before it
runs an upper estimate of the nodes it visits, from the document's size and the
expression's shape, and refused when that is more than is left of a ``Work`` allowance:

- every expression, the document's nodes (a path of child steps visits each at most once);
- each ``//`` or axis (``descendant::``, ``following::``, ``..``) outside predicates, the
  document's *weight*: its nodes each counted once per ancestor, what searching below
  every node at once visits;
- each predicate that searches (a path with ``/``, an axis, ``id()`` or a variable, beside
  attributes and literals), the weight again as a factor: it runs once per candidate node,
  so ``//*[count(//*) = 1]`` costs the square of the document.
And the nodes an expression selects, once it has run; and ``NODE_HANDLED`` for each node a
transform or value then changes (Python's work, not libxml2's)."""

from __future__ import annotations

import re

from lxml import etree

from services.builder.features.xdt.document import TransformError

MAX_WORK = 20_000_000  # nodes visited: a few seconds of libxml2's work
NODE_HANDLED = 100  # what changing one selected node in Python costs, in nodes visited

_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
_SEARCH = re.compile(r"/|\.\.|::|\bid\s*\(|\$")
_CHEAP_AXIS = re.compile(r"\b(?:child|attribute|self)\s*::")
_TOP_SEARCH = re.compile(r"//|\.\.|::")


class WorkExceeded(TransformError):
    """An expression would take the work allowance past its limit."""


class Work:
    """What evaluating XPath expressions may still cost, in nodes visited. One allowance can
    be shared by every transform and file of a feature run."""

    def __init__(self, limit: int = MAX_WORK) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise WorkExceeded(
                f"evaluating XPath expressions and changing what they select would cost more "
                f"than {self.limit} node visits (does an expression search the whole document "
                "for each node it tries, or select every node again and again?)"
            )


def document_size(root: etree._Element) -> tuple[int, int]:
    """The nodes of ``root``'s tree (elements, attributes, text and the rest) and its
    weight: each node counted once per element it is inside, plus once."""
    nodes = weight = 0
    depth = 0
    for event, node in etree.iterwalk(root, events=("start", "end")):
        if event == "end":
            depth -= 1
            continue
        depth += 1
        count = 1 + (len(node.attrib) if isinstance(node.tag, str) else 0)
        count += (node.text is not None) + (node.tail is not None)
        nodes += count
        weight += count * depth
    return nodes, weight


def xpath_cost(expression: str, nodes: int, weight: int) -> int:
    """An upper estimate of the nodes evaluating ``expression`` visits in a document of
    ``nodes`` nodes and ``weight`` (see ``document_size``); the nodes it selects aside."""
    code = _LITERAL.sub("''", expression)
    # Each open predicate: its own text (nested ones left out) and its nested ones' factors.
    frames: list[tuple[list[str], list[int]]] = [([], [])]  # the first: outside predicates
    for char in code:
        if char == "[":
            frames.append(([], []))
        elif char == "]" and len(frames) > 1:
            text, nested = frames.pop()
            searching = _SEARCH.search(_CHEAP_AXIS.sub("", "".join(text))) is not None
            # run once per node tried; what it nests runs per node it looks at in turn
            frames[-1][1].append((weight if searching else 1) * max(sum(nested), 1))
        else:
            frames[-1][0].append(char)
    while len(frames) > 1:  # unclosed: the expression will not compile, but be safe
        text, nested = frames.pop()
        frames[-1][1].append(weight * max(sum(nested), 1))
    text, nested = frames[0]
    searches = len(_TOP_SEARCH.findall("".join(text)))
    return (nodes + searches * weight) * (1 + sum(nested))
