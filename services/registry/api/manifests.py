"""``/v2/<name>/manifests/<reference>``: get, put and delete manifests and tags."""

from __future__ import annotations

from aiohttp import web

from services.registry.api.common import DOCKER_CONTENT_DIGEST, repository
from services.registry.identity.roles import Action
from services.registry.keys import principal_key, registry_key
from shared.oci import errors
from shared.oci.manifest import MAX_MANIFEST_BYTES
from shared.oci.names import Reference


async def get_manifest(request: web.Request) -> web.Response:
    name = await repository(request, Action.PULL)
    text = request.match_info["reference"]
    try:
        reference = Reference.parse(text)
    except (errors.ManifestInvalid, errors.DigestInvalid) as exc:
        # Only a PUT is told its reference is malformed; a read of one finds nothing, as
        # with Distribution (the conformance suite asks for .INVALID_MANIFEST_NAME).
        raise errors.ManifestUnknown(detail={"reference": text[:200]}) from exc
    manifest = await request.app[registry_key].manifest(name, reference)
    headers = {
        "Content-Type": manifest.media_type,
        DOCKER_CONTENT_DIGEST: manifest.digest,
        "ETag": f'"{manifest.digest}"',
    }
    # For HEAD aiohttp sends the headers (Content-Length included) and not the body.
    return web.Response(body=manifest.content, headers=headers)


async def put_manifest(request: web.Request) -> web.Response:
    name = await repository(request, Action.PUSH)
    reference = Reference.parse(request.match_info["reference"])
    if request.content_length is not None and request.content_length > MAX_MANIFEST_BYTES:
        raise errors.ManifestTooLarge(detail={"limit": MAX_MANIFEST_BYTES})
    content = await _read_limited(request, MAX_MANIFEST_BYTES)
    manifest = await request.app[registry_key].put_manifest(
        name,
        reference,
        content,
        request.headers.get("Content-Type"),
        actor=request[principal_key].username,
    )
    headers = {
        "Location": f"/v2/{name}/manifests/{manifest.digest}",
        DOCKER_CONTENT_DIGEST: manifest.digest,
        "Content-Length": "0",
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = manifest.subject
    return web.Response(status=201, headers=headers)


async def _read_limited(request: web.Request, limit: int) -> bytes:
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise errors.ManifestTooLarge(detail={"limit": limit})
    return bytes(body)


async def delete_manifest(request: web.Request) -> web.Response:
    name = await repository(request, Action.DELETE)
    reference = Reference.parse(request.match_info["reference"])
    await request.app[registry_key].delete_manifest(
        name, reference, actor=request[principal_key].username
    )
    return web.Response(status=202)
