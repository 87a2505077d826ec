"""``/api/v1/spaces/{space}/packages``: package files in and out of the feed
(``services.registry.packages``).

The body is read here: the multipart framing, and the first bytes, which must be the archive
the file name's extension promises; the model stores what passes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, MultipartReader, web

from services.registry.api.blobs import send_blob
from services.registry.identity.roles import Role
from services.registry.keys import packages_key, principal_key
from services.registry.management.errors import ApiError, Invalid
from services.registry.management.feed import versions_response
from services.registry.management.guard import space_with_role
from services.registry.management.requests import bool_param
from services.registry.packages import uploaded_package
from shared.packages import PackageFile, PackageNameInvalid

READ_CHUNK = 1024 * 1024
# What each archive format starts with: anything else is not the package it claims to be.
MAGIC = {".zip": (b"PK\x03\x04", b"PK\x05\x06"), ".tar.gz": (b"\x1f\x8b",), ".tgz": (b"\x1f\x8b",)}


async def upload_package(request: web.Request) -> web.Response:
    space = (await space_with_role(request, Role.WRITER)).id
    replace = bool_param(request, "replace", False)
    reader, part = await _file_part(request)
    package = _package(part.filename)
    stored = await request.app[packages_key].upload(
        space,
        package,
        _checked_chunks(reader, part, package),
        replace=replace,
        actor=request[principal_key].username,
    )
    return web.json_response(
        {
            "id": package.id,
            "version": package.version,
            "repository": stored.repository.full,
            "tag": stored.tag,
            "digest": stored.digest,
            "size": stored.size,
            "reference": stored.reference,
        },
        status=201,
        headers={"Location": f"/api/v1/spaces/{space}/packages/{package.id}/{stored.tag}"},
    )


async def list_package_versions(request: web.Request) -> web.Response:
    space = (await space_with_role(request, Role.READER)).id
    return await versions_response(request, space, f"packages/{request.match_info['id'].lower()}")


async def download_package(request: web.Request) -> web.StreamResponse:
    space = (await space_with_role(request, Role.READER)).id
    download = await request.app[packages_key].download(
        space, request.match_info["id"], request.match_info["version"]
    )
    return await send_blob(
        request,
        download.blob,
        {
            "Content-Type": download.content_type,
            "Content-Disposition": f'attachment; filename="{download.filename}"',
        },
    )


async def _file_part(request: web.Request) -> tuple[MultipartReader, BodyPartReader]:
    if not request.content_type.startswith("multipart/"):
        raise ApiError("upload the package as multipart/form-data with the field 'file'")
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise Invalid("the multipart field 'file' is missing")
            if isinstance(part, BodyPartReader) and part.name == "file":
                return reader, part
            await part.release()
    except (ValueError, LookupError) as exc:  # framing, boundary, charset
        raise ApiError(f"malformed multipart body: {exc}") from exc


def _package(filename: str | None) -> PackageFile:
    try:
        return uploaded_package(filename or "")
    except PackageNameInvalid as exc:
        raise Invalid(str(exc)) from exc


async def _checked_chunks(
    reader: MultipartReader, part: BodyPartReader, package: PackageFile
) -> AsyncIterator[bytes]:
    """The file's bytes. The first ones must be what the extension promises, and the body
    must end with its closing boundary: a cut-short upload is refused, not stored."""
    head = b""
    checked = False
    try:
        while chunk := await part.read_chunk(READ_CHUNK):
            if not checked:
                head += chunk
                if len(head) < 4:
                    continue
                if not head.startswith(MAGIC[package.extension]):
                    raise Invalid(f"{package.filename} is not a {package.extension} archive")
                checked, chunk, head = True, head, b""
            yield chunk
        if not checked:
            raise Invalid(f"{package.filename} is empty or too short to be an archive")
        while (rest := await reader.next()) is not None:
            await rest.release()
    except (ValueError, LookupError) as exc:
        raise ApiError(f"malformed multipart body: {exc}") from exc
    if not reader.at_eof():
        raise ApiError("the multipart body ended before its closing boundary")
