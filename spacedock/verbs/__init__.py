"""The ``spacedock`` verbs of the management API: one module per verb group, over one HTTP
client (``client``), the instance's settings and credentials (``instance``), and progress on
stderr (``progress``, ``following``).

A verb's answer is the API's JSON on stdout; messages, progress and build logs of ``--wait``
go to stderr; a failure is one line on stderr and an exit code from ``outcomes``.
"""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import Mapping
from typing import TextIO

from shared.settings import SettingsError
from spacedock.verbs import (
    builds,
    feed,
    keys,
    members,
    package,
    retention,
    spaces,
    tags,
    users,
)
from spacedock.verbs.client import Api, check_url
from spacedock.verbs.command import Commands, Session
from spacedock.verbs.instance import credentials, default_user, instance_settings
from spacedock.verbs.outcomes import ExitCode, VerbFailed

GROUPS = (spaces, members, users, keys, feed, package, builds, retention, tags)


def add_verbs(commands: Commands) -> None:
    """Register every verb group on the ``spacedock`` parser."""
    for group in GROUPS:
        group.register(commands)


def run(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    *,
    stdout: TextIO,
    stderr: TextIO,
    stdin_is_terminal: bool,
) -> int:
    """Run the verb ``args`` names; its exit code."""
    ask = getpass.getpass if stdin_is_terminal else None
    try:
        try:
            settings = instance_settings(environ)
        except SettingsError as exc:
            print(f"spacedock: {exc}", file=stderr)
            return ExitCode.USAGE
        url = args.url or settings.registry_url
        check_url(url)
        user = args.user or default_user(environ)
        signed_in = credentials(user, url, settings, environ, ask)
        session = Session(
            api=Api(url, signed_in.user, signed_in.secret),
            environ=environ,
            stdout=stdout,
            stderr=stderr,
            ask=ask,
            stderr_is_terminal=stderr.isatty(),
        )
        answer = args.run(session, args)
    except VerbFailed as exc:
        if exc.document is not None:
            print(json.dumps(exc.document, indent=2), file=stdout)
        print(f"spacedock: {exc.message}", file=stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=stderr)
        return ExitCode.INTERRUPTED
    except EOFError:  # the terminal closed (Ctrl-D) while a password was asked for
        print("\nspacedock: no password given", file=stderr)
        return ExitCode.USAGE
    if answer is not None:
        print(json.dumps(answer, indent=2), file=stdout)
    return ExitCode.OK
