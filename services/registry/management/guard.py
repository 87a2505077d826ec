"""Who may use which part of the management API.

A space the caller has no role in answers 404, exactly like a space that does not exist, so
the API never tells a stranger which spaces there are; a role too low for the operation
answers 403.

A bearer token holds what it was granted and nothing more. The management API's scopes, in
the Docker token form ``/auth/token`` grants by role: ``space:<id>:read`` (reader),
``space:<id>:write`` (writer), ``space:<id>:manage`` (admin), and ``registry:catalog:*`` for
the list of spaces. Accounts, API keys and the creation and deletion of spaces take a
password or an API key; a token there is refused (403).
"""

from __future__ import annotations

from aiohttp import web

from services.registry.identity.access import PASSWORD_CREDENTIAL, Principal
from services.registry.identity.roles import SPACE_ACTIONS, Role
from services.registry.keys import access_key, principal_key, spaces_key
from services.registry.management.errors import Forbidden, NotFound
from shared.metadata.spaces import SpaceRecord


def caller(request: web.Request) -> Principal:
    return request[principal_key]


async def space_with_role(request: web.Request, needed: Role) -> SpaceRecord:
    """The space in the path, when the caller holds at least ``needed`` in it."""
    space_id = request.match_info["space"]
    role = await request.app[access_key].role_in(caller(request), space_id)
    space = await request.app[spaces_key].find(space_id) if role is not None else None
    if space is None or role is None:
        raise NotFound(f"space {space_id} does not exist")
    if role < needed:
        raise Forbidden(f"this needs the {needed.label} role in {space_id}")
    # A scope covers the ones below it (manage covers write and read), as the roles do.
    actions = [action for role, action in SPACE_ACTIONS.items() if role >= needed]
    token = caller(request).token
    if token is None or not any(token.allows("space", space_id, a) for a in actions):
        require_scope(request, "space", space_id, SPACE_ACTIONS[needed])
    return space


def require_scope(request: web.Request, resource_type: str, name: str, action: str) -> None:
    """A bearer token must hold the scope: the role allowing it is not enough."""
    token = caller(request).token
    if token is not None and not token.allows(resource_type, name, action):
        scope = f"{resource_type}:{name}:{action}"
        raise Forbidden(
            f"the token does not grant {scope}; ask /auth/token for it, or use a password or "
            "an API key",
            detail={"scope": scope},
        )


def refuse_tokens(request: web.Request) -> None:
    if caller(request).token is not None:
        raise Forbidden("accounts and spaces are administered with a password or an API key")


def require_password(request: web.Request) -> None:
    """Credentials themselves (passwords, keys, accounts) change only with a password: a
    token or an API key that leaked must not be able to mint more credentials or lock the
    owner out."""
    principal = caller(request)
    if principal.token is not None or principal.credential != PASSWORD_CREDENTIAL:
        raise Forbidden("this needs the account's password (Basic), not a token or an API key")


async def require_superuser(request: web.Request) -> None:
    refuse_tokens(request)
    grants = await request.app[access_key].grants_of(caller(request))
    if grants is None or not grants.superuser:
        raise Forbidden("this needs a superuser")


async def require_self_or_superuser(request: web.Request, username: str) -> None:
    """For operations on an account: its owner or a superuser. Others are told nothing about
    whether the account exists."""
    refuse_tokens(request)
    principal = caller(request)
    if principal.username == username and principal.space is None:  # not a build's credential
        return
    grants = await request.app[access_key].grants_of(caller(request))
    if grants is None or not grants.superuser:
        raise NotFound(f"user {username} does not exist")
