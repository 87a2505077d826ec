"""Growth accounting: what a transform writes into a document is charged as it is written,
against an allowance, and the transformed document's nesting is bounded.

A rule whose locator selects every element (``XPath(//*)``) copies its content into each,
so a few such rules would otherwise double the document again and again."""

from __future__ import annotations

from lxml import etree

from services.builder.features.xdt.document import TransformError

MAX_GROWTH = 64 * 1024 * 1024  # bytes a transform may write into a document
NODE_COST = 128  # bytes charged for each element copied, beside its text: libxml2 keeps ~120
MAX_DEPTH = 400  # elements nested in a transformed document (libxml2 reads at most 256)


class Growth:
    """What a transform may still write into the document."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = limit

    def charge(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise TransformError(
                f"the transform writes more than {self.limit} bytes into the document (each "
                f"element copied counts {NODE_COST} bytes beside its text); does a locator "
                "select every element?"
            )


def check_depth(root: etree._Element) -> None:
    depth = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_DEPTH:
            raise TransformError(f"the transformed document nests elements over {MAX_DEPTH} deep")


def copy_size(rule: etree._Element) -> int:
    """What a copy of ``rule`` adds to a document: its text and a node's cost per node."""
    return len(etree.tostring(rule, with_tail=False)) + NODE_COST * sum(1 for _ in rule.iter())
