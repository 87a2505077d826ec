"""ToBase64, FromBase64 and the hashes (Md5, Sha1, Sha256, Sha384, Sha512)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from services.builder.features.filters.dotnet import dotnet_int, scalar
from services.builder.features.filters.errors import FilterFailed, FilterFunction

ENCODINGS = {"utf8": "utf-8", "utf-8": "utf-8", "unicode": "utf-16-le"}
_BASE64_WHITESPACE = re.compile(r"[ \t\r\n]")


def from_base64_bytes(text: str) -> bytes:
    """``Convert.FromBase64String``: white space anywhere is ignored, padding is needed."""
    compact = _BASE64_WHITESPACE.sub("", text)
    if len(compact) % 4:
        raise FilterFailed("the input is not a valid Base-64 string")
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise FilterFailed("the input is not a valid Base-64 string") from exc


def to_base64(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None or len(args) > 1:
        return None
    encoding = ENCODINGS.get(args[0].lower() if args else "utf8")
    if encoding is None:
        return None
    return base64.b64encode(scalar(value).encode(encoding)).decode("ascii")


def from_base64(value: str | None, args: tuple[str, ...]) -> str | None:
    if value is None or len(args) > 1:
        return None
    data = from_base64_bytes(value)  # decoded before the encoding is looked at
    encoding = ENCODINGS.get(args[0].lower() if args else "utf8")
    if encoding is None:
        return None
    return data.decode(encoding, "replace")


def hash_filter(algorithm: str) -> FilterFunction:
    """``Sha256``, ``Sha256 utf8|utf-8|unicode|base64``, ``Sha256 size`` (bytes of the
    digest kept), both in either order: lower-case hex."""

    def digest(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is None or len(args) > 2:
            return None
        size: int | None = None
        encoding = "utf8"
        first = dotnet_int(args[0]) if args else None
        if args and first is not None and first > 0:
            size = first
            if len(args) > 1:
                encoding = args[1].lower()
        elif args:
            encoding = args[0].lower()
            if len(args) > 1:
                size = dotnet_int(args[1])
                if size is None or size <= 0:
                    return None
        if encoding == "base64":
            try:
                data = from_base64_bytes(value)
            except FilterFailed:  # Octostache catches this one
                return None
        elif encoding in ENCODINGS:
            data = scalar(value).encode(ENCODINGS[encoding])
        else:
            return None
        raw = hashlib.new(algorithm, data).digest()
        return raw[: size or len(raw)].hex()

    return digest
