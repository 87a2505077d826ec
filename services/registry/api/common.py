"""Request parsing shared by the OCI handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

from aiohttp import web

from services.registry.identity.roles import Action
from services.registry.keys import access_key, principal_key, registry_key
from shared.oci import errors
from shared.oci.names import MAX_NAME_LENGTH, NAME_RE, RepositoryName

DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
DOCKER_CONTENT_DIGEST = "Docker-Content-Digest"


async def repository(request: web.Request, action: Action) -> RepositoryName:
    """The repository named in the path, once the caller is known to be allowed ``action``
    on it (in an existing space)."""
    text = request.match_info["name"]
    try:
        name = RepositoryName.parse(text)
    except errors.NameInvalid as exc:
        if NAME_RE.fullmatch(text) is None or len(text) > MAX_NAME_LENGTH:
            raise
        # A name Docker accepts but that lies in no space: unknown here. Clients retry
        # NAME_INVALID (docker for 50 s before showing why) but not NAME_UNKNOWN.
        raise errors.NameUnknown(exc.message, detail={"name": text}) from exc
    space = await request.app[registry_key].space(name.space)
    await request.app[access_key].authorize(request[principal_key], name, space, action)
    return name


def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    return request.content.iter_any()


def has_body(request: web.Request) -> bool:
    return request.body_exists and request.content_length != 0


def page_size(request: web.Request) -> int:
    raw = request.query.get("n")
    if raw is None or raw == "":
        return DEFAULT_PAGE
    invalid = errors.PaginationInvalid("n must be a non-negative integer", detail={"n": raw[:20]})
    if not (raw.isascii() and raw.isdigit()):
        raise invalid
    try:
        return min(int(raw), MAX_PAGE)
    except ValueError:  # more digits than Python converts (4300)
        raise invalid from None


def next_link(path: str, last: str, n: int) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'
