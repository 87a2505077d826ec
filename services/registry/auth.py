"""Who is calling. Until roles per space arrive, every registry operation needs the admin's
credentials (HTTP Basic). Verifying a password runs a deliberately slow KDF, so successful
verifications are remembered for a short while, keyed by a hash of the header."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from services.registry.cache import TtlCache
from shared.metadata.store import MetadataStore
from shared.oci.errors import Unauthorized

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
ADMIN = "admin"
KDF_CONCURRENCY = 2


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = encoded.split("$")
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except (ValueError, binascii.Error):
        return False
    if scheme != "scrypt" or not salt or not expected:
        return False
    actual = hashlib.scrypt(password.encode(), salt=salt, dklen=len(expected), **_SCRYPT)
    return hmac.compare_digest(actual, expected)


@dataclass(frozen=True, slots=True)
class Identity:
    username: str


class Authenticator:
    def __init__(self, metadata: MetadataStore, realm: str = "spacedock") -> None:
        self.metadata = metadata
        self.realm = realm
        self._verified: TtlCache[str, Identity] = TtlCache(ttl_seconds=60, max_weight=10_000)
        # Requests with the same header while it is being checked wait for that one check.
        self._checking: dict[str, asyncio.Task[Identity]] = {}
        # Each scrypt run holds 16 MiB; a burst of logins must not multiply that.
        self._kdf_slots = asyncio.Semaphore(KDF_CONCURRENCY)

    def challenge(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Basic realm="{self.realm}"'}

    async def authenticate(self, authorization: str | None) -> Identity:
        """The caller's identity; raises Unauthorized without valid credentials."""
        if not authorization or not authorization.lower().startswith("basic "):
            raise Unauthorized()
        key = hashlib.sha256(authorization.encode()).hexdigest()
        known = self._verified.get(key)
        if known is not None:
            return known
        check = self._checking.get(key)
        if check is None:
            check = asyncio.ensure_future(self._check(key, authorization))
            self._checking[key] = check
            check.add_done_callback(lambda _: self._checking.pop(key, None))
        return await asyncio.shield(check)

    async def _check(self, key: str, authorization: str) -> Identity:
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            username, _, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise Unauthorized("malformed Basic credentials") from exc
        user = await self.metadata.get_user(username)
        if user is None:
            raise Unauthorized("invalid username or password")
        async with self._kdf_slots:
            valid = await asyncio.to_thread(
                verify_password, password, user.get("password_hash", "")
            )
        if not valid:
            raise Unauthorized("invalid username or password")
        identity = Identity(username)
        self._verified.put(key, identity)
        return identity
