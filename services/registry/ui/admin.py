"""Administration pages: accounts and their API keys (``/users``), and who holds which role
in a space (``/spaces/{space}/members``).

The checks are the management API's own (``services.registry.management.{users,members}``):
superusers manage accounts, everyone their own keys, space admins their members, and
credentials change only in a session opened with the account's password
(``require_password``), so a leaked API key cannot mint more keys through the browser either.

A new API key is shown once: in the answer to the form that created it (never stored, never
in a URL, never cached). The form carries a one-time field, noted in the session's document
when it is sent, so a form sent again (a reload, a second tab) creates no second key, on
whichever instance it lands.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.registry.accounts import checked_password
from services.registry.bootstrap import ADMIN
from services.registry.identity.access import PASSWORD_CREDENTIAL
from services.registry.identity.roles import Role
from services.registry.keys import access_key, accounts_key
from services.registry.management.errors import ApiError, Invalid
from services.registry.management.guard import (
    caller,
    require_password,
    require_self_or_superuser,
    require_superuser,
    space_with_role,
)
from services.registry.management.users import MAX_KEY_NAME, USERNAME_RE
from services.registry.ui.middleware import see_other, sessions_key
from services.registry.ui.render import page, signed_in_key
from services.registry.ui.security import new_secret, text_field
from shared.metadata.spaces import SpaceRecord

USERS_PATH = "/users"
MAX_USERNAME_LENGTH = 63
MAX_PASSWORD_LENGTH = 1024
ROLES = [role.label for role in Role]
MAX_FORM_NONCE_LENGTH = 100


@dataclass(frozen=True, slots=True)
class NewKey:
    name: str
    text: str


def user_path(username: str) -> str:
    """A user's page: usernames are lowercase letters, digits, '.', '_' and '-'
    (``USERNAME_RE``), so the path needs no escaping."""
    return f"{USERS_PATH}/{username}"


def with_password(request: web.Request) -> bool:
    """Whether this session may change credentials (opened with a password, not a key)."""
    return caller(request).credential == PASSWORD_CREDENTIAL


# users ----------------------------------------------------------------------------------------


async def users_page(request: web.Request) -> web.Response:
    await require_superuser(request)
    return await _users(request, error=None, username="", status=200)


async def create_user(request: web.Request) -> web.Response:
    await require_superuser(request)
    require_password(request)
    form = await request.post()
    username = text_field(form, "username", MAX_USERNAME_LENGTH)
    try:
        if USERNAME_RE.fullmatch(username) is None:
            raise Invalid(
                "the username must be 1 to 63 lowercase letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        password = checked_password(text_field(form, "password", MAX_PASSWORD_LENGTH))
        await request.app[accounts_key].create_user(
            username, password, superuser=form.get("superuser") == "on"
        )
    except ApiError as exc:
        return await _users(request, error=exc.message, username=username, status=exc.status)
    return see_other(user_path(username))


async def delete_user(request: web.Request) -> web.Response:
    await require_superuser(request)
    require_password(request)
    await request.app[accounts_key].delete_user(
        request.match_info["username"], by=caller(request).username
    )
    return see_other(USERS_PATH)


async def _users(
    request: web.Request, *, error: str | None, username: str, status: int
) -> web.Response:
    users = await request.app[accounts_key].users()
    return page(
        request,
        "users.html",
        status=status,
        users=users,
        error=error,
        entered_username=username,
        can_change=with_password(request),
        protected={ADMIN, caller(request).username},
    )


# one user and its API keys --------------------------------------------------------------------


async def user_page(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    return await _user(request, username)


async def create_api_key(request: web.Request) -> web.Response:
    """The new key is in this answer and nowhere else; a form sent twice makes one key."""
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    form = await request.post()
    name = text_field(form, "name", MAX_KEY_NAME + 1)
    if len(name) > MAX_KEY_NAME:
        message = f"the name must be at most {MAX_KEY_NAME} characters"
        return await _user(request, username, error=message, status=422)
    nonce = text_field(form, "form_nonce", MAX_FORM_NONCE_LENGTH + 1)
    if not nonce or len(nonce) > MAX_FORM_NONCE_LENGTH:
        return await _user(request, username, error="The form is out of date.", status=400)
    if not await request.app[sessions_key].first_use_of_form(request[signed_in_key], nonce):
        message = (
            "This form was sent already, and its key shown then, once. If it was not "
            "copied, revoke it and create another."
        )
        return await _user(request, username, error=message, status=409)
    try:
        created = await request.app[accounts_key].create_api_key(username, name)
    except ApiError as exc:
        return await _user(request, username, error=exc.message, status=exc.status)
    return await _user(request, username, new_key=NewKey(name, created.text), status=201)


async def revoke_api_key(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    await require_self_or_superuser(request, username)
    require_password(request)
    key_id = text_field(await request.post(), "key_id", 200)
    try:
        await request.app[accounts_key].revoke_api_key(username, key_id)
    except ApiError as exc:
        return await _user(request, username, error=exc.message, status=exc.status)
    return see_other(user_path(username))


async def _user(
    request: web.Request,
    username: str,
    *,
    new_key: NewKey | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    accounts = request.app[accounts_key]
    account = await accounts.account(username)
    grants = await request.app[access_key].grants_of(caller(request))
    return page(
        request,
        "user.html",
        status=status,
        user=account.user,
        memberships=sorted(account.memberships.items()),
        keys=await accounts.api_keys(username),
        new_key=new_key,
        form_nonce=new_secret(),
        error=error,
        can_change=with_password(request),
        superuser=grants is not None and grants.superuser,
    )


# members of a space ---------------------------------------------------------------------------


async def members_page(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    return await _members(request, space, error=None, status=200)


async def set_member(request: web.Request) -> web.Response:
    """Give a user a role in the space (a new member, or a changed role)."""
    space = await space_with_role(request, Role.ADMIN)
    form = await request.post()
    username = text_field(form, "username", MAX_USERNAME_LENGTH).strip()
    role = Role.parse(text_field(form, "role", 20))
    try:
        if role is None:
            raise Invalid("role must be reader, writer or admin")
        await request.app[accounts_key].set_member(space.id, username, role)
    except ApiError as exc:
        return await _members(request, space, error=exc.message, status=exc.status)
    return see_other(_members_path(space))


async def remove_member(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    username = text_field(await request.post(), "username", MAX_USERNAME_LENGTH)
    try:
        await request.app[accounts_key].remove_member(space.id, username)
    except ApiError as exc:
        return await _members(request, space, error=exc.message, status=exc.status)
    return see_other(_members_path(space))


async def _members(
    request: web.Request, space: SpaceRecord, *, error: str | None, status: int
) -> web.Response:
    members = await request.app[accounts_key].members(space.id)
    return page(
        request,
        "members.html",
        status=status,
        space=space,
        members=members,
        roles=ROLES,
        error=error,
    )


def _members_path(space: SpaceRecord) -> str:
    return f"/spaces/{space.id}/members"


def add_routes(app: web.Application, space: str) -> None:
    """The administration pages; ``space`` is the route of a space."""
    router = app.router
    router.add_get(USERS_PATH, users_page)
    router.add_post(USERS_PATH, create_user)
    router.add_get(f"{USERS_PATH}/{{username}}", user_page)
    router.add_post(f"{USERS_PATH}/{{username}}/delete", delete_user)
    router.add_post(f"{USERS_PATH}/{{username}}/api-keys", create_api_key)
    router.add_post(f"{USERS_PATH}/{{username}}/api-keys/revoke", revoke_api_key)
    router.add_get(f"{space}/members", members_page)
    router.add_post(f"{space}/members", set_member)
    router.add_post(f"{space}/members/remove", remove_member)
