"""The packages model: package files in and out of the feed.

An uploaded ``<id>.<version>.<zip|tar.gz|tgz>`` becomes an OCI artifact in
``<space>/packages/<id>`` tagged ``<version>`` (``shared.packages``), so OCI clients can push
and pull packages as well, and a package pushed with oras downloads here too. An SDI whose
``sdi.yaml`` a build would refuse is refused here, before anything of it is visible
(``sdi_check``, in child processes of the ``SdiScanner``; a package pushed with an OCI client
is not judged).

An upload's file name is read as the deployment server reads package files (the version
starts at the first dot-separated number), with one refusal more (``misread_name``): a
name such as ``myapp-1.0.0.zip``, with no dot between id and version, would otherwise start
a package ``myapp-1`` at version ``0.0``, which nobody meant. A package the feed holds
already keeps taking versions so named (``web-7.1.2.zip`` into an existing ``web-7``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO, Any

from services.registry.management.errors import Conflict, Invalid, NotFound
from services.registry.management.sdi_check import ScanLimits, SdiRefused, SdiScanner
from services.registry.registry import BlobHandle, Registry
from services.registry.uploads import Uploads
from shared.events.envelope import image_reference
from shared.metadata.ports import Metadata
from shared.oci import errors
from shared.oci import media_types as mt
from shared.oci.digest import Digest
from shared.oci.names import Reference, RepositoryName, parse_tag
from shared.packages import (
    ARTIFACT_TYPE,
    EXTENSIONS,
    TITLE,
    PackageFile,
    extension_of,
    package_layer,
    parse_package_filename,
)

EMPTY_CONFIG = b"{}"
# An id ending in a number after a dash or underscore: the number may be the version's.
_NUMBERED_ID = re.compile(r"(?P<stem>.+)[-_](?P<number>[0-9]+)")
# Release numbers a version written out in full has (major.minor.patch).
_FULL_RELEASE = 3


class PackageExists(Conflict):
    """The version is in the feed already; the client may replace it (``?replace=true``, or
    ``spacedock package upload --replace``)."""

    code = "PACKAGE_EXISTS"


def uploaded_package(filename: str) -> PackageFile:
    """The package an uploaded file is (``<id>.<version>.<zip|tar.gz|tgz>``)."""
    return parse_package_filename(filename)


def misread_name(package: PackageFile) -> str | None:
    """Why ``package``'s file name reads better as ``<id>-<version>``, or None: an id that ends
    in ``-<number>`` (or ``_<number>``) followed by a version of fewer than three release
    numbers, as ``myapp-1.0.0.zip`` (``myapp-1`` ``0.0``). ``web-7.1.2.0.zip`` (``web-7``
    ``1.2.0``) and every name whose id ends otherwise read as they always did."""
    numbered = _NUMBERED_ID.fullmatch(package.id)
    release = re.match(r"[0-9]+(?:\.[0-9]+)*", package.version)
    assert release is not None  # parse_package_filename starts a version at a number
    if numbered is None or release.group().count(".") + 1 >= _FULL_RELEASE:
        return None
    filename = f"{package.id}.{package.version}{package.extension}"
    meant = f"{numbered['stem']}.{numbered['number']}.{package.version}{package.extension}"
    return (
        f"{filename} would be package {package.id!r} version {package.version!r}: a "
        f"package file is named <id>.<version>.<zip|tar.gz|tgz>, with a dot between id "
        f"and version (e.g. {meant})"
    )


@dataclass(frozen=True, slots=True)
class StoredPackage:
    package: PackageFile
    repository: RepositoryName
    tag: str
    digest: str  # the manifest's
    size: int  # the archive's
    reference: str  # what ``docker pull`` and friends take


@dataclass(frozen=True, slots=True)
class PackageDownload:
    blob: BlobHandle
    filename: str
    content_type: str


class Packages:
    def __init__(
        self,
        metadata: Metadata,
        registry: Registry,
        uploads: Uploads,
        *,
        scanner: SdiScanner,
        limits: ScanLimits,
        public_host: str,
    ) -> None:
        self.metadata = metadata
        self.registry = registry
        self.uploads = uploads
        self.scanner = scanner
        self.limits = limits
        self.public_host = public_host

    async def upload(
        self,
        space: str,
        package: PackageFile,
        content: AsyncIterator[bytes],
        *,
        replace: bool,
        actor: str | None,
    ) -> StoredPackage:
        """Store ``content`` as ``package`` in ``space``. An existing version is a conflict
        unless ``replace``; ``content`` is not read until that is settled."""
        name, tag = _location(space, package)
        misread = misread_name(package)
        # A package the feed holds already keeps taking versions named as its first ones were.
        if misread and not await self.metadata.images.repository_exists(name.full):
            raise Invalid(misread)
        if not replace and await self.metadata.images.get_tag(name.full, tag) is not None:
            raise PackageExists(
                f"{package.id} {package.version} already exists in {space}; "
                "upload with ?replace=true to replace it",
                detail={"space": space, "id": package.id, "version": package.version},
            )
        digest, size = await self._store_judged(name, content, package)
        config_digest, _ = await self.uploads.put_stream(name, _single(EMPTY_CONFIG))
        manifest = await self.registry.put_manifest(
            name,
            Reference(tag=tag),
            _manifest(package, digest, size, config_digest),
            mt.OCI_MANIFEST,
            actor=actor,
        )
        reference = image_reference(self.public_host, name.full, tag, manifest.digest)
        return StoredPackage(package, name, tag, manifest.digest, size, reference)

    async def download(self, space: str, package_id: str, version: str) -> PackageDownload:
        """The archive of ``package_id`` ``version`` and the file name it goes by."""
        missing = NotFound(f"package {package_id} {version} does not exist in {space}")
        try:
            name = RepositoryName.parse(f"{space}/packages/{package_id.lower()}")
            reference = Reference(tag=parse_tag(version))
        except errors.RegistryError as exc:
            raise missing from exc
        try:
            manifest = await self.registry.manifest(name, reference)
            layer = package_layer(json.loads(manifest.content))
            if layer is None:
                raise Conflict(f"{name.full}:{version} is not a package (no single archive layer)")
            blob = await self.registry.blob(name, Digest.parse(str(layer["digest"])))
        except (errors.ManifestUnknown, errors.BlobUnknown, errors.DigestInvalid) as exc:
            raise missing from exc
        title = (layer.get("annotations") or {}).get(TITLE) or ""
        extension = extension_of(str(title)) or (
            ".zip" if layer.get("mediaType") == "application/zip" else ".tar.gz"
        )
        return PackageDownload(blob, f"{package_id}.{version}{extension}", EXTENSIONS[extension])

    async def _store_judged(
        self, name: RepositoryName, chunks: AsyncIterator[bytes], package: PackageFile
    ) -> tuple[Digest, int]:
        """Stage the file while keeping a local copy, judge the copy as an SDI, and only then
        link the blob: a refused SDI leaves nothing behind, not even an empty repository."""
        copy = await asyncio.to_thread(_scratch_file)
        try:
            upload = await self.uploads.start(name)
            try:
                hasher = hashlib.sha256()
                copied = _copied(chunks, copy, hasher)
                await self.uploads.append(name, upload.id, copied, None, None)
                await self._judge(copy, package)
                digest = Digest.parse(f"sha256:{hasher.hexdigest()}")
                return digest, await self.uploads.finish(name, upload.id, digest, None)
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.uploads.cancel(name, upload.id)
                raise
        finally:
            await asyncio.to_thread(copy.close)

    async def _judge(self, copy: IO[bytes], package: PackageFile) -> None:
        """A refused SDI is a 422 with the build's message (its code in ``detail``). A child
        process reads the copy by its name; a request given up kills it."""
        await asyncio.to_thread(copy.flush)
        try:
            await self.scanner.check(copy.name, package.extension, self.limits)
        except SdiRefused as exc:
            raise Invalid(str(exc), detail={"build_error": exc.code}) from exc


def _location(space: str, package: PackageFile) -> tuple[RepositoryName, str]:
    """Where ``package`` lives in ``space``: its repository and tag."""
    try:
        name = RepositoryName.parse(f"{space}/{package.repository}")
    except errors.NameInvalid as exc:
        raise Invalid(f"package id {package.id!r} cannot name a repository") from exc
    try:
        tag = parse_tag(package.version)
    except errors.RegistryError as exc:
        raise Invalid(f"version {package.version!r} cannot be a tag (no '+' metadata)") from exc
    return name, tag


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
    """The artifact manifest of a package: its archive as the one layer, under its file
    name, and an empty config."""
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
