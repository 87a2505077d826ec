"""``spacedock keys``: API keys, for pipelines and tools that should not hold a password."""

from __future__ import annotations

import argparse
from typing import Any

from spacedock.verbs.client import path
from spacedock.verbs.command import Commands, Session, add_group, add_verb


def register(commands: Commands) -> None:
    keys = add_group(commands, "keys", "API keys (a new key is shown once)")
    listing = add_verb(keys, "list", _list, "a user's API keys, without their secrets")
    listing.add_argument("username", help="the user")
    create = add_verb(keys, "create", _create, "create an API key; its secret is shown once")
    create.add_argument("username", help="the user the key signs in as")
    create.add_argument("--name", default="", help="what the key is for, e.g. ci")
    revoke = add_verb(keys, "revoke", _revoke, "revoke an API key")
    revoke.add_argument("username", help="the user")
    revoke.add_argument("key_id", help="the key's id, from keys list")


def _list(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("GET", path("users", args.username, "api-keys"))


def _create(session: Session, args: argparse.Namespace) -> Any:
    where = path("users", args.username, "api-keys")
    return session.api.call("POST", where, {"name": args.name})


def _revoke(session: Session, args: argparse.Namespace) -> Any:
    return session.api.call("DELETE", path("users", args.username, "api-keys", args.key_id))
