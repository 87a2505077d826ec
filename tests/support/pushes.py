"""Manifest PUTs as the registry hands them to the metadata (``ImageRepository.commit_pushes``),
for tests that record pushes without an HTTP round trip."""

from __future__ import annotations

import json

from shared.events.envelope import image_event
from shared.metadata.images import ManifestPush
from shared.oci.manifest import parse_manifest


def manifest_push(repository: str, content: bytes, tag: str | None) -> ManifestPush:
    """A PUT of ``content`` (an image manifest or an index, by its ``mediaType``) as ``tag`` of
    ``repository`` (None: by digest), with its ``image.pushed`` event."""
    manifest = parse_manifest(content, json.loads(content)["mediaType"])
    event = image_event(
        "image.pushed",
        source="/tests",
        public_host="registry.test",
        repository=repository,
        tag=tag,
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=manifest.size,
        actor=None,
    )
    return ManifestPush(repository, manifest, content, tag, event)
