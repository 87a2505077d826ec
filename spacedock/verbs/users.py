"""``spacedock users``: accounts. A new password comes from ``SPACEDOCK_NEW_PASSWORD`` or is
typed twice on the terminal, never from an argument (which ``ps`` and shell history keep)."""

from __future__ import annotations

import argparse
from typing import Any

from spacedock.verbs.client import path
from spacedock.verbs.command import Commands, Session, add_group, add_verb
from spacedock.verbs.instance import new_password


def register(commands: Commands) -> None:
    users = add_group(commands, "users", "accounts")
    add_verb(users, "list", _list, "every account (superusers)")
    create = add_verb(
        users, "create", _create, "create a user; the password from SPACEDOCK_NEW_PASSWORD"
    )
    create.add_argument("username", help="the new user's name")
    create.add_argument("--superuser", action="store_true", help="may do anything anywhere")
    show = add_verb(users, "show", _show, "an account and its roles (yourself, or superusers)")
    show.add_argument("username", help="the user")
    passwd = add_verb(
        users, "passwd", _passwd, "change a password; the new one from SPACEDOCK_NEW_PASSWORD"
    )
    passwd.add_argument("username", help="the user")
    delete = add_verb(users, "delete", _delete, "delete a user and its API keys (superusers)")
    delete.add_argument("username", help="the user")


def _list(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("users"))


def _create(session: Session, args: argparse.Namespace) -> Any:
    body = {
        "username": args.username,
        "password": new_password(args.username, session.environ, session.ask),
        "superuser": args.superuser,
    }
    return session.api.call("POST", path("users"), body)


def _show(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("users", args.username))


def _passwd(session: Session, args: argparse.Namespace) -> Any:
    password = new_password(args.username, session.environ, session.ask)
    return session.api.call("PATCH", path("users", args.username), {"password": password})


def _delete(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("DELETE", path("users", args.username))
