"""What every verb is given and how verbs are declared, so each verb group's module only
says its verbs, their arguments and what they do."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO, TypeAlias

from spacedock.verbs.client import Api
from spacedock.verbs.outcomes import UsageError

# A string: argparse's action is generic only in its stubs.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

VERB_EPILOG = "exit codes and environment variables: spacedock --help"


@dataclass(frozen=True, slots=True)
class Session:
    """One verb's run: the API signed in, the environment it was started with, where its
    answer (stdout) and progress (stderr) go, and a terminal to ask on, if there is one."""

    api: Api
    environ: Mapping[str, str]
    stdout: TextIO
    stderr: TextIO
    ask: Callable[[str], str] | None
    stderr_is_terminal: bool


# A verb returns its answer (printed as JSON), or None when it printed what it had to.
Verb = Callable[[Session, argparse.Namespace], Any]


def add_group(commands: Commands, name: str, help_text: str) -> Commands:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest="verb", required=True, metavar="VERB")


def add_verb(group: Commands, name: str, run: Verb, help_text: str) -> argparse.ArgumentParser:
    """A verb of the management API, with the options every such verb takes."""
    parser = group.add_parser(name, help=help_text, description=help_text, epilog=VERB_EPILOG)
    parser.add_argument(
        "--url",
        help="the registry, e.g. https://registry.example.com (default: SPACEDOCK_REGISTRY_URL, "
        "else this machine's instance from SPACEDOCK_PUBLIC_URL or SPACEDOCK_LISTEN)",
    )
    parser.add_argument(
        "--user", help="sign in as this user (default: SPACEDOCK_USERNAME, else admin)"
    )
    parser.set_defaults(run=run)
    return parser


def pairs(items: list[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` options as a mapping; the value may hold ``=``."""
    found = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise UsageError(f"{option} {item!r}: expected NAME=VALUE")
        found[name] = value
    return found
