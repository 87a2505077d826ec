"""Signing in and out of the web UI.

Credentials are checked exactly as the registry checks Basic credentials
(``AccessControl.basic_credentials``): a password or an API key. A build credential, which
confines its holder to one build's space, opens no browser session.
"""

from __future__ import annotations

from aiohttp import web

from services.registry.bootstrap import SERVICE_ACCOUNTS
from services.registry.keys import access_key
from services.registry.ui import security
from services.registry.ui.middleware import (
    SIGN_IN_PATH,
    read_form,
    secure_cookies,
    see_other,
    sessions_key,
)
from services.registry.ui.render import page, signed_in_key
from shared.oci import errors

MAX_USERNAME_LENGTH = 256
MAX_PASSWORD_LENGTH = 1024
WRONG_CREDENTIALS = "Wrong username or password."


async def sign_in_form(request: web.Request) -> web.Response:
    next_path = security.safe_next(request.query.get("next"))
    if signed_in_key in request:
        return see_other(next_path)
    return _form(request, next_path, error=None, status=200)


async def sign_in(request: web.Request) -> web.Response:
    form = await read_form(request)
    next_path = security.safe_next(security.text_field(form, "next", security.MAX_NEXT_LENGTH))
    expected = request.cookies.get(security.SIGN_IN_COOKIE, "")
    given = security.text_field(form, security.CSRF_FIELD, security.MAX_TOKEN_LENGTH)
    if not security.csrf_matches(expected, given):
        return _form(request, next_path, error="The form expired; try again.", status=403)
    username = security.text_field(form, "username", MAX_USERNAME_LENGTH)
    password = security.text_field(form, "password", MAX_PASSWORD_LENGTH)
    if not username or not password:
        return _form(request, next_path, error=WRONG_CREDENTIALS, status=401)
    try:
        principal = await request.app[access_key].basic_credentials(username, password)
    except errors.Unauthorized:
        return _form(request, next_path, error=WRONG_CREDENTIALS, status=401)
    except errors.TooManyRequests:
        return _form(request, next_path, error="Too many sign-ins; retry shortly.", status=429)
    if principal.username is None or principal.space is not None:
        return _form(request, next_path, error=WRONG_CREDENTIALS, status=401)
    if principal.username in SERVICE_ACCOUNTS:  # the builder's and reaper's keys: not people
        return _form(request, next_path, error=WRONG_CREDENTIALS, status=401)
    sessions = request.app[sessions_key]
    previous = request.get(signed_in_key)
    if previous is not None:  # a new sign-in never keeps the old session id (fixation)
        await sessions.end(previous)
    session_id = await sessions.start(principal)
    response = see_other(next_path)
    response.set_cookie(
        security.SESSION_COOKIE,
        session_id,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
    )
    response.del_cookie(security.SIGN_IN_COOKIE, path=SIGN_IN_PATH)
    return response


async def sign_out(request: web.Request) -> web.Response:
    """A POST with the session's CSRF token (checked by the gate): the session is deleted
    on the server, so a copy of the cookie is worthless from now on."""
    await request.app[sessions_key].end(request[signed_in_key])
    response = see_other(SIGN_IN_PATH)
    response.del_cookie(security.SESSION_COOKIE, path="/")
    return response


def _form(request: web.Request, next_path: str, *, error: str | None, status: int) -> web.Response:
    """The sign-in page, with the token its form must send back, set in a cookie too."""
    token = request.cookies.get(security.SIGN_IN_COOKIE) or security.new_secret()
    context = {"next_path": next_path, "sign_in_token": token, "error": error}
    response = page(request, "sign_in.html", status=status, **context)
    response.set_cookie(
        security.SIGN_IN_COOKIE,
        token,
        path=SIGN_IN_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request),
    )
    return response
