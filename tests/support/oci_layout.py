"""OCI image layout directories written and read by hand, for tools that take ``oci:<dir>``."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    canonical,
    descriptor,
    digest_of,
)

REF_NAME = "org.opencontainers.image.ref.name"


def tar_of(files: dict[str, bytes]) -> bytes:
    """A reproducible uncompressed tar holding ``files`` (path → content)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def untar(data: bytes) -> dict[str, bytes]:
    """The regular files of a (possibly gzipped) tar, by path without a leading ``./``."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member) if member.isfile() else None
            if extracted is not None:
                files[member.name.removeprefix("./")] = extracted.read()
    return files


@dataclass
class LayoutWriter:
    """Writes blobs and a top-level ``index.json`` into an OCI image layout directory."""

    root: Path

    def __post_init__(self) -> None:
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
        (self.root / "blobs" / "sha256" / digest_of(data).removeprefix("sha256:")).write_bytes(data)
        return descriptor(media_type, data, **extra)

    def image(self, architecture: str, files: dict[str, bytes], **extra: Any) -> dict[str, Any]:
        """Write a one-layer image for linux/``architecture``; return its manifest descriptor."""
        layer = tar_of(files)
        config = canonical(
            {
                "architecture": architecture,
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
            }
        )
        manifest = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": self.blob(OCI_CONFIG, config),
                "layers": [self.blob(OCI_LAYER, gzip.compress(layer, mtime=0))],
            }
        )
        return self.blob(OCI_MANIFEST, manifest, **extra)

    def index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        """Write an image index over ``manifests``; return its descriptor."""
        body = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
        return self.blob(OCI_INDEX, body)

    def tag(self, name: str, target: dict[str, Any]) -> None:
        """Make ``target`` reachable as ``oci:<root>:<name>`` through ``index.json``."""
        annotated = {**target, "annotations": {REF_NAME: name}}
        top = {"schemaVersion": 2, "manifests": [annotated]}
        (self.root / "index.json").write_text(json.dumps(top))


def tagged_descriptor(root: Path, name: str) -> dict[str, Any]:
    """The descriptor ``index.json`` of the layout at ``root`` gives for reference ``name``."""
    top = json.loads((root / "index.json").read_text())
    matches = [d for d in top["manifests"] if d.get("annotations", {}).get(REF_NAME) == name]
    assert len(matches) == 1, f"{name!r} in {root}/index.json: {top}"
    found: dict[str, Any] = matches[0]
    return found


def read_blob(root: Path, digest: str) -> bytes:
    return (root / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()
