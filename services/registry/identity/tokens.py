"""Registry bearer tokens: JWTs signed with HMAC-SHA256 by a key every instance shares.

Checking one costs an HMAC and a JSON parse, so a client holding a token never makes the
registry run a password KDF. The claims follow the Docker token specification (``access``
lists ``{"type", "name", "actions"}``), plus ``cred`` and ``epoch``: which credential
obtained the token, so a revoked key or a changed password ends its tokens too.

``use`` tells an access token (a bearer token for the registry) from a build credential (a
password the builder presents for one build); neither is accepted as the other. ``space``,
when present, confines whoever holds the token to that one space (PRODUCT.md §8: a build acts
with the authority of the space it builds for).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ISSUER = "spacedock"
SERVICE = "spacedock"
_HEADER = {"alg": "HS256", "typ": "JWT"}
# Tolerated difference between the clocks of the instance that issued and the one checking.
CLOCK_SKEW_SECONDS = 2
ACCESS_TOKEN = "access"
BUILD_CREDENTIAL = "build"


class TokenInvalid(ValueError):
    """The token is malformed, forged, expired or meant for another service."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str  # "" for an anonymous token
    credential: str
    epoch: int
    expires_at: int
    access: frozenset[tuple[str, str, str]]  # (type, name, action)
    space: str | None = None  # the one space its holder may act in, when confined

    def allows(self, resource_type: str, name: str, action: str) -> bool:
        return (resource_type, name, action) in self.access or (
            resource_type,
            name,
            "*",
        ) in self.access


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: int
    access: tuple[dict[str, Any], ...] = ()  # what it grants: {"type", "name", "actions"}

    @property
    def scope(self) -> str:
        """What was granted, as OAuth2's ``scope`` (RFC 6749 §5.1): Docker scopes, one space
        between each."""
        return " ".join(
            f"{entry['type']}:{entry['name']}:{','.join(entry['actions'])}" for entry in self.access
        )


class TokenSigner:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the token signing key needs at least 256 bits")
        self._key = key
        self._clock = clock

    def issue(
        self,
        subject: str,
        credential: str,
        epoch: int,
        access: list[dict[str, Any]],
        ttl_seconds: int,
        *,
        space: str | None = None,
        use: str = ACCESS_TOKEN,
    ) -> IssuedToken:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": SERVICE,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": secrets.token_hex(12),
            "cred": credential,
            "epoch": epoch,
            "access": access,
            "use": use,
        }
        if space is not None:
            claims["space"] = space
        signing_input = _segment(_HEADER) + "." + _segment(claims)
        token = signing_input + "." + _b64(self._sign(signing_input))
        return IssuedToken(token, ttl_seconds, now, tuple(access))

    def verify(self, token: str, use: str = ACCESS_TOKEN) -> TokenClaims:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenInvalid("malformed token")
        header_b64, claims_b64, signature_b64 = parts
        try:
            signature = _unb64(signature_b64)
            header = json.loads(_unb64(header_b64))
        except (binascii.Error, ValueError) as exc:
            raise TokenInvalid("malformed token") from exc
        if header != _HEADER:
            raise TokenInvalid("unsupported token algorithm")
        expected = self._sign(header_b64 + "." + claims_b64)
        if not hmac.compare_digest(signature, expected):
            raise TokenInvalid("token signature does not match")
        try:
            claims = json.loads(_unb64(claims_b64))
            return self._check(claims, use)
        except TokenInvalid:
            raise
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise TokenInvalid("malformed token claims") from exc

    def _check(self, claims: dict[str, Any], use: str) -> TokenClaims:
        now = self._clock()
        if claims["iss"] != ISSUER or claims["aud"] != SERVICE:
            raise TokenInvalid("token issued for another service")
        if claims.get("use", ACCESS_TOKEN) != use:
            raise TokenInvalid(
                "a build credential is not a bearer token"
                if use == ACCESS_TOKEN
                else "not a build credential"
            )
        space = claims.get("space")
        if space is not None and not isinstance(space, str):
            raise TokenInvalid("malformed token claims")
        if int(claims["exp"]) <= now - CLOCK_SKEW_SECONDS:
            raise TokenInvalid("token expired")
        if int(claims["nbf"]) > now + CLOCK_SKEW_SECONDS:
            raise TokenInvalid("token not valid yet")
        access = frozenset(
            (str(entry["type"]), str(entry["name"]), str(action))
            for entry in claims["access"]
            for action in entry["actions"]
        )
        return TokenClaims(
            subject=str(claims["sub"]),
            credential=str(claims["cred"]),
            epoch=int(claims["epoch"]),
            expires_at=int(claims["exp"]),
            access=access,
            space=space,
        )

    def _sign(self, signing_input: str) -> bytes:
        return hmac.new(self._key, signing_input.encode(), hashlib.sha256).digest()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
