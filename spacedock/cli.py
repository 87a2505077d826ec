"""The ``spacedock`` command: ``serve`` (all three services in one process), or one service
(``spacedock/serve.py``); the management verbs (``spacedock/verbs``), and ``sdi preview`` for
SDI authors.

The services' modules are imported only when a service is started: loading them takes
seconds, which every management verb would otherwise pay before its first request.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata

from shared.settings import SERVICE_VARIABLES, Settings, SettingsError
from spacedock import sdi_preview, verbs
from spacedock.verbs.instance import ENVIRONMENT_HELP
from spacedock.verbs.outcomes import EXIT_CODES_HELP

SERVICES = ("serve", "registry", "builder", "reaper")
DISTRIBUTION = "spacedock"
DESCRIPTION = """\
Spacedock: run the services (serve runs all three in one process, as `make run` does), manage
a registry through its API (spaces, users, keys, members, feed, package, builds, retention,
tags), or preview an SDI locally (sdi). `spacedock COMMAND --help` tells more."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spacedock",
        description=DESCRIPTION,
        epilog=f"{EXIT_CODES_HELP}\n\n{ENVIRONMENT_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="show the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run registry, builder and reaper in one process")
    commands.add_parser("registry", help="run the registry (OCI and management API)")
    commands.add_parser("builder", help="run the builder")
    commands.add_parser("reaper", help="run the reaper")
    verbs.add_verbs(commands)
    sdi_preview.add_verbs(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in SERVICES and args.command != "sdi":
        return verbs.run(
            args,
            os.environ,
            stdout=sys.stdout,
            stderr=sys.stderr,
            stdin_is_terminal=sys.stdin is not None and sys.stdin.isatty(),
        )
    try:
        # A service run alone reads its own variables; serve and sdi preview read them all.
        service = args.command if args.command in SERVICE_VARIABLES else None
        settings = Settings.from_env(service=service)
    except SettingsError as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 2
    if args.command == "sdi":
        return sdi_preview.run(args, settings)
    from spacedock import serve  # the services' modules take seconds to load: only now

    return serve.run(args.command, settings)


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
