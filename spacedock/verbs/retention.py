"""``spacedock retention``: a space's retention policy (PRODUCT.md §9), and running it now.

``set`` changes only the fields given: the API's PUT resets every missing field to its
default, so the current policy is read first and the options laid over it.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from spacedock.verbs.client import path
from spacedock.verbs.command import Commands, Session, add_group, add_verb
from spacedock.verbs.outcomes import UsageError
from spacedock.verbs.progress import human_bytes

# option → (section, field) of the policy document
POLICY_FIELDS = {
    "pattern": ("deployment_tags", "pattern"),
    "keep_last": ("deployment_tags", "keep_last"),
    "retain_days": ("deployment_tags", "retain_days"),
    "untagged_hours": ("untagged_manifests", "retain_hours"),
    "grace_minutes": ("gc", "grace_minutes"),
}


def register(commands: Commands) -> None:
    retention = add_group(commands, "retention", "what the reaper removes from a space")
    show = add_verb(retention, "show", _show, "the space's policy (defaults when none was set)")
    show.add_argument("space", help="the space id, e.g. spaces-1")
    change = add_verb(
        retention, "set", _set, "change the policy's given fields; the others stay as they are"
    )
    change.add_argument("space", help="the space id, e.g. spaces-1")
    change.add_argument(
        "--pattern",
        metavar="REGEX",
        help=r"which tags are deployment tags (default ^.+-deployments-\d+$)",
    )
    change.add_argument(
        "--keep-last",
        type=_count,
        metavar="N",
        help="keep the newest N deployment tags of each repository, however old",
    )
    change.add_argument(
        "--retain-days",
        type=_count,
        metavar="DAYS",
        help="remove deployment tags older than this (beyond the newest --keep-last)",
    )
    change.add_argument(
        "--untagged-hours",
        type=_count,
        metavar="HOURS",
        help="remove manifests no tag points at once they are this old",
    )
    change.add_argument(
        "--grace-minutes",
        type=_count,
        metavar="MINUTES",
        help="collect a blob only after it has been unreferenced this long",
    )
    run = add_verb(
        retention,
        "run",
        _run,
        "apply the policy now; the report on stdout, a summary on stderr",
    )
    run.add_argument("space", help="the space id, e.g. spaces-1")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="remove nothing: say which tags and manifests would go and the bytes freed",
    )


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 0")
    return int(text)


def _show(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("spaces", args.space, "retention"))


def _set(session: Session, args: argparse.Namespace) -> Any:
    given = {option: getattr(args, option) for option in POLICY_FIELDS}
    given = {option: value for option, value in given.items() if value is not None}
    if not given:
        options = ", ".join("--" + option.replace("_", "-") for option in POLICY_FIELDS)
        raise UsageError(f"nothing to set: give one or more of {options}")
    where = path("spaces", args.space, "retention")
    current = session.api.call("GET", where)
    policy = {section: dict(current[section]) for section, _ in POLICY_FIELDS.values()}
    for option, value in given.items():
        section, name = POLICY_FIELDS[option]
        policy[section][name] = value
    return session.api.call("PUT", where, policy)


def _run(session: Session, args: argparse.Namespace) -> Any:
    query = {"dry_run": "true"} if args.dry_run else {}
    report = session.api.call("POST", path("spaces", args.space, "retention", "run"), query=query)
    write_summary(report, session.stderr)
    return report


def write_summary(report: dict[str, Any], out: TextIO) -> None:
    """What went (or, in a dry run, would go), for a person: the tags one a line, then the
    totals with the bytes freed."""
    dry_run = bool(report.get("dry_run"))
    verb = "would remove" if dry_run else "removed"
    for tag in report.get("removed", []):
        print(f"{verb} {tag['repository']}:{tag['tag']}", file=out)
    tags = len(report.get("removed", []))
    manifests = report.get("manifests_removed", 0)
    blobs = report.get("blobs_removed", 0)
    freed = human_bytes(report.get("bytes_freed", 0))
    freeing = "freeing" if dry_run else "freed"
    print(
        f"{verb} {tags} tags, {manifests} manifests and {blobs} blobs; {freeing} {freed}",
        file=out,
    )
