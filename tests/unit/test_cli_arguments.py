"""The ``spacedock`` command line as parsed: every management verb and option explains
itself, the verbs the issue asks for exist with their options, and wrong arguments are
refused with exit code 2 before anything is asked of a server."""

from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from spacedock.cli import build_parser, main
from spacedock.verbs import GROUPS
from spacedock.verbs.outcomes import ExitCode

MANAGEMENT_GROUPS = (
    "spaces",
    "members",
    "users",
    "keys",
    "feed",
    "package",
    "builds",
    "retention",
    "tags",
)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def verb_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    groups = subcommands(build_parser())
    return [
        (f"{group} {verb}", parser)
        for group in MANAGEMENT_GROUPS
        for verb, parser in subcommands(groups[group]).items()
    ]


def test_every_group_module_is_registered() -> None:
    assert len(GROUPS) == len(MANAGEMENT_GROUPS)
    assert set(MANAGEMENT_GROUPS) <= set(subcommands(build_parser()))


@pytest.mark.parametrize(("name", "parser"), verb_parsers(), ids=lambda value: str(value))
def test_every_verb_and_option_has_help(name: str, parser: argparse.ArgumentParser) -> None:
    assert parser.description, f"{name} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name}: {action.dest} has no help"


@pytest.mark.parametrize(
    "argv",
    [
        ["retention", "show", "spaces-1"],
        ["retention", "set", "spaces-1", "--pattern", "^x$", "--keep-last", "3",
         "--retain-days", "7", "--untagged-hours", "12", "--grace-minutes", "30"],
        ["retention", "run", "spaces-1", "--dry-run"],
        ["tags", "pin", "spaces-1", "team/app", "1.0-deployments-3"],
        ["tags", "unpin", "spaces-1", "team/app", "1.0-deployments-3"],
        ["package", "versions", "spaces-1", "mywebapp"],
        ["package", "download", "spaces-1", "mywebapp", "1.2.0", "-o", "app.zip"],
        ["builds", "list", "spaces-1", "--status", "failed", "--limit", "7"],
        ["builds", "logs", "spaces-1", "build-1", "--follow", "--timeout", "30"],
        ["builds", "start", "spaces-1", "app-sdi:1.0.0", "--deployment", "deployments-1",
         "--environment", "Dev", "--wait", "--timeout", "600"],
    ],
)  # fmt: skip
def test_the_verbs_of_the_management_api_parse(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert callable(args.run)


def test_options_keep_their_types() -> None:
    args = build_parser().parse_args(
        ["retention", "set", "spaces-1", "--keep-last", "3", "--grace-minutes", "0"]
    )
    assert (args.keep_last, args.grace_minutes, args.retain_days) == (3, 0, None)
    listing = build_parser().parse_args(["builds", "list", "spaces-1"])
    assert (listing.limit, listing.status) == (50, None)
    waiting = build_parser().parse_args(
        ["builds", "start", "s", "a:1", "--deployment", "d", "--environment", "e", "--wait",
         "--timeout", "2.5"]
    )  # fmt: skip
    assert waiting.timeout == 2.5


@pytest.mark.parametrize(
    "argv",
    [
        ["retention", "set", "spaces-1", "--keep-last", "-1"],
        ["retention", "set", "spaces-1", "--retain-days", "ten"],
        ["builds", "list", "spaces-1", "--limit", "0"],
        ["builds", "list", "spaces-1", "--status", "exploded"],
        ["builds", "logs", "spaces-1", "build-1", "--follow", "--timeout", "0"],
        ["builds", "logs", "spaces-1", "build-1", "--follow", "--timeout", "inf"],
        ["tags", "pin", "spaces-1", "app"],
        ["builds", "start", "spaces-1", "app-sdi:1.0.0"],  # --deployment is required
        ["retention", "purge", "spaces-1"],
    ],
)
def test_wrong_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == ExitCode.USAGE
    assert "usage:" in capsys.readouterr().err


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"spacedock {metadata.version('spacedock')}"


def test_help_lists_exit_codes_and_every_variable_read(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for code in ExitCode:
        assert f"\n  {code.value} " in text, code
    for variable in (
        "SPACEDOCK_USERNAME",
        "SPACEDOCK_PASSWORD",
        "SPACEDOCK_NEW_PASSWORD",
        "SPACEDOCK_REGISTRY_URL",
        "SPACEDOCK_PUBLIC_URL",
        "SPACEDOCK_LISTEN",
        "SPACEDOCK_DATA_DIR",
        "SPACEDOCK_ADMIN_PASSWORD",
    ):
        assert variable in text, variable
