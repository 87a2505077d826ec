"""``spacedock spaces``: list, create, show, change and delete spaces."""

from __future__ import annotations

import argparse
from typing import Any

from spacedock.verbs.client import path
from spacedock.verbs.command import Commands, Session, add_group, add_verb


def register(commands: Commands) -> None:
    spaces = add_group(commands, "spaces", "list, create, show, change and delete spaces")
    add_verb(spaces, "list", _list, "the spaces you have a role in")
    create = add_verb(spaces, "create", _create, "create a space (superusers)")
    create.add_argument("name", help="the display name, e.g. 'Team C'")
    create.add_argument("--id", help="e.g. spaces-7; the next free spaces-N when absent")
    create.add_argument(
        "--anonymous-pull", action="store_true", help="anyone may pull without signing in"
    )
    show = add_verb(spaces, "show", _show, "a space's settings")
    show.add_argument("space", help="the space id, e.g. spaces-1")
    update = add_verb(spaces, "update", _update, "rename a space or change anonymous pull")
    update.add_argument("space", help="the space id, e.g. spaces-1")
    update.add_argument("--name", help="the new display name")
    update.add_argument(
        "--anonymous-pull", choices=["true", "false"], help="whether anyone may pull"
    )
    delete = add_verb(spaces, "delete", _delete, "delete an empty space (superusers)")
    delete.add_argument("space", help="the space id; spaces-1 cannot be deleted")


def _list(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("spaces"))


def _create(session: Session, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name, "anonymous_pull": args.anonymous_pull}
    if args.id:
        body["id"] = args.id
    return session.api.call("POST", path("spaces"), body)


def _show(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("spaces", args.space))


def _update(session: Session, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.anonymous_pull is not None:
        body["anonymous_pull"] = args.anonymous_pull == "true"
    return session.api.call("PATCH", path("spaces", args.space), body)


def _delete(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("DELETE", path("spaces", args.space))
