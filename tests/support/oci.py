"""A small OCI Distribution client over requests, for protocol-level tests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(data), "size": len(data), **extra}


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class Client:
    base: str
    session: requests.Session

    @classmethod
    def for_registry(cls, url: str, auth: tuple[str, str] | None) -> Client:
        session = requests.Session()
        if auth is not None:
            session.auth = auth
        return cls(url, session)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, self.url(path), **kwargs)

    def push_blob(self, repo: str, data: bytes) -> str:
        digest = digest_of(data)
        response = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, data=data
        )
        assert response.status_code == 201, response.text
        return digest

    def put_manifest(
        self, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> requests.Response:
        return self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type},
        )

    def push_image(
        self,
        repo: str,
        tag: str | None,
        layers: list[bytes],
        *,
        config: bytes | None = None,
        **fields: Any,
    ) -> tuple[str, bytes]:
        """Push config, layers and an OCI manifest; return the manifest digest and bytes."""
        config = (
            config if config is not None else canonical({"architecture": "amd64", "os": "linux"})
        )
        self.push_blob(repo, config)
        for layer in layers:
            self.push_blob(repo, layer)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(fields.pop("config_media_type", OCI_CONFIG), config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
            **fields,
        }
        body = canonical(manifest)
        response = self.put_manifest(repo, tag or digest_of(body), body)
        assert response.status_code == 201, response.text
        return digest_of(body), body


def error_codes(response: requests.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]
