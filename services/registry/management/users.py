"""``/api/v1/users``: accounts and their API keys.

Superusers manage accounts; everyone manages their own password and keys. A key is shown
once, when it is created; only the SHA-256 of its secret is kept.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from services.registry.bootstrap import ADMIN
from services.registry.identity import api_keys
from services.registry.identity.passwords import MAX_LENGTH, MIN_LENGTH, hash_password
from services.registry.keys import access_key, metadata_key
from services.registry.management.errors import Conflict, Invalid, NotFound
from services.registry.management.guard import (
    caller,
    require_password,
    require_self_or_superuser,
    require_superuser,
)
from services.registry.management.requests import json_object
from shared.metadata.store import Document

USERNAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62})")
MAX_KEYS_PER_USER = 100
MAX_KEY_NAME = 100


def user_json(doc: Document, memberships: dict[str, str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "username": doc["_id"],
        "superuser": bool(doc.get("superuser", False)),
        "service": doc.get("service"),
        "global_role": doc.get("global_role"),
        "created_at": doc["created_at"].isoformat(),
    }
    if memberships is not None:
        body["memberships"] = [
            {"space": space, "role": role} for space, role in sorted(memberships.items())
        ]
    return body


def key_json(doc: Document) -> dict[str, Any]:
    return {"id": doc["_id"], "name": doc["name"], "created_at": doc["created_at"].isoformat()}


async def list_users(request: web.Request) -> web.Response:
    await require_superuser(request)
    users = await request.app[metadata_key].accounts.list_users()
    return web.json_response({"users": [user_json(doc) for doc in users]})


async def create_user(request: web.Request) -> web.Response:
    await require_superuser(request)
    require_password(request)
    body = await json_object(request, {"username", "password", "superuser"})
    username = _username(body.get("username"))
    password = _password(body.get("password"))
    superuser = body.get("superuser", False)
    if not isinstance(superuser, bool):
        raise Invalid("superuser must be true or false")
    password_hash = await asyncio.to_thread(hash_password, password)
    accounts = request.app[metadata_key].accounts
    if not await accounts.create_user(username, password_hash, superuser=superuser):
        raise Conflict(f"user {username} already exists")
    doc = await _existing(request, username)
    return web.json_response(
        user_json(doc), status=201, headers={"Location": f"/api/v1/users/{username}"}
    )


async def get_user(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    account = await request.app[metadata_key].accounts.get_account(username)
    if account is None:
        raise NotFound(f"user {username} does not exist")
    return web.json_response(user_json(account.user, account.memberships))


async def update_user(request: web.Request) -> web.Response:
    """Change the password; every token and session of the old one ends with it."""
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    body = await json_object(request, {"password"})
    if "password" not in body:
        raise Invalid("nothing to change: give password")
    if (await _existing(request, username)).get("service"):
        raise Conflict(f"{username} is a service account: it signs in with API keys only")
    password_hash = await asyncio.to_thread(hash_password, _password(body["password"]))
    if not await request.app[metadata_key].accounts.set_password(username, password_hash):
        raise NotFound(f"user {username} does not exist")
    request.app[access_key].forget(username)
    return web.json_response(user_json(await _existing(request, username)))


async def delete_user(request: web.Request) -> web.Response:
    await require_superuser(request)
    require_password(request)
    username = request.match_info["username"]
    doc = await _existing(request, username)
    if username == caller(request).username:
        raise Conflict("you cannot delete your own account")
    if doc.get("service"):
        raise Conflict(f"{username} is a service account")
    if username == ADMIN:
        raise Conflict(f"{ADMIN} is the built-in superuser; it cannot be deleted")
    await request.app[metadata_key].accounts.delete_user(username)
    request.app[access_key].forget(username)
    return web.Response(status=204)


# API keys -------------------------------------------------------------------------------------


async def list_api_keys(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    await _existing(request, username)
    keys = await request.app[metadata_key].accounts.list_api_keys(username)
    return web.json_response({"api_keys": [key_json(doc) for doc in keys]})


async def create_api_key(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    body = await json_object(request, {"name"})
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME:
        raise Invalid(f"name must be a string of at most {MAX_KEY_NAME} characters")
    await _existing(request, username)
    accounts = request.app[metadata_key].accounts
    if await accounts.count_api_keys(username) >= MAX_KEYS_PER_USER:
        raise Conflict(f"a user has at most {MAX_KEYS_PER_USER} API keys; delete one first")
    key = api_keys.new_key()
    doc = await accounts.create_api_key(key.id, username, name, key.secret_hash)
    request.app[access_key].forget(username)
    return web.json_response(
        {**key_json(doc), "key": key.text},
        status=201,
        headers={"Location": f"/api/v1/users/{username}/api-keys/{key.id}"},
    )


async def delete_api_key(request: web.Request) -> web.Response:
    """Revoke a key: it stops working at once here and within the cache TTL elsewhere."""
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    key_id = request.match_info["key_id"]
    if (await _existing(request, username)).get("service"):
        # Its key is the service's configuration (SPACEDOCK_BUILDER_KEY, ...): revoked here,
        # builds or retention would stop until a restart brought it back.
        raise Conflict(
            f"{username} is a service account: its key comes from its service's settings; "
            "rotate it there (the registry registers the new one at start)"
        )
    if not await request.app[metadata_key].accounts.delete_api_key(username, key_id):
        raise NotFound(f"API key {key_id[:40]} does not exist")
    request.app[access_key].forget(username)
    return web.Response(status=204)


async def _existing(request: web.Request, username: str) -> Document:
    doc = await request.app[metadata_key].accounts.get_user(username)
    if doc is None:
        raise NotFound(f"user {username} does not exist")
    return doc


def _username(value: Any) -> str:
    if not isinstance(value, str) or USERNAME_RE.fullmatch(value) is None:
        raise Invalid(
            "username must be 1 to 63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _password(value: Any) -> str:
    if not isinstance(value, str) or not MIN_LENGTH <= len(value) <= MAX_LENGTH:
        raise Invalid(f"password must be a string of {MIN_LENGTH} to {MAX_LENGTH} characters")
    return value
