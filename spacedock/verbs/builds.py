"""``spacedock builds``: Source Docker Image builds: start one (and wait for it), list, show,
follow the logs of, and cancel them.

Waiting and following end with the build: a build that failed or was cancelled ends the verb
with exit code 1, a ``--timeout`` that runs out first with 3, so a pipeline can trust them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spacedock.json_files import JsonFileError, read_json_file
from spacedock.verbs.client import path
from spacedock.verbs.command import Commands, Session, add_group, add_verb, pairs
from spacedock.verbs.following import follow
from spacedock.verbs.outcomes import UsageError, VerbFailed

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
PAGE = 500  # the most the API gives in one page
DEFAULT_LIMIT = 50


def register(commands: Commands) -> None:
    builds = add_group(commands, "builds", "Source Docker Image builds")
    _register_start(builds)
    listing = add_verb(builds, "list", _list, "a space's builds, newest first")
    listing.add_argument("space", help="the space id, e.g. spaces-1")
    listing.add_argument("--status", choices=STATUSES, help="only builds with this status")
    listing.add_argument(
        "--limit",
        type=_positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N builds (default {DEFAULT_LIMIT}); pages are followed until then",
    )
    show = add_verb(builds, "show", _show, "a build's status, timestamps, result and error")
    _build_arguments(show)
    logs = add_verb(builds, "logs", _logs, "a build's log lines")
    _build_arguments(logs)
    logs.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="print lines as they come until the build has finished; exit 1 when it failed "
        "or was cancelled",
    )
    _timeout_argument(logs, "with --follow")
    cancel = add_verb(builds, "cancel", _cancel, "cancel a queued or running build")
    _build_arguments(cancel)


def _register_start(builds: Commands) -> None:
    start = add_verb(builds, "start", _start, "request a build of an SDI for a deployment")
    start.add_argument("space", help="the space id, e.g. spaces-1")
    start.add_argument("sdi", help="<id>:<version> of the SDI package, e.g. mywebapp-sdi:1.2.0")
    start.add_argument("--deployment", required=True, help="the deployment, e.g. deployments-75")
    start.add_argument("--environment", required=True, help="the environment, e.g. Production")
    start.add_argument("--project", help="the deployment's project")
    start.add_argument("--release", help="the deployment's release")
    start.add_argument("--tenant", help="the deployment's tenant")
    start.add_argument("--repository", help="the image's repository (default: the SDI id)")
    start.add_argument("--tag", help="the image's tag (default: <sdi version>-<deployment>)")
    start.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a variable; repeatable"
    )
    start.add_argument(
        "--secrets-file",
        type=Path,
        metavar="FILE",
        help="sensitive variables, masked in logs: a JSON object of name to value (- reads "
        "standard input); kept off the command line, where ps and shell history would show them",
    )
    start.add_argument(
        "--package",
        action="append",
        default=[],
        metavar="ID=VERSION",
        help="a package version sdi.yaml asks for; repeatable",
    )
    start.add_argument(
        "--strategy",
        choices=["auto", "assembled", "docker"],
        default="auto",
        help="assembled needs no Docker engine; auto picks it when the Dockerfile allows",
    )
    start.add_argument(
        "--build-id", help="your id for the build: asking again with it returns that build"
    )
    start.add_argument(
        "--wait",
        action="store_true",
        help="follow the build (status changes and log lines on stderr) until it has "
        "finished; exit 1 when it failed or was cancelled",
    )
    _timeout_argument(start, "with --wait")


def _build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", help="the space id, e.g. spaces-1")
    parser.add_argument("build_id", help="the build's id")


def _timeout_argument(parser: argparse.ArgumentParser, when: str) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        metavar="SECONDS",
        help=f"{when}: give up waiting after this long, with exit code 3 (the build goes on)",
    )


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return seconds


def _start(session: Session, args: argparse.Namespace) -> Any:
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout is how long --wait waits: give --wait too")
    sdi_id, colon, sdi_version = args.sdi.rpartition(":")
    if not colon or not sdi_id or not sdi_version:
        raise UsageError("the SDI is <id>:<version>, e.g. mywebapp-sdi:1.2.0")
    deployment = {
        key: value
        for key, value in {
            "id": args.deployment,
            "environment": args.environment,
            "project": args.project,
            "release": args.release,
            "tenant": args.tenant,
        }.items()
        if value is not None
    }
    body: dict[str, Any] = {
        "sdi": {"id": sdi_id, "version": sdi_version},
        "deployment": deployment,
        "variables": pairs(args.var, "--var"),
        "sensitive_variables": read_secrets(args.secrets_file),
        "packages": pairs(args.package, "--package"),
        "strategy": args.strategy,
    }
    if args.build_id:
        body["build_id"] = args.build_id
    if args.repository or args.tag:
        body["image"] = {k: v for k, v in (("repository", args.repository), ("tag", args.tag)) if v}
    accepted = session.api.call("POST", path("spaces", args.space, "builds"), body)
    if not args.wait:
        return accepted
    build_id = str(accepted["build_id"])

    def status_line(status: str) -> None:
        print(f"build {build_id}: {status}", file=session.stderr, flush=True)

    def log_line(line: str) -> None:
        print(line, file=session.stderr, flush=True)

    where = path("spaces", args.space, "builds", build_id, "logs")
    status = follow(
        lambda: session.api.call("GET", where),
        args.space,
        build_id,
        on_status=status_line,
        on_line=log_line,
        timeout=args.timeout,
    )
    build = session.api.call("GET", path("spaces", args.space, "builds", build_id))
    if status != "succeeded":
        raise VerbFailed(f"build {build_id} {status}{_error_text(build)}", document=build)
    return build


def _error_text(build: Any) -> str:
    error = build.get("error") if isinstance(build, dict) else None
    if not isinstance(error, dict):
        return ""
    return f": {error.get('code', 'ERROR')}: {error.get('message', '')}"


def _list(session: Session, args: argparse.Namespace) -> Any:
    """Newest first, page after page, until ``--limit`` builds or the last page."""
    builds: list[Any] = []
    cursor: str | None = None
    while len(builds) < args.limit:
        query = {"limit": str(min(PAGE, args.limit - len(builds)))}
        if args.status:
            query["status"] = args.status
        if cursor:
            query["cursor"] = cursor
        page = session.api.call("GET", path("spaces", args.space, "builds"), query=query)
        builds += page["builds"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return {"builds": builds[: args.limit]}


def _show(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("spaces", args.space, "builds", args.build_id))


def _logs(session: Session, args: argparse.Namespace) -> Any:
    """The log lines as text on stdout; with ``--follow``, as they come."""
    if args.timeout is not None and not args.follow:
        raise UsageError("--timeout is how long --follow follows: give --follow too")
    where = path("spaces", args.space, "builds", args.build_id, "logs")
    if not args.follow:
        for line in session.api.call("GET", where)["logs"]:
            print(line, file=session.stdout)
        return None

    def status_line(status: str) -> None:
        print(f"build {args.build_id}: {status}", file=session.stderr, flush=True)

    def log_line(line: str) -> None:
        print(line, file=session.stdout, flush=True)

    status = follow(
        lambda: session.api.call("GET", where),
        args.space,
        args.build_id,
        on_status=status_line,
        on_line=log_line,
        timeout=args.timeout,
    )
    if status != "succeeded":
        raise VerbFailed(f"build {args.build_id} {status}")
    return None


def _cancel(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("DELETE", path("spaces", args.space, "builds", args.build_id))


# A secrets file is a few names and values: anything larger is not one.
MAX_SECRETS_FILE_BYTES = 1024 * 1024


def read_secrets(source: Path | None) -> dict[str, str]:
    """The sensitive variables in ``source`` (``-``: standard input), a JSON object of name to
    text value; none without a file."""
    if source is None:
        return {}
    try:
        document = read_json_file(source, MAX_SECRETS_FILE_BYTES)
    except JsonFileError as exc:
        raise UsageError(f"--secrets-file {source}{exc}") from exc
    if not isinstance(document, dict) or not all(
        isinstance(value, str) for value in document.values()
    ):
        raise UsageError(f"--secrets-file {source}: expected an object of name to text value")
    return document
