"""The web UI's browser-facing rules, pure: where a sign-in may send the browser next, the
CSRF and origin checks every change passes, and the headers every UI response carries."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import quote, urlsplit

from aiohttp import web
from multidict import MultiDictProxy

Form = MultiDictProxy[str | bytes | bytearray | web.FileField]

SESSION_COOKIE = "spacedock_session"
# Before a session exists, the sign-in form is protected by this cookie (double submit): a
# page elsewhere can neither read it nor, with SameSite=Strict, make the browser send it.
SIGN_IN_COOKIE = "spacedock_sign_in"
CSRF_FIELD = "csrf_token"
HOME = "/"
# What a path may hold as it is; anything else (letters of other scripts) is percent-encoded.
PRINTABLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))
MAX_NEXT_LENGTH = 2000
MAX_TOKEN_LENGTH = 100  # what a posted CSRF token may be; ours are 43 characters

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def new_secret() -> str:
    """256 random bits, URL-safe: session ids and CSRF tokens."""
    return secrets.token_urlsafe(32)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: ``value`` when it is a path on this site, else home.

    Browsers read ``\\`` as ``/`` and drop tabs and newlines from URLs, so ``/\\evil`` and
    ``/\\t/evil`` would leave the site as ``//evil`` does; anything but a plain absolute path
    of printable characters is refused rather than repaired.
    """
    if not value or len(value) > MAX_NEXT_LENGTH:
        return HOME
    if not value.startswith("/") or value.startswith("//"):
        return HOME
    if "\\" in value or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return HOME
    return quote(value, safe=PRINTABLE_ASCII)  # a Location header carries ASCII only


def csrf_matches(expected: str, given: str | None) -> bool:
    """Whether a form carried the token; compared in constant time, so timing tells nothing
    about how much of a guess was right."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def origin_allowed(origin: str | None, own_origins: frozenset[str]) -> bool:
    """A change may come without an ``Origin`` (older browsers leave it off same-origin
    forms), but one that names another site, or ``null`` (a sandboxed or privacy-stripped
    origin), is refused."""
    if origin is None:
        return True
    return origin.rstrip("/").lower() in own_origins


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, as browsers write an ``Origin`` header."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def text_field(form: Form, name: str, limit: int) -> str:
    """A text field of a posted form; empty when absent, not text (a file), or too long."""
    value = form.get(name)
    return value if isinstance(value, str) and len(value) <= limit else ""
