"""``/api/v1/users``: accounts and their API keys.

Superusers manage accounts; everyone manages their own password and keys. A key is shown
once, when it is created; only the SHA-256 of its secret is kept.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from services.registry.accounts import checked_password
from services.registry.keys import accounts_key
from services.registry.management.errors import Invalid
from services.registry.management.guard import (
    caller,
    require_password,
    require_self_or_superuser,
    require_superuser,
)
from services.registry.management.requests import json_object
from shared.metadata.connection import Document

USERNAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62})")
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
    users = await request.app[accounts_key].users()
    return web.json_response({"users": [user_json(doc) for doc in users]})


async def create_user(request: web.Request) -> web.Response:
    await require_superuser(request)
    require_password(request)
    body = await json_object(request, {"username", "password", "superuser"})
    username = _username(body.get("username"))
    password = checked_password(body.get("password"))
    superuser = body.get("superuser", False)
    if not isinstance(superuser, bool):
        raise Invalid("superuser must be true or false")
    doc = await request.app[accounts_key].create_user(username, password, superuser=superuser)
    return web.json_response(
        user_json(doc), status=201, headers={"Location": f"/api/v1/users/{username}"}
    )


async def get_user(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    account = await request.app[accounts_key].account(username)
    return web.json_response(user_json(account.user, account.memberships))


async def update_user(request: web.Request) -> web.Response:
    """Change the password; every token and session of the old one ends with it."""
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    body = await json_object(request, {"password"})
    if "password" not in body:
        raise Invalid("nothing to change: give password")
    doc = await request.app[accounts_key].change_password(username, body["password"])
    return web.json_response(user_json(doc))


async def delete_user(request: web.Request) -> web.Response:
    await require_superuser(request)
    require_password(request)
    username = request.match_info["username"]
    await request.app[accounts_key].delete_user(username, by=caller(request).username)
    return web.Response(status=204)


# API keys -------------------------------------------------------------------------------------


async def list_api_keys(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    keys = await request.app[accounts_key].api_keys(username)
    return web.json_response({"api_keys": [key_json(doc) for doc in keys]})


async def create_api_key(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    body = await json_object(request, {"name"})
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME:
        raise Invalid(f"name must be a string of at most {MAX_KEY_NAME} characters")
    key = await request.app[accounts_key].create_api_key(username, name)
    return web.json_response(
        {**key_json(key.record), "key": key.text},
        status=201,
        headers={"Location": f"/api/v1/users/{username}/api-keys/{key.record['_id']}"},
    )


async def delete_api_key(request: web.Request) -> web.Response:
    """Revoke a key: it stops working at once here and within the cache TTL elsewhere."""
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    await request.app[accounts_key].revoke_api_key(username, request.match_info["key_id"])
    return web.Response(status=204)


def _username(value: Any) -> str:
    if not isinstance(value, str) or USERNAME_RE.fullmatch(value) is None:
        raise Invalid(
            "username must be 1 to 63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value
