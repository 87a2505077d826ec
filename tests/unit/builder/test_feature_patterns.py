"""File patterns in ``sdi.yaml`` (``substitute_in_files``, ``structured_variables``) may hold
``#{}``. The files a pattern matches are named in the build log and a refused pattern is
named in the build's error, so a pattern may read no sensitive variable, and an error quotes
the pattern as written, never as rendered."""

from __future__ import annotations

import string
from pathlib import Path

import pytest

from services.builder.features.pipeline import apply_features
from services.builder.features.variables import VariableSet
from shared.builds.errors import BuildError
from shared.sdi import Features

SECRET = "hunter2-prod"


def variables() -> VariableSet:
    return VariableSet(
        {"App": "web", "Root": "/etc", "Up": "..", "Indirect": "#{DbPassword}"},
        {"DbPassword": SECRET},
    )


def run(context: Path, features: Features) -> list[str]:
    lines: list[str] = []
    apply_features(context, features, variables(), environment=None, tenant=None,
                   log=lines.append)  # fmt: skip
    return lines


def both(*patterns: str) -> list[Features]:
    return [Features(substitute_in_files=patterns), Features(structured_variables=patterns)]


@pytest.mark.parametrize(
    "pattern",
    [
        "#{DbPassword}/../x.json",
        "#{DbPassword | ToUpper}/../x.json",
        "/#{DbPassword | Replace - _}",
        "p00-#{DbPassword | Substring 0 1}.json",
        "#{Indirect | ToBase64}.json",
        "#{if DbPassword | StartsWith h}a#{/if}.json",
    ],
    ids=["direct", "filtered", "absolute", "one-character", "indirect", "condition"],
)
@pytest.mark.parametrize("substitute", [True, False], ids=["substitute", "structured"])
def test_a_pattern_that_reads_a_sensitive_variable_is_refused_by_name(
    tmp_path: Path, pattern: str, substitute: bool
) -> None:
    (tmp_path / "p00-h.json").write_text("{}")
    features = both(pattern)[0 if substitute else 1]
    with pytest.raises(BuildError) as caught:
        run(tmp_path, features)
    assert caught.value.code == "sdi_invalid"
    message = str(caught.value)
    assert "DbPassword" in message and repr(pattern) in message
    for form in (SECRET, SECRET.upper(), SECRET.replace("-", "_"), SECRET[:4]):
        assert form not in message


def test_patterns_cannot_spell_a_secret_out_through_the_files_they_match(
    tmp_path: Path,
) -> None:
    """One pattern per position of the value, one file per (position, character): the log's
    matches would spell the value."""
    for position in range(len(SECRET)):
        for character in string.ascii_lowercase + string.digits + "-":
            (tmp_path / f"p{position:02d}-{character}.json").write_text("{}")
    patterns = tuple(
        f"p{position:02d}-#{{DbPassword | Substring {position} 1}}.json"
        for position in range(len(SECRET))
    )
    lines: list[str] = []
    with pytest.raises(BuildError) as caught:
        apply_features(tmp_path, Features(structured_variables=patterns), variables(),
                       environment=None, tenant=None, log=lines.append)  # fmt: skip
    assert caught.value.code == "sdi_invalid"
    assert lines == []  # refused before any file is matched or named


@pytest.mark.parametrize("features", both("#{Root}/x.json"), ids=["substitute", "structured"])
def test_a_pattern_rendered_absolute_is_refused_quoting_it_as_written(
    tmp_path: Path, features: Features
) -> None:
    with pytest.raises(BuildError) as caught:
        run(tmp_path, features)
    assert caught.value.code == "sdi_invalid"
    assert str(caught.value) == "file pattern '#{Root}/x.json' renders as an absolute path"


@pytest.mark.parametrize("features", both("#{App}/#{Up}/x.json"), ids=["substitute", "structured"])
def test_a_pattern_rendered_out_of_the_folder_is_refused_quoting_it_as_written(
    tmp_path: Path, features: Features
) -> None:
    with pytest.raises(BuildError) as caught:
        run(tmp_path, features)
    assert caught.value.code == "sdi_invalid"
    assert "'#{App}/#{Up}/x.json'" in str(caught.value)
    assert "web/../x.json" not in str(caught.value)


def test_patterns_reading_plain_variables_still_match(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "appsettings.json").write_text('{"App": "x"}')
    lines = run(tmp_path, Features(structured_variables=("#{App}/*.json",)))
    assert lines == ["structured variables: 1 value(s) in web/appsettings.json"]
    assert '"App": "web"' in (tmp_path / "web" / "appsettings.json").read_text()
