"""What the configuration features write into files is bounded: a transform or a variable
that multiplies itself across a document is refused with its feature's code, before it has
made the document, and the run's one Budget covers transforms and variables as well as
templates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.builder.features.dotnet_config import replace_config_variables
from services.builder.features.octostache import Budget
from services.builder.features.pipeline import apply_features
from services.builder.features.variables import VariableSet
from services.builder.features.xdt import TransformError, apply_transform
from shared.builds.errors import BuildError
from shared.sdi import Features

XDT = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'


def inserting_transform(rules: int, text: str = "") -> bytes:
    """Each rule selects every element (``XPath(//*)``) and inserts an element holding
    ``text``: the server inserts into the first element selected only, so the document grows
    by one copy per rule, never doubles."""
    rule = f'<x xdt:Locator="XPath(//*)"><a xdt:Transform="Insert">{text}</a></x>'
    return f"<configuration {XDT}>{rule * rules}</configuration>".encode()


def test_an_insert_goes_into_the_first_parent_only_so_rules_cannot_double_a_document() -> None:
    assert apply_transform(b"<configuration/>", inserting_transform(3)).count(b"<a") == 3
    assert apply_transform(b"<configuration/>", inserting_transform(24)).count(b"<a") == 24


def test_a_transform_that_writes_past_its_allowance_is_refused_before_it_writes() -> None:
    with pytest.raises(TransformError, match="more than 500000 bytes"):
        apply_transform(
            b"<configuration/>", inserting_transform(10, "t" * 100_000), max_growth=500_000
        )
    assert apply_transform(b"<configuration/>", inserting_transform(4, "t" * 100_000),
                           max_growth=500_000).count(b"<a") == 4  # fmt: skip


def test_setting_an_attribute_on_every_element_is_charged() -> None:
    document = b"<configuration>" + b"<e/>" * 1000 + b"</configuration>"
    value = "v" * 100_000
    transform = (
        f'<configuration {XDT}><e a="{value}" xdt:Transform="SetAttributes" '
        'xdt:Locator="XPath(//*)"/></configuration>'
    ).encode()
    with pytest.raises(TransformError, match="more than 10000000 bytes"):
        apply_transform(document, transform, max_growth=10_000_000)
    small = apply_transform(document, transform.replace(value.encode(), b"v"))
    assert small.count(b'a="v"') == 1001  # the root too


def test_an_xpath_locator_selects_each_element_once_however_many_parents() -> None:
    """Nested XPath locators selected every element once per parent (n**depth targets),
    inserting as many copies into each; the deployment server selects a node set."""
    document = b"<configuration><a/><b/></configuration>"
    transform = (
        f'<configuration {XDT}><x xdt:Locator="XPath(/configuration/*)">'
        '<y xdt:Locator="XPath(//b)"><new xdt:Transform="Insert"/></y></x></configuration>'
    ).encode()
    assert apply_transform(document, transform).count(b"<new/>") == 1


def test_a_large_value_in_many_settings_is_refused() -> None:
    """A 1 MiB variable named by 300 settings would be a 314 MB file."""
    settings = "".join('<add key="X" value=""/>' for _ in range(300))
    content = f"<configuration><appSettings>{settings}</appSettings></configuration>".encode()
    value = "v" * 1024 * 1024
    started = time.monotonic()
    with pytest.raises(TransformError, match="more than 67108864 bytes"):
        replace_config_variables(content, ["X"], {"X": value}.get)
    assert time.monotonic() - started < 10
    updated, names = replace_config_variables(content, ["X"], {"X": "small"}.get)
    assert names == ["X"] * 300 and updated.count(b'value="small"') == 300


def run(context: Path, features: Features, values: dict[str, str], budget: Budget) -> None:
    apply_features(
        context,
        features,
        VariableSet(values),
        environment=None,
        tenant=None,
        log=lambda line: None,
        budget=budget,
    )


def test_transforms_and_variables_spend_the_feature_runs_budget(tmp_path: Path) -> None:
    """Within 1 MiB of budget: the doubling transform fails as config_transform_failed, the
    variables as config_variables_failed, each naming its file; nothing is written."""
    (tmp_path / "Web.config").write_bytes(b"<configuration/>")
    (tmp_path / "Web.Release.config").write_bytes(inserting_transform(12, "t" * 100_000))
    with pytest.raises(BuildError) as caught:
        run(tmp_path, Features(dotnet_config_transforms=True), {}, Budget(characters=1024**2))
    assert caught.value.code == "config_transform_failed"
    assert str(caught.value).startswith("Web.Release.config on Web.config: the transform writes")
    assert (tmp_path / "Web.config").read_bytes() == b"<configuration/>"

    settings = "".join(f'<add key="X{n % 2}" value=""/>' for n in range(40))
    config = f"<configuration><appSettings>{settings}</appSettings></configuration>".encode()
    (tmp_path / "App.config").write_bytes(config)
    values = {"X0": "v" * 50_000, "X1": "w" * 50_000}
    with pytest.raises(BuildError) as caught:
        run(tmp_path, Features(dotnet_config_variables=True), values, Budget(characters=1024**2))
    assert caught.value.code == "config_variables_failed"
    assert str(caught.value).startswith("App.config: the variables' values would add more")
    assert (tmp_path / "App.config").read_bytes() == config


def test_what_each_file_gains_is_taken_from_what_is_left(tmp_path: Path) -> None:
    """Two files each within the budget alone, together over it: the second is refused."""
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text('{"Key": ""}')
    features = Features(structured_variables=("a.json", "b.json"))
    run(tmp_path, Features(structured_variables=("a.json",)), {"Key": "k" * 600}, Budget(1000))
    (tmp_path / "a.json").write_text('{"Key": ""}')
    with pytest.raises(BuildError) as caught:
        run(tmp_path, features, {"Key": "k" * 600}, Budget(characters=1000))
    assert caught.value.code == "structured_variables_failed"
    assert str(caught.value).startswith("b.json: the configuration features would add more")
    assert (tmp_path / "b.json").read_text() == '{"Key": ""}'
