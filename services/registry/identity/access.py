"""Who is calling and whether they may: credentials to a ``Principal``, roles to decisions.

Three ways in, none of which hashes a password per request:

- a bearer token from ``/auth/token`` (an HMAC check);
- Basic with an API key (one indexed lookup; the key is 256 random bits, hashed with SHA-256);
- Basic with a password (scrypt, so a verified header is remembered for a minute);
- Basic with a build credential (an HMAC check): what the builder presents for one build. It
  confines its holder to the build's space: at most a writer there, and nothing elsewhere but
  what anonymous callers may do (pull from spaces that allow it). Tokens obtained with it are
  confined the same way.

Whatever the credential, the account's ``Grants`` (roles, password epoch, live API keys) are
loaded from MongoDB and kept for ``cache_ttl`` seconds, so a revoked key, a changed password,
a deleted user or a changed role takes effect on every instance within that time, and at
once on the instance that made the change.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.registry.cache import SingleFlight, TtlCache
from services.registry.identity import api_keys
from services.registry.identity.passwords import verify_password
from services.registry.identity.roles import SPACE_ACTIONS, Action, Grants, Role, ScopeRequest
from services.registry.identity.tokens import (
    BUILD_CREDENTIAL,
    IssuedToken,
    TokenClaims,
    TokenInvalid,
    TokenSigner,
)
from shared.metadata.accounts import Account
from shared.metadata.ports import AccountReads
from shared.oci import errors
from shared.oci.names import RepositoryName

KDF_CONCURRENCY = 2
# Sign-ins waiting for a KDF slot beyond this are told to retry (429) instead of queueing.
MAX_KDF_WAITING = 64
# A user that does not exist is checked against this hash of an unknown secret, so that an
# unknown name takes as long as a wrong password and tells nothing.
UNKNOWN_USER_HASH = "scrypt$sgRC8lEBklzUme9v5LYWkg==$APD15kZ6NQf8TLF5+qrUsU3tPY+qVdcys7zQ+2tIfLk="
PASSWORD_CACHE_SECONDS = 60
ANONYMOUS_CREDENTIAL = "anonymous"
PASSWORD_CREDENTIAL = "password"
BUILD_CREDENTIAL_PREFIX = "sdb_"
# A build credential lives at most this long (a build's time limit is at most a day).
MAX_BUILD_CREDENTIAL_SECONDS = 86_400 + 600


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. ``username`` is None for anonymous callers, who may still
    hold an (anonymous) token."""

    username: str | None
    credential: str
    epoch: int = 0
    token: TokenClaims | None = None  # when the request carried a bearer token
    space: str | None = None  # confined to this space (a build credential, or its tokens)

    @property
    def presented_credentials(self) -> bool:
        return self.username is not None or self.token is not None


ANONYMOUS = Principal(None, ANONYMOUS_CREDENTIAL)


@dataclass(frozen=True, slots=True)
class SpaceAccess:
    """What access decisions need to know about a space."""

    id: str
    anonymous_pull: bool


class Challenged:
    """An error answered with a ``WWW-Authenticate`` challenge naming the realm and, when
    known, the scope to ask a token for."""

    scope: str | None = None
    error: str | None = None


class AuthenticationRequired(Challenged, errors.Unauthorized):
    """401: no credentials, or ones that are not (or no longer) valid."""

    def __init__(
        self, message: str | None = None, *, scope: str | None = None, error: str | None = None
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.error = error


class InsufficientScope(Challenged, errors.Unauthorized):
    """401 with ``error="insufficient_scope"`` and every scope the request needs, as CNCF
    Distribution answers: the role allows the request but the token was not asked for it.
    Clients renew their token on a 401 (containerd's resolver only then), so they ask for
    the scopes named and try again."""

    error = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"the token does not grant {scope}; request a token with this scope",
            detail={"scope": scope},
        )
        self.scope = scope


def key_credential(key_id: str) -> str:
    return f"key:{key_id}"


class AccessControl:
    def __init__(
        self,
        accounts: AccountReads,
        signer: TokenSigner,
        *,
        public_url: str,
        cache_ttl: float,
        token_ttl: int,
    ) -> None:
        self.accounts = accounts
        self.signer = signer
        self.realm = f"{public_url}/auth/token"
        self.token_ttl = token_ttl
        self._grants: TtlCache[str, Grants | bool] = TtlCache(cache_ttl, 100_000)
        self._loading_grants: SingleFlight[str, Grants | None] = SingleFlight()
        self._passwords: TtlCache[str, tuple[str, int]] = TtlCache(PASSWORD_CACHE_SECONDS, 10_000)
        self._checking_passwords: SingleFlight[str, Principal] = SingleFlight()
        self._keys: TtlCache[str, tuple[str, str]] = TtlCache(PASSWORD_CACHE_SECONDS, 10_000)
        # Each scrypt run holds 16 MiB; a burst of logins must not multiply that.
        self._kdf_slots = asyncio.Semaphore(KDF_CONCURRENCY)
        self._kdf_waiting = 0

    # challenges -----------------------------------------------------------------------------

    def challenge(
        self, *, scope: str | None = None, error: str | None = None, basic: bool = False
    ) -> list[str]:
        bearer = f'Bearer realm="{self.realm}",service="spacedock"'
        if scope:
            bearer += f',scope="{scope}"'
        if error:
            bearer += f',error="{error}"'
        return [bearer, 'Basic realm="spacedock"'] if basic else [bearer]

    # authentication -------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller; raises Unauthorized for credentials that are present but not valid."""
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            return await self._bearer(value.strip())
        if scheme.lower() == "basic":
            return await self.basic(value.strip())
        raise AuthenticationRequired("unsupported authorization scheme")

    async def basic(self, encoded: str) -> Principal:
        try:
            decoded = base64.b64decode(encoded, validate=True).decode()
        except ValueError as exc:  # not base64 (binascii.Error), not ASCII, not UTF-8
            raise AuthenticationRequired("malformed Basic credentials") from exc
        username, colon, secret = decoded.partition(":")
        if not colon or not username:
            raise AuthenticationRequired("malformed Basic credentials")
        return await self.basic_credentials(username, secret)

    async def basic_credentials(self, username: str, secret: str) -> Principal:
        """A user with a password or one of their API keys. A secret shaped like a key is
        only ever checked as one, so guessing keys never costs a password hash."""
        if secret.startswith(BUILD_CREDENTIAL_PREFIX):
            return await self._build_credential(username, secret[len(BUILD_CREDENTIAL_PREFIX) :])
        key = api_keys.parse_key(secret)
        if key is None:
            return await self._password(username, secret)
        principal = await self._api_key(username, key)
        if principal is None:
            raise AuthenticationRequired("invalid username or API key")
        return principal

    async def _build_credential(self, username: str, token: str) -> Principal:
        try:
            claims = self.signer.verify(token, use=BUILD_CREDENTIAL)
        except TokenInvalid as exc:
            raise AuthenticationRequired(f"invalid build credential: {exc}") from exc
        if claims.subject != username or claims.space is None:
            raise AuthenticationRequired("invalid build credential")
        principal = Principal(username, claims.credential, claims.epoch, space=claims.space)
        if not self._live(principal, await self.grants(username)):
            raise AuthenticationRequired("the credential behind this build credential is revoked")
        return principal

    async def _api_key(self, username: str, key: api_keys.ApiKey) -> Principal | None:
        # A key's owner and hash never change, so they may be remembered; whether the key
        # still exists is the account's grants' business (checked below, like tokens).
        known = self._keys.get(key.id)
        if known is None or not api_keys.matches(key, known[1]):
            stored = await self.accounts.get_api_key(key.id)
            if stored is None:
                return None
            known = (str(stored["username"]), str(stored["hash"]))
            self._keys.put(key.id, known)
        if known[0] != username or not api_keys.matches(key, known[1]):
            return None
        principal = Principal(username, key_credential(key.id))
        if not self._live(principal, await self.grants(username)):
            # Revoked between the lookups, or the user is gone: refresh and look again.
            self.forget(username)
            if not self._live(principal, await self.grants(username)):
                return None
        return principal

    async def _password(self, username: str, password: str) -> Principal:
        cache_key = hashlib.sha256(f"{username}\0{password}".encode()).hexdigest()
        cached = self._passwords.get(cache_key)
        if cached is not None:
            principal = Principal(cached[0], PASSWORD_CREDENTIAL, cached[1])
            if self._live(principal, await self.grants(username)):
                return principal
            self._passwords.discard(cache_key)
        return await self._checking_passwords.run(
            cache_key, lambda: self._verify_password(cache_key, username, password)
        )

    async def _verify_password(self, cache_key: str, username: str, password: str) -> Principal:
        user = await self.accounts.get_user(username)
        encoded = None if user is None else user.get("password_hash")
        if self._kdf_waiting >= MAX_KDF_WAITING:
            raise errors.TooManyRequests("too many sign-ins at once; retry shortly")
        self._kdf_waiting += 1
        try:
            async with self._kdf_slots:
                valid = await asyncio.to_thread(
                    verify_password, password, encoded or UNKNOWN_USER_HASH
                )
        finally:
            self._kdf_waiting -= 1
        if not valid or not encoded:
            raise AuthenticationRequired("invalid username or password")
        epoch = int(user.get("epoch", 0)) if user is not None else 0
        self._passwords.put(cache_key, (username, epoch))
        self.forget(username)  # what was just read is newer than any cached grants
        return Principal(username, PASSWORD_CREDENTIAL, epoch)

    async def _bearer(self, token: str) -> Principal:
        try:
            claims = self.signer.verify(token)
        except TokenInvalid as exc:
            raise AuthenticationRequired(str(exc), error="invalid_token") from exc
        if not claims.subject:
            return Principal(None, ANONYMOUS_CREDENTIAL, token=claims)
        principal = Principal(
            claims.subject, claims.credential, claims.epoch, token=claims, space=claims.space
        )
        if not self._live(principal, await self.grants(claims.subject)):
            raise AuthenticationRequired("the credential behind this token is no longer valid")
        return principal

    @staticmethod
    def _live(principal: Principal, grants: Grants | None) -> bool:
        if grants is None:
            return False
        if principal.credential == PASSWORD_CREDENTIAL:
            return principal.epoch == grants.epoch
        return principal.credential.removeprefix("key:") in grants.api_keys

    # grants ---------------------------------------------------------------------------------

    async def grants(self, username: str) -> Grants | None:
        cached = self._grants.get(username)
        if cached is not None:
            return cached if isinstance(cached, Grants) else None
        return await self._loading_grants.run(username, lambda: self._load_grants(username))

    async def _load_grants(self, username: str) -> Grants | None:
        account = await self.accounts.get_account(username)
        grants = None if account is None else _grants(account)
        self._grants.put(username, grants if grants is not None else False)
        return grants

    def forget(self, username: str) -> None:
        """Drop what this instance remembers of an account after changing it."""
        self._grants.discard(username)

    async def grants_of(self, principal: Principal) -> Grants | None:
        if principal.username is None:
            return None
        grants = await self.grants(principal.username)
        if grants is None or principal.space is None:
            return grants
        return _confined(grants, principal.space)

    async def role_in(self, principal: Principal, space: str) -> Role | None:
        grants = await self.grants_of(principal)
        return None if grants is None else grants.role_in(space)

    async def visible_spaces(self, principal: Principal) -> frozenset[str] | None:
        """Spaces the caller has a role in; None for every space."""
        grants = await self.grants_of(principal)
        return frozenset() if grants is None else grants.visible_spaces()

    # decisions ------------------------------------------------------------------------------

    async def may(self, principal: Principal, space: SpaceAccess, action: Action) -> bool:
        if action is Action.PULL and space.anonymous_pull:
            return True
        role = await self.role_in(principal, space.id)
        return role is not None and role >= action.needs

    async def permits(
        self,
        principal: Principal,
        name: RepositoryName,
        space: SpaceAccess | None,
        action: Action,
    ) -> bool:
        """Whether the caller may ``action`` on ``name``, by role and, for a token, by scope."""
        if space is None or not await self.may(principal, space, action):
            return False
        token = principal.token
        return token is None or token.allows("repository", name.full, action.value)

    async def authorize(
        self,
        principal: Principal,
        name: RepositoryName,
        space: SpaceAccess | None,
        action: Action,
    ) -> None:
        """Raise unless the caller may ``action`` on ``name``. Whether a space exists is told
        only to callers with a role in it, so a stranger cannot probe for spaces."""
        # Push is asked for with pull, as Docker clients do, so one token serves the upload.
        actions = "pull,push" if action is Action.PUSH else action.value
        scope = f"repository:{name.full}:{actions}"
        if space is None:
            if await self.role_in(principal, name.space) is not None:
                raise errors.NameUnknown(
                    f"space {name.space} does not exist", detail={"name": name.full}
                )
            self._deny(principal, scope)
        elif not await self.may(principal, space, action):
            self._deny(principal, scope)
        if principal.token is not None and not principal.token.allows(
            "repository", name.full, action.value
        ):
            raise InsufficientScope(scope)  # the role allows it: a new token would hold it

    async def authorize_catalog(self, principal: Principal) -> frozenset[str] | None:
        """The spaces whose repositories the caller may list; None for all of them."""
        scope = "registry:catalog:*"
        if principal.username is None:
            self._deny(principal, scope)
        if principal.token is not None and not principal.token.allows("registry", "catalog", "*"):
            raise AuthenticationRequired(
                "the token does not grant this access", scope=scope, error="insufficient_scope"
            )
        return await self.visible_spaces(principal)

    @staticmethod
    def _deny(principal: Principal, scope: str) -> None:
        if not principal.presented_credentials:
            raise AuthenticationRequired(scope=scope)
        raise errors.Denied(detail={"scope": scope})

    # tokens ---------------------------------------------------------------------------------

    async def issue_build_credential(
        self, principal: Principal, space: str, ttl_seconds: int
    ) -> IssuedToken:
        """A password for one build in ``space``: it signs in as the caller, confined to that
        space. The caller's own credential must stay valid for it to work."""
        issued = self.signer.issue(
            principal.username or "",
            principal.credential,
            principal.epoch,
            [],
            min(ttl_seconds, MAX_BUILD_CREDENTIAL_SECONDS),
            space=space,
            use=BUILD_CREDENTIAL,
        )
        return IssuedToken(
            BUILD_CREDENTIAL_PREFIX + issued.token, issued.expires_in, issued.issued_at
        )

    async def issue_token(
        self,
        principal: Principal,
        scopes: list[ScopeRequest],
        space_access: Callable[[str], Awaitable[SpaceAccess | None]],
    ) -> IssuedToken:
        """A token holding the requested scopes the caller has, and no others."""
        access: list[dict[str, Any]] = []
        for scope in scopes:
            granted = await self._grantable(principal, scope, space_access)
            if granted:
                access.append({"type": scope.type, "name": scope.name, "actions": granted})
        return self.signer.issue(
            principal.username or "",
            principal.credential,
            principal.epoch,
            access,
            self.token_ttl,
            space=principal.space,
        )

    async def _grantable(
        self,
        principal: Principal,
        scope: ScopeRequest,
        space_access: Callable[[str], Awaitable[SpaceAccess | None]],
    ) -> list[str]:
        if scope.type == "registry" and scope.name == "catalog":
            return ["*"] if principal.username is not None and "*" in scope.actions else []
        if scope.type == "space":  # the management API's scopes on a space
            role = await self.role_in(principal, scope.name)
            return [
                action
                for needed, action in SPACE_ACTIONS.items()
                if (action in scope.actions or "*" in scope.actions)
                and role is not None
                and role >= needed
            ]
        if scope.type != "repository":
            return []
        try:
            name = RepositoryName.parse(scope.name)
        except errors.NameInvalid:
            return []
        space = await space_access(name.space)
        granted: list[str] = []
        for action in Action:
            if action.value not in scope.actions and "*" not in scope.actions:
                continue
            if space is not None:
                allowed = await self.may(principal, space, action)
            else:  # pushing into a space that does not exist fails later, with NAME_UNKNOWN
                role = await self.role_in(principal, name.space)
                allowed = role is not None and role >= action.needs
            if allowed:
                granted.append(action.value)
        return granted


def _confined(grants: Grants, space: str) -> Grants:
    """What ``grants`` allow in ``space`` alone, at most a writer's role, as nobody's
    superuser."""
    role = grants.role_in(space)
    roles = {} if role is None else {space: min(role, Role.WRITER)}
    return Grants(
        username=grants.username, roles=roles, epoch=grants.epoch, api_keys=grants.api_keys
    )


def _grants(account: Account) -> Grants:
    roles = {}
    for space, label in account.memberships.items():
        role = Role.parse(label)
        if role is not None:
            roles[space] = role
    user = account.user
    return Grants(
        username=user["_id"],
        superuser=bool(user.get("superuser", False)),
        global_role=Role.parse(user.get("global_role")),
        roles=roles,
        epoch=int(user.get("epoch", 0)),
        api_keys=frozenset(account.api_keys),
    )
