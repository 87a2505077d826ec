"""``/api/v1/spaces/{space}/packages``: package files in and out of the feed.

An uploaded ``<id>.<version>.<zip|tar.gz|tgz>`` becomes an OCI artifact in
``<space>/packages/<id>`` tagged ``<version>`` (``shared.packages``), so OCI clients can push
and pull packages as well, and a package pushed with oras downloads here too. An SDI whose
``sdi.yaml`` a build would refuse is refused here, before anything of it is visible
(``sdi_check``, in child processes of the app's ``SdiScanner``; a package pushed with an OCI
client is not judged).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any

from aiohttp import BodyPartReader, MultipartReader, web

from services.registry.api.blobs import send_blob
from services.registry.identity.roles import Role
from services.registry.keys import (
    metadata_key,
    principal_key,
    registry_key,
    settings_key,
    uploads_key,
)
from services.registry.management.errors import ApiError, Conflict, Invalid, NotFound
from services.registry.management.feed import versions_response
from services.registry.management.guard import space_with_role
from services.registry.management.requests import bool_param
from services.registry.management.sdi_check import ScanLimits, SdiRefused, SdiScanner
from services.registry.uploads import Uploads
from shared.events.envelope import image_reference
from shared.oci import errors
from shared.oci import media_types as mt
from shared.oci.digest import Digest
from shared.oci.names import Reference, RepositoryName, parse_tag
from shared.packages import (
    ARTIFACT_TYPE,
    EXTENSIONS,
    TITLE,
    PackageFile,
    PackageNameInvalid,
    extension_of,
    package_layer,
    parse_package_filename,
)

READ_CHUNK = 1024 * 1024
EMPTY_CONFIG = b"{}"
# What each archive format starts with: anything else is not the package it claims to be.
MAGIC = {".zip": (b"PK\x03\x04", b"PK\x05\x06"), ".tar.gz": (b"\x1f\x8b",), ".tgz": (b"\x1f\x8b",)}

sdi_scanner_key = web.AppKey("sdi_scanner", SdiScanner)


async def sdi_scanner_context(app: web.Application) -> AsyncIterator[None]:
    """The app's ``SdiScanner`` (for ``app.cleanup_ctx``): its children stop with the app."""
    scanner = SdiScanner()
    app[sdi_scanner_key] = scanner
    yield
    scanner.close()


def _scanner(app: web.Application) -> SdiScanner:
    return app[sdi_scanner_key]


async def upload_package(request: web.Request) -> web.Response:
    space = (await space_with_role(request, Role.WRITER))["_id"]
    replace = bool_param(request, "replace", False)
    reader, part = await _file_part(request)
    package = _package(part.filename)
    name, tag = _location(space, package)
    registry = request.app[registry_key]
    if not replace and await request.app[metadata_key].get_tag(name.full, tag) is not None:
        raise Conflict(
            f"{package.id} {package.version} already exists in {space}; "
            "upload with ?replace=true to replace it"
        )
    uploads = request.app[uploads_key]
    settings = request.app[settings_key]
    limits = ScanLimits(settings.build_max_files, settings.build_max_extract_bytes)
    digest, size = await _store_judged(
        uploads,
        name,
        _checked_chunks(reader, part, package),
        package,
        _Judge(_scanner(request.app), limits),
    )
    config_digest, _ = await uploads.put_stream(name, _single(EMPTY_CONFIG))
    content = _manifest(package, digest, size, config_digest)
    manifest = await registry.put_manifest(
        name, Reference(tag=tag), content, mt.OCI_MANIFEST, actor=request[principal_key].username
    )
    public_host = request.app[settings_key].public_host
    return web.json_response(
        {
            "id": package.id,
            "version": package.version,
            "repository": name.full,
            "tag": tag,
            "digest": manifest.digest,
            "size": size,
            "reference": image_reference(public_host, name.full, tag, manifest.digest),
        },
        status=201,
        headers={"Location": f"/api/v1/spaces/{space}/packages/{package.id}/{tag}"},
    )


async def list_package_versions(request: web.Request) -> web.Response:
    space = (await space_with_role(request, Role.READER))["_id"]
    return await versions_response(request, space, f"packages/{request.match_info['id'].lower()}")


async def download_package(request: web.Request) -> web.StreamResponse:
    space = (await space_with_role(request, Role.READER))["_id"]
    package_id, version = request.match_info["id"], request.match_info["version"]
    missing = NotFound(f"package {package_id} {version} does not exist in {space}")
    try:
        name = RepositoryName.parse(f"{space}/packages/{package_id.lower()}")
        reference = Reference(tag=parse_tag(version))
    except errors.RegistryError as exc:
        raise missing from exc
    registry = request.app[registry_key]
    try:
        manifest = await registry.manifest(name, reference)
        layer = package_layer(json.loads(manifest.content))
        if layer is None:
            raise Conflict(f"{name.full}:{version} is not a package (no single archive layer)")
        blob = await registry.blob(name, Digest.parse(str(layer["digest"])))
    except (errors.ManifestUnknown, errors.BlobUnknown, errors.DigestInvalid) as exc:
        raise missing from exc
    title = (layer.get("annotations") or {}).get(TITLE) or ""
    extension = extension_of(str(title)) or (
        ".zip" if layer.get("mediaType") == "application/zip" else ".tar.gz"
    )
    filename = f"{package_id}.{version}{extension}"
    return await send_blob(
        request,
        blob,
        {
            "Content-Type": EXTENSIONS[extension],
            "Content-Disposition": f'attachment; filename="{filename}"',
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
        return parse_package_filename(filename or "")
    except PackageNameInvalid as exc:
        raise Invalid(str(exc)) from exc


def _location(space: str, package: PackageFile) -> tuple[RepositoryName, str]:
    try:
        name = RepositoryName.parse(f"{space}/{package.repository}")
    except errors.NameInvalid as exc:
        raise Invalid(f"package id {package.id!r} cannot name a repository") from exc
    try:
        tag = parse_tag(package.version)
    except errors.RegistryError as exc:
        raise Invalid(f"version {package.version!r} cannot be a tag (no '+' metadata)") from exc
    return name, tag


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


@dataclass(frozen=True, slots=True)
class _Judge:
    scanner: SdiScanner
    limits: ScanLimits

    async def __call__(self, copy: IO[bytes], package: PackageFile) -> None:
        """A refused SDI is a 422 with the build's message (its code in ``detail``). A child
        process reads the copy by its name; a request given up kills it."""
        await asyncio.to_thread(copy.flush)
        try:
            await self.scanner.check(copy.name, package.extension, self.limits)
        except SdiRefused as exc:
            raise Invalid(str(exc), detail={"build_error": exc.code}) from exc


async def _store_judged(
    uploads: Uploads,
    name: RepositoryName,
    chunks: AsyncIterator[bytes],
    package: PackageFile,
    judge: _Judge,
) -> tuple[Digest, int]:
    """Stage the file while keeping a local copy, judge the copy as an SDI, and only then
    link the blob: a refused SDI leaves nothing behind, not even an empty repository."""
    copy = await asyncio.to_thread(_scratch_file)
    try:
        upload = await uploads.start(name)
        try:
            hasher = hashlib.sha256()
            await uploads.append(name, upload.id, _copied(chunks, copy, hasher), None, None)
            await judge(copy, package)
            digest = Digest.parse(f"sha256:{hasher.hexdigest()}")
            return digest, await uploads.finish(name, upload.id, digest, None)
        except BaseException:
            with contextlib.suppress(Exception):
                await uploads.cancel(name, upload.id)
            raise
    finally:
        await asyncio.to_thread(copy.close)


def _scratch_file() -> IO[bytes]:
    """A file the scanning child opens by its name, removed when closed."""
    return tempfile.NamedTemporaryFile(prefix="spacedock-package-")


async def _copied(
    chunks: AsyncIterator[bytes], copy: IO[bytes], hasher: hashlib._Hash
) -> AsyncIterator[bytes]:
    def keep(chunk: bytes) -> None:
        copy.write(chunk)
        hasher.update(chunk)

    async for chunk in chunks:
        await asyncio.to_thread(keep, chunk)
        yield chunk


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _manifest(package: PackageFile, digest: Digest, size: int, config: Digest) -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": str(config), "size": len(EMPTY_CONFIG)},
        "layers": [
            {
                "mediaType": package.layer_media_type,
                "digest": str(digest),
                "size": size,
                "annotations": {TITLE: package.filename},
            }
        ],
        "annotations": {
            "io.spacedock.package.id": package.id,
            "io.spacedock.package.version": package.version,
        },
    }
    return json.dumps(document, separators=(",", ":")).encode()
