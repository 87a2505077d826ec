"""``spacedock tags``: pinned tags, which retention never removes."""

from __future__ import annotations

import argparse
from typing import Any

from spacedock.verbs.client import path, repository_segments
from spacedock.verbs.command import Commands, Session, add_group, add_verb


def register(commands: Commands) -> None:
    tags = add_group(commands, "tags", "pin tags so that retention keeps them")
    pin = add_verb(tags, "pin", _pin, "pin a tag: retention never removes it (writers)")
    unpin = add_verb(tags, "unpin", _unpin, "unpin a tag: retention may remove it (admins)")
    for parser in (pin, unpin):
        parser.add_argument("space", help="the space id, e.g. spaces-1")
        parser.add_argument("repository", help="the name inside the space, e.g. mywebapp")
        parser.add_argument("tag", help="e.g. 1.2.0-deployments-75")


def _pin_path(args: argparse.Namespace) -> str:
    return path(
        "spaces",
        args.space,
        "repositories",
        *repository_segments(args.repository),
        "tags",
        args.tag,
        "pin",
    )


def _pin(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("PUT", _pin_path(args))


def _unpin(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("DELETE", _pin_path(args))
