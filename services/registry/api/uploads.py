"""``/v2/<name>/blobs/uploads/``: start, mount, chunk, status, finish and cancel uploads."""

from __future__ import annotations

from aiohttp import web

from services.registry.api.common import DOCKER_CONTENT_DIGEST, body_chunks, has_body, repository
from services.registry.identity.access import InsufficientScope
from services.registry.identity.roles import Action
from services.registry.keys import access_key, metrics_key, principal_key, registry_key, uploads_key
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.names import RepositoryName
from shared.oci.ranges import parse_content_range


def _session_headers(name: RepositoryName, upload_id: str, offset: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Range": f"0-{max(offset - 1, 0)}",
        "Docker-Upload-UUID": upload_id,
        "Content-Length": "0",
    }


def _blob_created(name: RepositoryName, digest: str) -> web.Response:
    return web.Response(
        status=201,
        headers={"Location": f"/v2/{name}/blobs/{digest}", DOCKER_CONTENT_DIGEST: digest},
    )


async def start_upload(request: web.Request) -> web.Response:
    name = await repository(request, Action.PUSH)
    uploads = request.app[uploads_key]
    mount = request.query.get("mount")
    if mount is not None:
        digest = Digest.parse(mount)
        if await _mount(request, name, digest, _mount_source(request.query.get("from"))):
            return _blob_created(name, str(digest))

    digest_param = request.query.get("digest")
    if digest_param is not None and mount is None:
        digest = Digest.parse(digest_param)
        with request.app[metrics_key].uploads_in_flight.track_inprogress():
            await uploads.put_whole(name, digest, body_chunks(request), request.content_length)
        return _blob_created(name, str(digest))

    upload = await uploads.start(name)
    return web.Response(status=202, headers=_session_headers(name, upload.id, 0))


async def _mount(
    request: web.Request, name: RepositoryName, digest: Digest, source: RepositoryName | None
) -> bool:
    """Mount only what the caller could pull; otherwise the client gets a plain upload,
    which tells nothing about the other repository."""
    registry, access = request.app[registry_key], request.app[access_key]
    principal = request[principal_key]
    if source is not None:
        space = await registry.space(source.space)
        if space is None or not await access.may(principal, space, Action.PULL):
            return False
        token = principal.token
        if token is not None and not token.allows("repository", source.full, "pull"):
            # The role could read it: a token asked for it too would get the mount.
            raise InsufficientScope(f"repository:{name}:pull,push repository:{source}:pull")
        return await registry.mount(name, digest, source, readable_spaces=None)
    readable = await access.visible_spaces(principal)
    return await registry.mount(name, digest, None, readable_spaces=readable)


def _mount_source(value: str | None) -> RepositoryName | None:
    """A ``from`` that is not a valid name is ignored: the client gets a plain upload."""
    if not value:
        return None
    try:
        return RepositoryName.parse(value)
    except errors.NameInvalid:
        return None


async def upload_status(request: web.Request) -> web.Response:
    name = await repository(request, Action.PUSH)
    upload = await request.app[uploads_key].status(name, request.match_info["upload_id"])
    return web.Response(status=204, headers=_session_headers(name, upload.id, upload.offset))


async def patch_upload(request: web.Request) -> web.Response:
    name = await repository(request, Action.PUSH)
    upload_id = request.match_info["upload_id"]
    raw_range = request.headers.get("Content-Range")
    content_range = parse_content_range(raw_range) if raw_range else None
    with request.app[metrics_key].uploads_in_flight.track_inprogress():
        offset = await request.app[uploads_key].append(
            name, upload_id, body_chunks(request), content_range, request.content_length
        )
    return web.Response(status=202, headers=_session_headers(name, upload_id, offset))


async def finish_upload(request: web.Request) -> web.Response:
    name = await repository(request, Action.PUSH)
    upload_id = request.match_info["upload_id"]
    digest_param = request.query.get("digest")
    if not digest_param:
        raise errors.DigestInvalid("the digest query parameter is required")
    digest = Digest.parse(digest_param)
    raw_range = request.headers.get("Content-Range")
    content_range = parse_content_range(raw_range) if raw_range else None
    chunks = body_chunks(request) if has_body(request) else None
    with request.app[metrics_key].uploads_in_flight.track_inprogress():
        await request.app[uploads_key].finish(
            name, upload_id, digest, chunks, content_range, request.content_length
        )
    return _blob_created(name, str(digest))


async def cancel_upload(request: web.Request) -> web.Response:
    name = await repository(request, Action.PUSH)
    await request.app[uploads_key].cancel(name, request.match_info["upload_id"])
    return web.Response(status=204)
