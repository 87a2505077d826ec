"""One image or index: platforms, layers, how it runs, what refers to it, how to pull it."""

from __future__ import annotations

from collections import defaultdict

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import registry_key, settings_key
from services.registry.management.guard import space_with_role
from services.registry.ui.image_view import (
    MAX_CONFIG_BYTES,
    ImageConfig,
    ManifestView,
    image_config,
    manifest_view,
    wants_config,
)
from services.registry.ui.render import page
from services.registry.ui.repositories import repository_name, repository_path
from shared.metadata.images import StoredManifest
from shared.oci import errors
from shared.oci.digest import Digest
from shared.oci.names import Reference, RepositoryName

UNTYPED_ARTIFACT = "(no artifact type)"


async def manifest_page(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.READER)
    name = repository_name(space.id, request.match_info["repository"])
    digest = Digest.parse(request.match_info["digest"])
    registry = request.app[registry_key]
    manifest = await registry.manifest(name, Reference(digest=digest))
    view = manifest_view(manifest.content, manifest.media_type)
    referrers = await registry.referrers(name, digest, None)
    public_host = request.app[settings_key].public_host
    return page(
        request,
        "manifest.html",
        space=space,
        name=name,
        repository_path=repository_path(name),
        digest=str(digest),
        manifest=manifest,
        view=view,
        config=await _config(request, name, view),
        referrers=_by_artifact_type(referrers),
        pull_command=f"docker pull {public_host}/{name.full}@{digest}",
    )


async def _config(
    request: web.Request, name: RepositoryName, view: ManifestView
) -> ImageConfig | None:
    """The image config, read from storage when it is one and small enough."""
    if view.config is None or not wants_config(view):
        return None
    registry = request.app[registry_key]
    try:
        blob = await registry.blob(name, Digest.parse(view.config.digest))
    except errors.BlobUnknown:  # an artifact's config need not be uploaded
        return None
    # The size the manifest declares is the pusher's word; what is stored decides what is read.
    if blob.size != view.config.size or blob.size > MAX_CONFIG_BYTES:
        return None
    chunks = [chunk async for chunk in registry.store.read(blob.digest, 0, blob.size)]
    return image_config(b"".join(chunks))


def _by_artifact_type(
    referrers: list[StoredManifest],
) -> list[tuple[str, list[StoredManifest]]]:
    """Signatures, SBOMs and the like, grouped by what they are."""
    groups: defaultdict[str, list[StoredManifest]] = defaultdict(list)
    for referrer in referrers:
        kind = referrer.artifact_type or referrer.config_media_type or UNTYPED_ARTIFACT
        groups[kind].append(referrer)
    return sorted(groups.items())
