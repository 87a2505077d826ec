"""``/api/v1/spaces/{space}/build-credentials``: the builder's password for one build.

The builder's service account may write every space, so a build must not act as it: before
each build the builder asks here for a credential confined to the build's space (a writer
there, an anonymous caller elsewhere) and uses it for everything the build reads and pushes,
through the registry API and the Docker engine's login alike.
"""

from __future__ import annotations

from aiohttp import web

from services.registry.bootstrap import BUILDER
from services.registry.identity.access import MAX_BUILD_CREDENTIAL_SECONDS
from services.registry.identity.roles import Role
from services.registry.keys import access_key
from services.registry.management.errors import Forbidden, Invalid
from services.registry.management.guard import caller, space_with_role
from services.registry.management.requests import json_object


async def create_build_credential(request: web.Request) -> web.Response:
    principal = caller(request)
    if (
        principal.username != BUILDER
        or principal.token is not None
        or principal.space is not None
        or not principal.credential.startswith("key:")
    ):
        raise Forbidden(f"only the {BUILDER} service account, with its API key, gets these")
    space = (await space_with_role(request, Role.WRITER)).id
    body = await json_object(request, {"ttl_seconds"})
    # The builder asks for its time limit and a margin; a build lasts a day at most.
    ceiling = MAX_BUILD_CREDENTIAL_SECONDS
    ttl = body.get("ttl_seconds", 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= ceiling:
        raise Invalid(f"ttl_seconds must be a whole number from 1 to {ceiling}")
    issued = await request.app[access_key].issue_build_credential(principal, space, ttl)
    return web.json_response(
        {
            "username": principal.username,
            "password": issued.token,
            "space": space,
            "expires_in": issued.expires_in,
        },
        status=201,
    )
