"""The spaces the caller has a role in, and one space: its repositories and packages."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import access_key, feed_key, spaces_key
from services.registry.management.guard import caller, space_with_role
from services.registry.ui.render import page
from shared.metadata.feed import VersionRecord
from shared.oci.names import RepositoryName

REPOSITORIES_PER_PAGE = 50
MAX_QUERY_LENGTH = 200
PACKAGES_SHOWN = 20
PACKAGE_VERSIONS_SHOWN = 5
PACKAGES_PATH = "packages/"


@dataclass(frozen=True, slots=True)
class PackageRow:
    id: str
    path: str
    versions: list[VersionRecord]


async def home(request: web.Request) -> web.Response:
    principal = caller(request)
    spaces = await request.app[spaces_key].visible_to(principal)
    grants = await request.app[access_key].grants_of(principal)
    roles = [(space, None if grants is None else grants.role_in(space.id)) for space in spaces]
    rows = [(space, role.label) for space, role in roles if role is not None]
    return page(request, "home.html", rows=rows)


async def space_page(request: web.Request) -> web.Response:
    """Repositories whose names hold ``q``, a page at a time (``after``: the last name of
    the page before), and the space's packages with their newest versions."""
    space = await space_with_role(request, Role.READER)
    query = request.query.get("q", "").strip()[:MAX_QUERY_LENGTH]
    after = request.query.get("after") or None
    if after is not None and not after.startswith(f"{space.id}/"):
        after = None
    feed = request.app[feed_key]
    listed = await feed.repositories(
        space.id, query=query or None, after=after, limit=REPOSITORIES_PER_PAGE
    )
    repositories = [record.name.split("/", 1)[1] for record in listed.repositories]
    return page(
        request,
        "space.html",
        space=space,
        query=query,
        repositories=repositories,
        next_after=listed.next_after,
        packages=await _packages(request, space.id),
    )


async def _packages(request: web.Request, space: str) -> list[PackageRow]:
    """The first packages (``<space>/packages/<id>``) by id, with their newest versions."""
    feed = request.app[feed_key]
    prefix = f"{space}/{PACKAGES_PATH}"
    # The search keeps names holding "packages/", and after "<space>/packages" the first
    # of them are the packages'.
    listed = await feed.repositories(
        space, query=PACKAGES_PATH, after=prefix.rstrip("/"), limit=PACKAGES_SHOWN
    )
    rows = []
    for record in listed.repositories:
        if not record.name.startswith(prefix):  # "<space>/packages-x/packages/y", say
            continue
        name = RepositoryName.parse(record.name)
        newest = await feed.versions(name, include_prerelease=True, limit=PACKAGE_VERSIONS_SHOWN)
        rows.append(PackageRow(record.name.removeprefix(prefix), name.path, newest.versions))
    return rows
