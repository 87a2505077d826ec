"""Sealed sensitive values: how a build's sensitive variables pass through MongoDB (the
registry's outbox) without ever being written there in clear (PRODUCT.md §8).

The registry seals them when it records a build command; the builder opens them when it reads
the command. Both derive one AES-256-GCM key (HKDF-SHA256) from ``SPACEDOCK_SEALING_KEY``. A
sealed value is ``v1.<base64url(nonce ‖ ciphertext ‖ tag)>`` and its associated data is the
context it was sealed for (the build's ``<space>/<build_id>``): it opens only with the same key
for the same build, and any change to it is detected.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.secret_files import stored_secret

MIN_KEY_BYTES = 32
MAX_KEY_BYTES = 1024
PREFIX = "v1."
NONCE_BYTES = 12
KEY_FILE = "sealing-key"
_INFO = b"spacedock sealed sensitive variables v1"
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


class SealingKeyInvalid(ValueError):
    """``SPACEDOCK_SEALING_KEY`` is not a key."""


class SealBroken(ValueError):
    """A sealed value that does not open: another key, another build, or altered."""


def parse_key(text: str) -> bytes:
    """The key's bytes from its text: hex, or base64 (standard or URL-safe, padding
    optional), of at least ``MIN_KEY_BYTES`` random bytes."""
    text = text.strip()
    raw: bytes | None = None
    if _HEX.fullmatch(text):
        raw = bytes.fromhex(text)
    elif re.fullmatch(r"[A-Za-z0-9+/_-]+={0,2}", text):
        padded = text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or not MIN_KEY_BYTES <= len(raw) <= MAX_KEY_BYTES:
        raise SealingKeyInvalid(
            f"expected at least {MIN_KEY_BYTES} random bytes as hex or base64, e.g. from "
            'python -c "import secrets; print(secrets.token_urlsafe(32))"'
        )
    return raw


def new_key_text() -> str:
    """A fresh key, as ``SPACEDOCK_SEALING_KEY`` takes it."""
    return secrets.token_urlsafe(MIN_KEY_BYTES)


def stored_key(path: Path) -> bytes:
    """The key kept in ``path``, made there (readable by its owner only) on first use: how
    ``spacedock serve`` has one key for its registry and builder across restarts."""
    try:
        return parse_key(stored_secret(path, new_key_text))
    except SealingKeyInvalid as exc:
        raise SealingKeyInvalid(f"{path}: {exc}") from exc


class Sealer:
    """Seals and opens string maps with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise SealingKeyInvalid(f"a sealing key has at least {MIN_KEY_BYTES} bytes")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key)
        self._aead = AESGCM(derived)

    def __repr__(self) -> str:
        return "Sealer(<key>)"

    def seal(self, values: Mapping[str, str], *, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(dict(values), sort_keys=True, separators=(",", ":")).encode()
        sealed = self._aead.encrypt(nonce, plain, context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, sealed: str, *, context: str) -> dict[str, str]:
        """The values sealed for ``context``; ``SealBroken`` for anything else."""
        if not sealed.startswith(PREFIX):
            raise SealBroken("is not a sealed value")
        text = sealed.removeprefix(PREFIX)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise SealBroken("is not a sealed value") from exc
        if len(raw) < NONCE_BYTES + 16:
            raise SealBroken("is not a sealed value")
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise SealBroken("does not open with this key for this build") from exc
        try:
            values = json.loads(plain)
        except ValueError as exc:
            raise SealBroken("does not hold a map of strings") from exc
        if not isinstance(values, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in values.items()
        ):
            raise SealBroken("does not hold a map of strings")
        return values
