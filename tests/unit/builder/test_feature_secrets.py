"""Substitution keeps sensitive values out of the Dockerfile (its text becomes image config and
history) however they would get there, and puts them in the other files the SDI names; its
templates run within a budget."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from services.builder.features.octostache import Budget
from services.builder.features.pipeline import apply_features
from services.builder.features.variables import VariableSet
from shared.builds.errors import BuildError
from shared.sdi import Features

PASSWORD = "c0rrect-h0rse-battery"


def variables() -> VariableSet:
    return VariableSet(
        {
            "Version": "1.4.2",
            "ConnectionString": "Server=db;Password=#{DbPassword}",
            "Hosts": "a.example,b.example",
        },
        {"DbPassword": PASSWORD, "Tokens": "t-one,t-two"},
    )


def substitute(context: Path, *patterns: str, budget: Budget | None = None) -> list[str]:
    lines: list[str] = []
    apply_features(context, Features(substitute_in_files=patterns), variables(),
                   environment=None, tenant=None, log=lines.append, budget=budget)  # fmt: skip
    return lines


@pytest.mark.parametrize(
    ("instruction", "variable"),
    [
        ('LABEL pw="#{DbPassword}"', "DbPassword"),
        ('LABEL b64="#{DbPassword | ToBase64}"', "DbPassword"),
        ('LABEL part="#{DbPassword | Substring 0 7}" rest="#{DbPassword | Substring 7}"',
         "DbPassword"),
        ('ENV DB="#{ConnectionString}"', "DbPassword"),
        ('#{if DbPassword | StartsWith c}LABEL first=c#{/if}', "DbPassword"),
        ("#{each t in Tokens}RUN echo #{Octopus.Template.Each.Index}#{/each}", "Tokens"),
        ("#{if Hosts}RUN echo #{dbpassword | ToUpper}#{/if}", "DbPassword"),
    ],
    ids=["direct", "base64", "pieces", "indirect", "condition", "each", "inside-if"],
)  # fmt: skip
def test_a_dockerfile_that_reads_a_sensitive_variable_fails(
    tmp_path: Path, instruction: str, variable: str
) -> None:
    dockerfile = f"FROM base\n{instruction}\nCOPY app /app\n"
    (tmp_path / "Dockerfile").write_text(dockerfile)
    with pytest.raises(BuildError) as caught:
        substitute(tmp_path, "Dockerfile")
    assert caught.value.code == "sensitive_value_in_image"
    message = str(caught.value)
    assert variable in message
    assert PASSWORD not in message and PASSWORD[:7] not in message
    assert base64.b64encode(PASSWORD.encode()).decode() not in message
    assert (tmp_path / "Dockerfile").read_text() == dockerfile  # nothing was written


def test_the_same_expressions_fill_other_files(tmp_path: Path) -> None:
    template = (
        'pw="#{DbPassword}" b64="#{DbPassword | ToBase64}" cs="#{ConnectionString}"\n'
        "#{each t in Tokens}#{t};#{/each}\n"
    )
    (tmp_path / "Dockerfile").write_text('FROM base\nLABEL version="#{Version}"\n')
    (tmp_path / "app.conf").write_text(template)
    lines = substitute(tmp_path, "Dockerfile", "app.conf")
    assert (tmp_path / "Dockerfile").read_text() == 'FROM base\nLABEL version="1.4.2"\n'
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    assert (tmp_path / "app.conf").read_text() == (
        f'pw="{PASSWORD}" b64="{encoded}" cs="Server=db;Password={PASSWORD}"\nt-one;t-two;\n'
    )
    assert not any(PASSWORD in line for line in lines)


def test_a_dockerfile_not_substituted_is_not_checked(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM base\nCOPY app.conf /app.conf\n")
    (tmp_path / "app.conf").write_text("#{DbPassword}")
    substitute(tmp_path, "*.conf")
    assert (tmp_path / "app.conf").read_text() == PASSWORD


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_the_dockerfile_under_another_name_is_still_the_dockerfile(
    tmp_path: Path, link: str
) -> None:
    """``settings.conf`` linked to the Dockerfile: rendering it writes the Dockerfile."""
    dockerfile = 'FROM base\nLABEL pw="#{DbPassword | ToBase64}"\n'
    (tmp_path / "Dockerfile").write_text(dockerfile)
    if link == "symbolic":
        (tmp_path / "settings.conf").symlink_to("Dockerfile")
    else:
        os.link(tmp_path / "Dockerfile", tmp_path / "settings.conf")
    with pytest.raises(BuildError) as caught:
        substitute(tmp_path, "*.conf")
    assert caught.value.code == "sensitive_value_in_image"
    assert (tmp_path / "Dockerfile").read_text() == dockerfile


def test_templates_spend_one_budget_per_feature_run(tmp_path: Path) -> None:
    """Each file fits the budget; both together do not."""
    for name in ("a.conf", "b.conf"):
        (tmp_path / name).write_text("#{Hosts}" * 50)
        substitute(tmp_path, name, budget=Budget(characters=2_000))
        (tmp_path / name).write_text("#{Hosts}" * 50)
    with pytest.raises(BuildError) as caught:
        substitute(tmp_path, "a.conf", "b.conf", budget=Budget(characters=2_000))
    assert caught.value.code == "substitution_failed" and "output budget" in str(caught.value)
