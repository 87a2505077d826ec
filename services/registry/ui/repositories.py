"""A repository's versions, and pinning them.

Pinning takes a writer and unpinning an admin of the space, as in the management API
(``services.registry.management.retention``); the page offers only what the role allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import access_key, feed_key, metadata_key, retention_key
from services.registry.management.errors import NotFound
from services.registry.management.guard import caller, space_with_role
from services.registry.retention import space_policy
from services.registry.ui.middleware import see_other
from services.registry.ui.render import page
from services.registry.ui.security import Form, text_field
from shared.metadata.feed import VersionRecord
from shared.oci.errors import RegistryError
from shared.oci.names import MAX_NAME_LENGTH, RepositoryName, parse_tag

VERSIONS_SHOWN = 200
# A page's place among the versions (a feed key) is short; anything longer is none of ours.
MAX_BEFORE_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: VersionRecord
    pinned: bool
    deployment: bool


def repository_path(name: RepositoryName) -> str:
    """The page of ``name``: its components are lowercase letters, digits and separators
    (``RepositoryName``), so the path needs no escaping."""
    return f"/spaces/{name.space}/repositories/{name.path}"


def repository_name(space: str, path: str) -> RepositoryName:
    """``<space>/<path>`` as a repository name; an invalid one is a repository not found."""
    try:
        return RepositoryName.parse(f"{space}/{path}")
    except RegistryError as exc:
        raise NotFound("no such repository") from exc


async def repository_page(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.READER)
    role = await request.app[access_key].role_in(caller(request), space.id)
    name = repository_name(space.id, request.match_info["repository"])
    before = request.query.get("before") or None
    if before is not None and len(before) > MAX_BEFORE_LENGTH:
        before = None  # no place this page gave: from the newest
    listed = await request.app[feed_key].versions(
        name, include_prerelease=True, limit=VERSIONS_SHOWN, before=before
    )
    pinned = await request.app[metadata_key].pins.of_repository(name.full)
    policy = space_policy(space)
    rows = [VersionRow(v, v.tag in pinned, policy.counts(v.tag)) for v in listed.versions]
    return page(
        request,
        "repository.html",
        space=space,
        name=name,
        rows=rows,
        repository_path=repository_path(name),
        older=None if listed.next_before is None else urlencode({"before": listed.next_before}),
        newest_first_page=before is None,
        can_pin=role is not None and role >= Role.WRITER,
        can_unpin=role is not None and role >= Role.ADMIN,
    )


async def pin(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.WRITER)
    name, tag = _tag_of(await request.post(), space.id)
    await request.app[retention_key].pin(name, tag, caller(request).username)
    return see_other(repository_path(name))


async def unpin(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    name, tag = _tag_of(await request.post(), space.id)
    await request.app[retention_key].unpin(name, tag)
    return see_other(repository_path(name))


def _tag_of(form: Form, space: str) -> tuple[RepositoryName, str]:
    name = repository_name(space, text_field(form, "repository", MAX_NAME_LENGTH))
    tag = text_field(form, "tag", MAX_NAME_LENGTH)
    try:
        return name, parse_tag(tag)
    except RegistryError as exc:
        raise NotFound("no such tag") from exc
