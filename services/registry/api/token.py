"""``/auth/token``: the Docker token endpoint (and its OAuth2 password-grant form).

Credentials are Basic (a password or an API key) or none at all; the token holds the
requested scopes the caller has, and no others, so asking costs nothing and reveals nothing.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from services.registry.identity.access import ANONYMOUS, AuthenticationRequired, Principal
from services.registry.identity.roles import ScopeInvalid, parse_scopes
from services.registry.identity.tokens import SERVICE, IssuedToken
from services.registry.keys import access_key, registry_key
from shared.oci import errors

MAX_FORM_BYTES = 16 * 1024


class TokenRequestInvalid(errors.RegistryError):
    code, status, default_message = "INVALID_REQUEST", 400, "invalid token request"


async def get_token(request: web.Request) -> web.Response:
    _check_service(request.query.get("service"))
    principal = await _caller(request)
    account = request.query.get("account")
    if account and principal.username is not None and account != principal.username:
        raise AuthenticationRequired("account does not match the credentials")
    issued = await _issue(request, principal, request.query.getall("scope", []))
    return web.json_response(
        {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": _iso(issued.issued_at),
        }
    )


async def post_token(request: web.Request) -> web.Response:
    """OAuth2 (RFC 6749 §4.3) password grant, as oras-go and containerd may use."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise TokenRequestInvalid("request body too large")
    try:
        form = await request.post()
    except (ValueError, LookupError) as exc:  # bad encoding, charset or multipart framing
        raise TokenRequestInvalid("the form cannot be read") from exc
    _check_service(_text(form.get("service")))
    if form.get("grant_type") != "password":
        raise TokenRequestInvalid("only grant_type=password is supported")
    username, password = _text(form.get("username")), _text(form.get("password"))
    if not username or password is None:
        raise AuthenticationRequired("username and password are required")
    principal = await request.app[access_key].basic_credentials(username, password)
    scopes = [_text(value) or "" for value in form.getall("scope", [])]
    issued = await _issue(request, principal, scopes)
    return web.json_response(
        {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "issued_at": _iso(issued.issued_at),
            "scope": issued.scope,  # what was granted, which may be less than was asked
        }
    )


async def _caller(request: web.Request) -> Principal:
    authorization = request.headers.get("Authorization")
    if not authorization:
        return ANONYMOUS
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise AuthenticationRequired("the token endpoint takes Basic credentials")
    return await request.app[access_key].basic(value.strip())


async def _issue(request: web.Request, principal: Principal, scopes: list[str]) -> IssuedToken:
    try:
        requested = parse_scopes(scopes)
    except ScopeInvalid as exc:
        raise TokenRequestInvalid(str(exc)) from exc
    return await request.app[access_key].issue_token(
        principal, requested, request.app[registry_key].space
    )


def _check_service(service: str | None) -> None:
    if service and service != SERVICE:
        raise TokenRequestInvalid(f"unknown service {service[:100]!r}; this is {SERVICE!r}")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _iso(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat().replace("+00:00", "Z")
