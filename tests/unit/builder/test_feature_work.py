"""What evaluating tenants' XPath costs is bounded: structured variables' selectors and XDT
locators are charged, before they run, an estimate of the nodes they visit (and then what
they select and change) against a work allowance, so an expression that searches the whole
document for every node, or thousands that each look at every node and change nothing, are
refused with their feature's code instead of running until the features' kill."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.builder.features.pipeline import apply_features
from services.builder.features.structured import (
    StructuredWorkError,
    Work,
    replace_structured,
)
from services.builder.features.variables import VariableSet
from services.builder.features.xdt import WorkExceeded, apply_transform
from services.builder.features.xdt.work import document_size, xpath_cost
from shared.builds.errors import BuildError
from shared.sdi import Features

XDT = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'


def flat(elements: int) -> bytes:
    return ("<r>" + "<a/>" * elements + "</r>").encode()


def test_a_selector_costs_the_nodes_and_a_searching_predicate_the_square() -> None:
    nodes, weight = 1_000, 2_000
    simple = xpath_cost("/configuration/appSettings/add[@key='x']/@value", nodes, weight)
    searching = xpath_cost("//*[count(//*) = 1]", nodes, weight)
    assert nodes <= simple < 3 * nodes
    assert searching >= weight * weight
    assert xpath_cost("//a['[//]']", nodes, weight) == xpath_cost("//a['x']", nodes, weight)
    assert xpath_cost("//a[b[count(//*)=1]]", nodes, weight) >= weight * weight


def test_the_document_size_counts_nodes_and_their_depth() -> None:
    from lxml import etree

    nodes, weight = document_size(etree.fromstring(b'<r a="1"><b><c/></b></r>'))
    assert nodes == 4 and weight == 1 * 2 + 2 + 3


def test_structured_selectors_spend_the_work_allowance() -> None:
    work = Work(10_000_000)
    replace_structured("a.xml", flat(1_000), ["//*[@never]"], lambda n: "v", work=work)
    assert 1_000 < work.limit - work.left < 10_000


def test_a_selector_searching_the_document_per_node_is_refused() -> None:
    """``//*[count(//*) = 1]`` counts every element once per element."""
    with pytest.raises(StructuredWorkError, match="more than 1000000 node visits"):
        replace_structured("a.xml", flat(2_000), ["//*[count(//*) = 1]"], lambda n: "v",
                           work=Work(1_000_000))  # fmt: skip


def test_many_selectors_that_select_nothing_are_refused_past_the_allowance() -> None:
    names = [f"//*[@never{n}]" for n in range(1_000)]
    with pytest.raises(StructuredWorkError):
        replace_structured("a.xml", flat(1_000), names, lambda n: "v", work=Work(1_000_000))


def test_names_that_are_not_xpath_cost_nothing() -> None:
    """JSON-style names (``ConnectionStrings:Db``) name an undeclared prefix first, which
    libxml2 refuses before it visits a node; names that do not compile visit nothing."""
    work = Work(1_000)
    names = [f"ConnectionStrings:Db{n}" for n in range(500)] + ["Logging:LogLevel:Default"]
    _, replaced = replace_structured("a.xml", flat(1_000), names, lambda n: "v", work=work)
    assert replaced == [] and work.left == work.limit


def test_one_allowance_is_shared_between_files() -> None:
    work = Work(30_000)
    replace_structured("a.xml", flat(10_000), ["/r/a[1]"], lambda n: "v", work=work)
    with pytest.raises(StructuredWorkError):
        replace_structured("b.xml", flat(10_000), ["/r/a[1]"], lambda n: "v", work=work)


def locating_every_b(rules: int) -> bytes:
    """Each rule locates every ``b`` and sets the value it already has: nothing grows."""
    rule = '<b q="1" xdt:Transform="SetAttributes(q)" xdt:Locator="XPath(//b)"/>'
    return f"<configuration {XDT}>{rule * rules}</configuration>".encode()


def test_xdt_locators_that_change_nothing_still_spend_the_allowance() -> None:
    """Zero growth spends no growth allowance; the work of locating and setting does."""
    target = b"<configuration>" + b'<b q="1"/>' * 300 + b"</configuration>"
    work = Work()
    assert apply_transform(target, locating_every_b(3), work=work) == target
    assert work.limit - work.left > 3 * 300
    with pytest.raises(WorkExceeded, match="more than 1000000 node visits"):
        apply_transform(target, locating_every_b(300), work=Work(1_000_000))


def test_an_xdt_condition_searching_the_document_per_node_is_refused() -> None:
    target = b"<configuration>" + b'<b q="1"/>' * 2_000 + b"</configuration>"
    transform = (
        f'<configuration {XDT}><b q="2" xdt:Transform="SetAttributes" '
        'xdt:Locator="Condition(count(//*) &gt; 1)"/></configuration>'
    ).encode()
    with pytest.raises(WorkExceeded):
        apply_transform(target, transform, work=Work(1_000_000))


def run(context: Path, features: Features, variables: dict[str, str]) -> None:
    apply_features(context, features, VariableSet(variables), environment=None, tenant=None,
                   log=lambda line: None)  # fmt: skip


def test_the_build_fails_a_structured_selector_over_the_allowance(tmp_path: Path) -> None:
    (tmp_path / "app.xml").write_bytes(flat(6_000))
    with pytest.raises(BuildError) as caught:
        run(tmp_path, Features(structured_variables=("app.xml",)), {"//*[count(//*) = 1]": "v"})
    assert caught.value.code == "structured_variables_failed"


def test_the_build_fails_a_transform_over_the_allowance(tmp_path: Path) -> None:
    (tmp_path / "Web.config").write_bytes(
        b"<configuration>" + b'<b q="1"/>' * 700 + b"</configuration>"
    )
    (tmp_path / "Web.Release.config").write_bytes(locating_every_b(700))
    with pytest.raises(BuildError) as caught:
        run(tmp_path, Features(dotnet_config_transforms=True), {})
    assert caught.value.code == "config_transform_failed"
