"""Which transform applies to which file, as the deployment server's TransformFileLocator
decides, and how the build runs them: explicit rules first, a rule that finds nothing is
logged (not an error), a transform that selects nothing fails the build."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.builder.features import transforms
from services.builder.features.pipeline import apply_features
from services.builder.features.transforms import (
    ROOT,
    RuleError,
    Steps,
    package_path,
    parse_rule,
    plan,
    relative_to_package,
    transform_files,
)
from services.builder.features.variables import VariableSet
from shared.builds.errors import BuildError
from shared.sdi import Features


class Package:
    """A package given as the files it holds (paths relative to it)."""

    def __init__(self, *names: str) -> None:
        self.files = {package_path(name) for name in names}

    def is_folder(self, path: str) -> bool:
        return path == ROOT or any(name.startswith(path.rstrip("/") + "/") for name in self.files)

    def names(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({n[len(prefix) :].split("/")[0] for n in self.files if n.startswith(prefix)})

    def is_file(self, path: str) -> bool:
        return path in self.files


def located(package: Package, rule: str, target: str) -> list[str]:
    parsed = parse_rule(rule)
    path = package_path(target)
    if not transforms.applies_to(parsed, path):
        return []
    return [relative_to_package(p) for p in transform_files(path, parsed, package, Steps())]


@pytest.mark.parametrize(
    ("files", "rule", "expected"),
    [
        pytest.param(["site.config", "site.blue.config"], "site.blue.config => site.config",
                     {"site.config": ["site.blue.config"]}, id="name-to-name-same-folder"),
        pytest.param(["site.config", "api.config", "secrets.blue.config"],
                     "secrets.blue.config => *.config",
                     {"site.config": ["secrets.blue.config"],
                      "api.config": ["secrets.blue.config"]},
                     id="one-transform-to-every-config-beside-it"),
        pytest.param(["site.config", "overlays/site.blue.config"],
                     r"overlays\site.blue.config => site.config",
                     {"site.config": ["overlays/site.blue.config"]},
                     id="transform-in-a-subfolder-backslashes-are-separators"),
        pytest.param(["site.config", "api.config", "overlays/secrets.blue.config"],
                     "overlays/secrets.blue.config => *.config",
                     {"site.config": ["overlays/secrets.blue.config"],
                      "api.config": ["overlays/secrets.blue.config"]},
                     id="subfolder-transform-to-every-config"),
        pytest.param(["site.config", "tls.blue.config", "db.blue.config"],
                     "*.blue.config => site.config",
                     {"site.config": ["db.blue.config", "tls.blue.config"]},
                     id="every-wildcard-transform-to-one-target"),
        pytest.param(["Shop.db.edge.config", "Shop.log_edge.config", "Shop.Svc.exe.config"],
                     "Shop.*.edge.config => Shop.Svc.exe.config",
                     {"Shop.Svc.exe.config": ["Shop.db.edge.config"]},
                     id="a-star-inside-a-transform-name-is-a-file-wildcard"),
        pytest.param(["site.config", "site.blue.config"], "*.blue.config => s*.config",
                     {"site.config": []}, id="a-star-inside-a-target-name-matches-nothing"),
        pytest.param(["site.config", "api.config", "site.blue.config", "api.blue.config"],
                     "*.blue.config => *.config",
                     {"site.config": ["site.blue.config"], "api.config": ["api.blue.config"]},
                     id="wildcard-pairs-by-name"),
        pytest.param(["conf/site.config", "tls.blue.config", "db.blue.config"],
                     "*.blue.config => conf/site.config",
                     {"conf/site.config": ["db.blue.config", "tls.blue.config"]},
                     id="wildcard-transforms-to-a-target-in-a-subfolder"),
        pytest.param(["conf/site.config", "conf/api.config", "site.blue.config",
                      "api.blue.config"],
                     "*.blue.config => conf/*.config",
                     {"conf/site.config": ["site.blue.config"],
                      "conf/api.config": ["api.blue.config"]},
                     id="wildcard-pairs-into-a-subfolder"),
        pytest.param(["conf/site.config", "overlays/site.blue.config"],
                     "overlays/site.blue.config => conf/site.config",
                     {"conf/site.config": ["overlays/site.blue.config"]},
                     id="sibling-folders"),
        pytest.param(["conf/conf/site.config", "conf/overlays/site.blue.config"],
                     "overlays/site.blue.config => conf/site.config",
                     {"conf/conf/site.config": ["conf/overlays/site.blue.config"]},
                     id="a-repeated-folder-name-is-taken-off-once"),
        pytest.param(["conf/site.config", "conf/api.config", "overlays/tls.blue.config",
                      "overlays/db.blue.config"],
                     "overlays/*.blue.config => conf/site.config",
                     {"conf/site.config": ["overlays/db.blue.config", "overlays/tls.blue.config"],
                      "conf/api.config": []},
                     id="wildcard-subfolder-transforms-to-one-subfolder-target"),
        pytest.param(["site.config", "nested/site.config", "site.blue.config",
                      "nested/site.blue.config"],
                     "site.blue.config => ./site.config",
                     {"site.config": ["site.blue.config"], "nested/site.config": []},
                     id="dot-slash-anchors-the-target-at-the-package-root"),
        pytest.param(["site.config", "site.blue.config"], "site.blue.config => /srv/site.config",
                     {"site.config": []}, id="an-absolute-target-matches-nothing"),
        pytest.param(["site.config", "site.blue.config"], r"site.blue.config => c:\srv\site.config",
                     {"site.config": []}, id="a-drive-letter-target-matches-nothing"),
        pytest.param(["site.config", "site.Blue.config", "site.Blue", "Svc.exe.config",
                      "Svc.exe.Blue.config", "Svc.Blue.config"],
                     "Blue",
                     {"site.config": ["site.Blue.config", "site.Blue"],
                      "Svc.exe.config": ["Svc.exe.Blue.config"]},
                     id="a-name-replaces-the-extension"),
        pytest.param(["site.config", "SITE.BLUE.CONFIG", "site.blue.config"], "blue",
                     {"site.config": ["site.blue.config"]},
                     id="file-names-are-listed-case-sensitively-as-on-linux"),
        pytest.param(["conf/site.config", "site.blue.config"],
                     "site.blue.config => CONF/SITE.CONFIG",
                     {"conf/site.config": ["site.blue.config"]},
                     id="the-target-pattern-compares-in-any-case"),
        pytest.param(["site.config", "site.blue.config", "site.bl.config", "site.b.config"],
                     "site.bl??.config => site.config",
                     {"site.config": ["site.bl.config", "site.blue.config"]},
                     id="a-question-mark-matches-one-character-or-none-before-a-dot"),
        pytest.param(["site.config", "site", "site.blue"], "site.* => site.config",
                     {"site.config": ["site", "site.blue"]},
                     id="a-dot-before-a-star-may-match-the-end-of-the-name"),
        pytest.param(["site.config"], "site",
                     {"site.config": []}, id="a-file-is-not-its-own-transform"),
    ],
)  # fmt: skip
def test_transforms_are_found_as_the_server_finds_them(
    files: list[str], rule: str, expected: dict[str, list[str]]
) -> None:
    package = Package(*files)
    assert {target: located(package, rule, target) for target in expected} == expected


@pytest.mark.parametrize(
    "rule",
    ["overlay.config =>", "=> site.config", " => ", "/etc/overlay.config => site.config",
     r"c:\overlays\x.config => site.config"],
)  # fmt: skip
def test_malformed_rules_and_transforms_outside_the_package_are_refused(rule: str) -> None:
    with pytest.raises(RuleError):
        parse_rule(rule)


def test_rules_split_like_the_servers_variable_and_automatic_ones_come_last() -> None:
    explicit, automatic = transforms.rules(
        ["a.config => b.config, c.config => d.xml\ne.config"],
        automatic=True,
        environment="Blue",
        tenant=" ",
    )
    assert [rule.text for rule in explicit] == ["a.config => b.config", "c.config => d.xml",
                                                "e.config"]  # fmt: skip
    assert [rule.text for rule in automatic] == ["Release", "Blue"]
    assert transforms.candidate_patterns(explicit, automatic=True) == ["*.config", "*.xml"]


def test_each_transform_applies_once_per_target_explicit_rules_first() -> None:
    package = Package("site.config", "site.Release.config", "site.blue.config")
    explicit, automatic = transforms.rules(
        ["site.Release.config => site.config", "missing.config => site.config"],
        automatic=True,
        environment="blue",
        tenant=None,
    )
    found = plan(["site.Release.config", "site.blue.config", "site.config"], explicit,
                 automatic, package)  # fmt: skip
    assert found.pairs == [
        ("site.Release.config", "site.config"),
        ("site.blue.config", "site.config"),
    ]
    assert [rule.text for rule in found.unused] == ["missing.config => site.config"]


def test_matching_is_bounded_by_its_step_budget() -> None:
    package = Package(*[f"f{n}.config" for n in range(200)])
    explicit, automatic = transforms.rules(["*.x.config => *.config"], automatic=True,
                                           environment=None, tenant=None)  # fmt: skip
    with pytest.raises(RuleError, match="more than 5000 steps"):
        plan(sorted(n for n in package.names(ROOT)), explicit, automatic, package, Steps(5000))


def test_a_transform_name_of_many_stars_is_matched_without_backtracking() -> None:
    """Each ``*`` of a plain file-name wildcard as ``.*`` in a regular expression backtracks
    exponentially against a long name that does not match: the matcher carries the pattern's
    positions along the name instead, so this returns at once (it never did before)."""
    stars = "a*" * 30
    package = Package("site.config", "a" * 200 + ".config", "a" * 40 + "b.config")
    assert located(package, f"{stars}b.config => site.config", "site.config") == [
        "a" * 40 + "b.config"
    ]


def test_a_long_pattern_against_long_names_spends_more_steps() -> None:
    """The step budget counts what matching costs: one step a name, more for a long name
    against a long pattern, so a rule set of huge patterns ends within the budget."""
    package = Package("site.config", *[f"{n}{'a' * 200}.config" for n in range(10)])
    rule = parse_rule("b" * 4000 + "*.config => site.config")
    with pytest.raises(RuleError, match="more than 100 steps"):
        list(transform_files(package_path("site.config"), rule, package, Steps(100)))


def test_folders_named_by_rules_are_checked_unless_they_climb_or_hold_wildcards() -> None:
    explicit, _ = transforms.rules(
        ["t/x.config => conf/site.config", "../up/y.config => site.config",
         "w*/z.config => site.config", "./conf/a.config => ./conf/site.config"],
        automatic=False, environment=None, tenant=None,
    )  # fmt: skip
    assert transforms.named_folders(explicit) == ["t", "conf"]


XDT = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'
SITE = '<?xml version="1.0"?>\n<site>\n  <port value="80" />\n</site>\n'


def run(context: Path, features: Features, environment: str | None = None) -> list[str]:
    lines: list[str] = []
    apply_features(context, features, VariableSet({}), environment=environment, tenant=None,
                   log=lines.append)  # fmt: skip
    return lines


def test_the_build_applies_explicit_then_automatic_transforms_in_order(tmp_path: Path) -> None:
    """Two SetAttributes on the same attribute: the automatic (environment) transform runs
    after the explicit one, so its value is the one left."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf/site.config").write_text(SITE)
    (tmp_path / "overlays").mkdir()
    (tmp_path / "overlays/site.x.config").write_text(
        f'<site {XDT}><port value="81" xdt:Transform="SetAttributes"/></site>'
    )
    (tmp_path / "conf/site.Blue.config").write_text(
        f'<site {XDT}><port value="82" xdt:Transform="SetAttributes"/></site>'
    )
    lines = run(
        tmp_path,
        Features(dotnet_config_transforms=True,
                 additional_transforms=("overlays/site.x.config => conf/site.config",)),
        environment="Blue",
    )  # fmt: skip
    assert (tmp_path / "conf/site.config").read_text() == SITE.replace('"80"', '"82"')
    assert lines == [
        "transformed conf/site.config with overlays/site.x.config",
        "transformed conf/site.config with conf/site.Blue.config",
    ]


@pytest.mark.parametrize(
    ("features", "files", "logged"),
    [
        pytest.param(Features(additional_transforms=("absent.config => site.config",)), {},
                     "the transform rule 'absent.config => site.config' matched no files",
                     id="a-rule-that-finds-no-transform"),
        pytest.param(Features(dotnet_config_transforms=True),
                     {"site.Release.config": "<other/>"},
                     "site.Release.config on site.config: the transform does not use the XDT "
                     "namespace: nothing to do", id="a-transform-without-xdt"),
    ],
)  # fmt: skip
def test_what_the_server_passes_over_does_not_fail_the_build(
    tmp_path: Path, features: Features, files: dict[str, str], logged: str
) -> None:
    (tmp_path / "site.config").write_text(SITE)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert logged in run(tmp_path, features)
    assert (tmp_path / "site.config").read_text() == SITE


@pytest.mark.parametrize(
    ("features", "transform", "code"),
    [
        pytest.param(Features(dotnet_config_transforms=True),
                     f"<site {XDT}><host xdt:Transform=\"Remove\"/></site>",
                     "config_transform_failed", id="a-locator-that-selects-nothing"),
        pytest.param(Features(additional_transforms=("/etc/x.config => site.config",)), "",
                     "sdi_invalid", id="a-transform-outside-the-package"),
    ],
)  # fmt: skip
def test_what_the_server_counts_as_an_error_fails_the_build(
    tmp_path: Path, features: Features, transform: str, code: str
) -> None:
    (tmp_path / "site.config").write_text(SITE)
    (tmp_path / "site.Release.config").write_text(transform)
    with pytest.raises(BuildError) as caught:
        run(tmp_path, features)
    assert caught.value.code == code
    assert (tmp_path / "site.config").read_text() == SITE
