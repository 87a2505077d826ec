"""``spacedock members``: who has which role in a space."""

from __future__ import annotations

import argparse
from typing import Any

from spacedock.verbs.client import path
from spacedock.verbs.command import Commands, Session, add_group, add_verb

ROLES = ("reader", "writer", "admin")


def register(commands: Commands) -> None:
    members = add_group(commands, "members", "roles in a space (space admins)")
    listing = add_verb(members, "list", _list, "the space's members and their roles")
    listing.add_argument("space", help="the space id, e.g. spaces-1")
    member_set = add_verb(members, "set", _set, "give a user a role in the space")
    member_set.add_argument("space", help="the space id, e.g. spaces-1")
    member_set.add_argument("username", help="the user")
    member_set.add_argument(
        "role", choices=ROLES, help="reader pulls; writer also pushes and builds; admin manages"
    )
    remove = add_verb(members, "remove", _remove, "take a user's role in the space away")
    remove.add_argument("space", help="the space id, e.g. spaces-1")
    remove.add_argument("username", help="the user")


def _list(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("spaces", args.space, "members"))


def _set(session: Session, args: argparse.Namespace) -> Any:
    where = path("spaces", args.space, "members", args.username)
    return session.api.call("PUT", where, {"role": args.role})


def _remove(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("DELETE", path("spaces", args.space, "members", args.username))
