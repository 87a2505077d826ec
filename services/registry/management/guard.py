"""Who may use which part of the management API.

A space the caller has no role in answers 404, exactly like a space that does not exist, so
the API never tells a stranger which spaces there are; a role too low for the operation
answers 403.
"""

from __future__ import annotations

from aiohttp import web

from services.registry.identity.access import PASSWORD_CREDENTIAL, Principal
from services.registry.identity.roles import Role
from services.registry.keys import access_key, metadata_key, principal_key
from services.registry.management.errors import Forbidden, NotFound
from shared.metadata.store import Document


def caller(request: web.Request) -> Principal:
    return request[principal_key]


async def space_with_role(request: web.Request, needed: Role) -> Document:
    """The space in the path, when the caller holds at least ``needed`` in it."""
    space_id = request.match_info["space"]
    role = await request.app[access_key].role_in(caller(request), space_id)
    space = await request.app[metadata_key].get_space(space_id) if role is not None else None
    if space is None or role is None:
        raise NotFound(f"space {space_id} does not exist")
    if role < needed:
        raise Forbidden(f"this needs the {needed.label} role in {space_id}")
    return space


def require_password(request: web.Request) -> None:
    """Credentials themselves (passwords, keys, accounts) change only with a password: a
    token or an API key that leaked must not be able to mint more credentials or lock the
    owner out."""
    principal = caller(request)
    if principal.token is not None or principal.credential != PASSWORD_CREDENTIAL:
        raise Forbidden("this needs the account's password (Basic), not a token or an API key")


async def require_superuser(request: web.Request) -> None:
    grants = await request.app[access_key].grants_of(caller(request))
    if grants is None or not grants.superuser:
        raise Forbidden("this needs a superuser")


async def require_self_or_superuser(request: web.Request, username: str) -> None:
    """For operations on an account: its owner or a superuser. Others are told nothing about
    whether the account exists."""
    principal = caller(request)
    if principal.username == username and principal.space is None:  # not a build's credential
        return
    grants = await request.app[access_key].grants_of(caller(request))
    if grants is None or not grants.superuser:
        raise NotFound(f"user {username} does not exist")
