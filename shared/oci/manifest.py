"""Manifest parsing and validation (image-spec v1.1, Docker schema 2).

The registry stores the exact bytes it was given; this module only decides whether they are
acceptable and which blobs and manifests they reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.oci import media_types as mt
from shared.oci.digest import Digest
from shared.oci.errors import DigestInvalid, ManifestInvalid

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
# The largest size a descriptor may declare: what a signed 64-bit integer holds (OCI says so,
# and MongoDB stores nothing larger).
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    urls: tuple[str, ...] = ()

    @property
    def distributable(self) -> bool:
        """False for foreign layers, which clients fetch from their ``urls``."""
        return self.media_type not in mt.NON_DISTRIBUTABLE_LAYERS and not self.urls


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    digest: str
    size: int
    blobs: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    subject: str | None = None
    artifact_type: str | None = None
    config_media_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    # Bytes of what it references directly (config and layers, or child manifests), as
    # declared by its descriptors; with ``size``, what a feed shows as the image's size.
    referenced_size: int = 0

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES


def parse_manifest(data: bytes, content_type: str | None) -> ParsedManifest:
    """Validate ``data`` as a manifest of ``content_type`` (or its own ``mediaType``)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestInvalid("manifest exceeds 4 MiB")
    try:
        document = json.loads(data)
    except ValueError as exc:  # bad JSON or UTF-8, or an integer too long to convert
        raise ManifestInvalid(
            "manifest is not valid JSON", detail={"reason": str(exc)[:200]}
        ) from exc
    except RecursionError as exc:
        raise ManifestInvalid("manifest JSON is nested too deeply") from exc
    try:  # JSON may escape lone surrogates, which no UTF-8 string (BSON's included) can hold
        json.dumps(document, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise ManifestInvalid("manifest contains invalid Unicode (a lone surrogate)") from exc
    except RecursionError as exc:
        raise ManifestInvalid("manifest JSON is nested too deeply") from exc
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")

    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header_type = mt.base_media_type(content_type)
    media_type = _resolve_media_type(header_type, declared, document)
    if media_type not in mt.MANIFESTS:
        raise ManifestInvalid(
            "unsupported manifest media type", detail={"mediaType": media_type or None}
        )
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")

    digest = str(Digest.of(data))
    annotations = _annotations(document.get("annotations"), "annotations")
    artifact_type = _optional_str(document, "artifactType")
    subject = _subject(document, media_type)
    if media_type in mt.INDEXES:
        children = _descriptor_list(document, "manifests", required=True)
        for child in children:
            if child.media_type not in mt.MANIFESTS:
                raise ManifestInvalid(
                    "index entries must be manifests",
                    detail={"digest": child.digest, "mediaType": child.media_type},
                )
        return ParsedManifest(
            media_type=media_type,
            digest=digest,
            size=len(data),
            manifests=tuple(dict.fromkeys(c.digest for c in children)),
            referenced_size=_total(c.size for c in children),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )

    config = _descriptor(document.get("config"), "config")
    layers = _descriptor_list(document, "layers", required=media_type == mt.DOCKER_MANIFEST)
    blobs = [config.digest, *(layer.digest for layer in layers if layer.distributable)]
    return ParsedManifest(
        media_type=media_type,
        digest=digest,
        size=len(data),
        blobs=tuple(dict.fromkeys(blobs)),
        referenced_size=_total([config.size, *(layer.size for layer in layers)]),
        subject=subject,
        artifact_type=artifact_type,
        config_media_type=config.media_type,
        annotations=annotations,
    )


def _resolve_media_type(header_type: str, declared: str | None, document: dict[str, Any]) -> str:
    if declared and header_type and header_type in mt.MANIFESTS and declared != header_type:
        raise ManifestInvalid(
            "mediaType does not match Content-Type",
            detail={"mediaType": declared, "contentType": header_type},
        )
    if header_type in mt.MANIFESTS:
        return header_type
    if declared:
        return declared
    # OCI manifests may omit mediaType; tell an index from an image by its fields.
    if "manifests" in document:
        return mt.OCI_INDEX
    if "config" in document:
        return mt.OCI_MANIFEST
    return header_type


def _subject(document: dict[str, Any], media_type: str) -> str | None:
    if "subject" not in document:
        return None
    if media_type not in (mt.OCI_MANIFEST, mt.OCI_INDEX):
        raise ManifestInvalid("subject is only allowed in OCI manifests and indexes")
    return _descriptor(document["subject"], "subject").digest


def _descriptor_list(document: dict[str, Any], key: str, *, required: bool) -> list[Descriptor]:
    value = document.get(key)
    if value is None:
        if required:
            raise ManifestInvalid(f"{key} is required")
        return []
    if not isinstance(value, list):
        raise ManifestInvalid(f"{key} must be a list")
    return [_descriptor(item, f"{key}[{i}]") for i, item in enumerate(value)]


def _total(sizes: Iterable[int]) -> int:
    """What the descriptors declare together, which must fit where one size does."""
    total = sum(sizes)
    if total > MAX_SIZE:
        raise ManifestInvalid(f"the sizes of the descriptors add up to more than {MAX_SIZE}")
    return total


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid(f"{where}.mediaType must be a non-empty string")
    raw_digest = value.get("digest")
    if not isinstance(raw_digest, str):
        raise ManifestInvalid(f"{where}.digest must be a string")
    try:
        digest = str(Digest.parse(raw_digest))
    except DigestInvalid as exc:
        raise ManifestInvalid(f"{where}.digest is invalid", detail={"digest": raw_digest}) from exc
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise ManifestInvalid(f"{where}.size must be an integer from 0 to {MAX_SIZE}")
    urls = value.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ManifestInvalid(f"{where}.urls must be a list of strings")
    _annotations(value.get("annotations"), f"{where}.annotations")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid(f"{where}.artifactType must be a string")
    platform = value.get("platform")
    if platform is not None and not (
        isinstance(platform, dict)
        and isinstance(platform.get("architecture"), str)
        and isinstance(platform.get("os"), str)
    ):
        raise ManifestInvalid(f"{where}.platform must have string architecture and os")
    return Descriptor(media_type, digest, size, artifact_type, tuple(urls))


def _annotations(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestInvalid(f"{where} must map strings to strings")
    if any("\x00" in key for key in value):
        raise ManifestInvalid(f"{where} keys must not contain NUL")
    return value


def _optional_str(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestInvalid(f"{key} must be a string")
    return value
