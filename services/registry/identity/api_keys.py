"""API keys: ``sdk_<id>.<secret>``, shown once, stored as the SHA-256 of the secret.

A secret of 256 random bits cannot be guessed, so a fast hash is as safe as a KDF here and
keeps a key check to one indexed lookup (the scheme GitHub and GitLab tokens use).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

PREFIX = "sdk_"
_KEY_RE = re.compile(r"sdk_([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    secret: str = field(repr=False)

    @property
    def text(self) -> str:
        return f"{PREFIX}{self.id}.{self.secret}"

    @property
    def secret_hash(self) -> str:
        return hash_secret(self.secret)


def new_key() -> ApiKey:
    return ApiKey(secrets.token_hex(8), secrets.token_urlsafe(32))


def parse_key(text: str) -> ApiKey | None:
    """The key in ``text``, or None when it is not shaped like one of ours."""
    match = _KEY_RE.fullmatch(text)
    return None if match is None else ApiKey(match.group(1), match.group(2))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(key: ApiKey, stored_hash: str) -> bool:
    return hmac.compare_digest(key.secret_hash, stored_hash)
