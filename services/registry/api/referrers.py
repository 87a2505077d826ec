"""``/v2/<name>/referrers/<digest>``: manifests whose ``subject`` is the digest."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from services.registry.api.common import repository
from services.registry.identity.roles import Action
from services.registry.keys import registry_key
from shared.oci import media_types as mt
from shared.oci.digest import Digest


async def list_referrers(request: web.Request) -> web.Response:
    name = await repository(request, Action.PULL)
    subject = Digest.parse(request.match_info["digest"])
    artifact_type = request.query.get("artifactType") or None
    referrers = await request.app[registry_key].referrers(name, subject, artifact_type)
    descriptors: list[dict[str, Any]] = []
    for manifest in referrers:
        descriptor: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": manifest.size,
        }
        kind = manifest.artifact_type or manifest.config_media_type
        if kind is not None:
            descriptor["artifactType"] = kind
        if manifest.annotations:
            descriptor["annotations"] = manifest.annotations
        descriptors.append(descriptor)
    headers = {"Content-Type": mt.OCI_INDEX}
    if artifact_type is not None:
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
    return web.Response(body=json.dumps(index).encode(), headers=headers)
