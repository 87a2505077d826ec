"""What the manifest page shows of an image or index, read from its JSON (pure).

Manifests and image configs are tenant content: every field is checked for its type before
it is shown, anything else is left out, and each list is cut at a budget.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shared.oci import media_types as mt
from shared.oci.digest import Digest
from shared.oci.errors import DigestInvalid

# Entries of one list (layers, platforms, env, labels, ports) shown at most.
MAX_ENTRIES = 500
# Image configs larger than this are not read (real ones are a few KiB).
MAX_CONFIG_BYTES = 1024 * 1024
IMAGE_CONFIGS = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})


@dataclass(frozen=True, slots=True)
class Blob:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Platform:
    """A child manifest of an index and the platform it is for."""

    platform: str
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config that say how the image runs."""

    platform: str
    entrypoint: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    labels: list[tuple[str, str]] = field(default_factory=list)
    user: str = ""
    ports: list[str] = field(default_factory=list)
    working_dir: str = ""


@dataclass(frozen=True, slots=True)
class ManifestView:
    media_type: str
    is_index: bool
    config: Blob | None
    layers: list[Blob]
    platforms: list[Platform]
    artifact_type: str | None
    subject: str | None
    annotations: list[tuple[str, str]]
    truncated: bool

    @property
    def layers_size(self) -> int:
        return sum(layer.size for layer in self.layers)


def manifest_view(content: bytes, media_type: str) -> ManifestView:
    """The manifest as the page shows it; the registry validated it when it was pushed."""
    document = json.loads(content)
    if not isinstance(document, dict):
        document = {}
    is_index = media_type in mt.INDEXES
    raw_layers = _list(document.get("layers"))
    raw_children = _list(document.get("manifests"))
    config = _blob(document.get("config"))
    subject = _blob(document.get("subject"))
    artifact_type = document.get("artifactType")
    return ManifestView(
        media_type=media_type,
        is_index=is_index,
        config=config,
        layers=[b for b in map(_blob, raw_layers[:MAX_ENTRIES]) if b is not None],
        platforms=[p for p in map(_platform, raw_children[:MAX_ENTRIES]) if p is not None],
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
        subject=None if subject is None else subject.digest,
        annotations=_pairs(document.get("annotations")),
        truncated=len(raw_layers) > MAX_ENTRIES or len(raw_children) > MAX_ENTRIES,
    )


def wants_config(view: ManifestView) -> bool:
    """Whether the config blob is an image config worth reading."""
    config = view.config
    return (
        config is not None
        and config.media_type in IMAGE_CONFIGS
        and 0 < config.size <= MAX_CONFIG_BYTES
    )


def image_config(content: bytes) -> ImageConfig | None:
    """The run settings of an image config, or None when it is not JSON."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than a parser goes
        return None
    if not isinstance(document, dict):
        return None
    run = document.get("config")
    run = run if isinstance(run, dict) else {}
    ports = run.get("ExposedPorts")
    return ImageConfig(
        platform=_platform_text(document),
        entrypoint=_strings(run.get("Entrypoint")),
        command=_strings(run.get("Cmd")),
        env=_strings(run.get("Env")),
        labels=_pairs(run.get("Labels")),
        user=_text(run.get("User")),
        ports=sorted(k for k in ports if isinstance(k, str))[:MAX_ENTRIES]
        if isinstance(ports, dict)
        else [],
        working_dir=_text(run.get("WorkingDir")),
    )


def _blob(value: Any) -> Blob | None:
    if not isinstance(value, dict):
        return None
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(digest, str) or not _is_digest(digest):
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    return Blob(media_type if isinstance(media_type, str) else "", digest, size)


def _platform(value: Any) -> Platform | None:
    blob = _blob(value)
    if blob is None:
        return None
    platform = value.get("platform")
    text = _platform_text(platform) if isinstance(platform, dict) else ""
    return Platform(text or "unknown", blob.media_type, blob.digest, blob.size)


def _platform_text(document: dict[str, Any]) -> str:
    parts = [document.get("os"), document.get("architecture"), document.get("variant")]
    return "/".join(p for p in parts if isinstance(p, str) and p)


def _is_digest(text: str) -> bool:
    try:
        Digest.parse(text)
    except DigestInvalid:
        return False
    return True


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [item for item in _list(value)[:MAX_ENTRIES] if isinstance(item, str)]


def _pairs(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return []
    pairs = [(k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str)]
    return sorted(pairs)[:MAX_ENTRIES]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
