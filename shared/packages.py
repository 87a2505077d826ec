"""Packages as OCI artifacts (pure): how a package file's name gives its id and version, and
how the package sits in the registry, so the registry, the builder and oras agree.

``mywebapp.1.2.1.zip`` is package ``mywebapp`` version ``1.2.1``, stored in repository
``<space>/packages/mywebapp`` with tag ``1.2.1``: a manifest whose one layer is the archive,
titled with its file name (what ``oras push`` writes too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.oci.errors import NameInvalid
from shared.oci.names import RepositoryName, is_tag
from shared.versions import try_parse_version

ARTIFACT_TYPE = "application/vnd.spacedock.package.v1"
TITLE = "org.opencontainers.image.title"
# The file's own media types, not an image layer's: OCI clients hand the file over as it is
# (oras unpacks a tar+gzip layer into a directory).
EXTENSIONS = {".tar.gz": "application/gzip", ".tgz": "application/gzip", ".zip": "application/zip"}
MAX_FILENAME = 255


class PackageNameInvalid(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PackageFile:
    id: str
    version: str
    extension: str  # ".zip", ".tar.gz" or ".tgz"

    @property
    def filename(self) -> str:
        return f"{self.id}.{self.version}{self.extension}"

    @property
    def repository(self) -> str:
        """The repository path inside a space (repository names are lowercase)."""
        return f"packages/{self.id.lower()}"

    @property
    def layer_media_type(self) -> str:
        return EXTENSIONS[self.extension]


def parse_package_filename(filename: str) -> PackageFile:
    """``<id>.<version>.<zip|tar.gz|tgz>``: the version starts at the first dot-separated
    part that is a number, as the deployment server reads package files."""
    if not filename or len(filename) > MAX_FILENAME or "/" in filename or "\\" in filename:
        raise PackageNameInvalid("a package file name is <id>.<version>.<zip|tar.gz|tgz>")
    extension = next((e for e in EXTENSIONS if filename.lower().endswith(e)), None)
    if extension is None:
        raise PackageNameInvalid("a package is a .zip, .tar.gz or .tgz file")
    parts = filename[: -len(extension)].split(".")
    for start in range(1, len(parts)):
        if parts[start].isdigit() and parts[start].isascii():
            version = ".".join(parts[start:])
            if try_parse_version(version) is not None:
                return PackageFile(".".join(parts[:start]), version, extension)
    raise PackageNameInvalid(
        f"cannot tell the package id from the version in {filename!r}: "
        "expected <id>.<version>.<zip|tar.gz|tgz>, e.g. mywebapp.1.2.0.zip"
    )


def check_package_reference(package_id: str, version: str | None) -> None:
    """A package as a build names it (``sdi.yaml``, a request's ``packages``) obeys the rules
    of the files the feed accepts: ``<id>.<version>.zip`` must read back as this id and
    version, the id must name a repository and the version a tag. Anything else names no
    package that can exist, so it is refused before it reaches a URL or a path."""
    probe = "1.0.0" if version is None else version
    if not (package_id.isascii() and probe.isascii()):  # "\u212a".lower() is "k"
        raise PackageNameInvalid(f"{package_id[:100]!r} {probe[:100]!r} is not plain ASCII")
    try:
        parsed = parse_package_filename(f"{package_id}.{probe}.zip")
        RepositoryName.parse(f"spaces-1/{parsed.repository}")
        if not is_tag(probe):
            raise PackageNameInvalid("not a tag")
    except (PackageNameInvalid, NameInvalid) as exc:
        raise PackageNameInvalid(
            f"{package_id[:100]!r} {probe[:100]!r} is not a package id and version"
        ) from exc
    if (parsed.id, parsed.version) != (package_id, probe):
        raise PackageNameInvalid(
            f"{package_id[:100]!r} {probe[:100]!r} is not a package id and version (a package "
            f"file {package_id[:100]}.{probe[:100]}.zip would read as {parsed.id[:100]!r} "
            f"{parsed.version[:100]!r})"
        )


def package_layer(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The archive layer of a package manifest: the one titled as a package file, or the
    only layer."""
    layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
    for layer in layers:
        title = (layer.get("annotations") or {}).get(TITLE, "")
        if isinstance(title, str) and title.lower().endswith(tuple(EXTENSIONS)):
            return layer
    return layers[0] if len(layers) == 1 else None


def extension_of(title: str) -> str | None:
    return next((e for e in EXTENSIONS if title.lower().endswith(e)), None)
