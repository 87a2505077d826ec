"""The builder's view of the registry: the OCI API and the feed, over HTTP, with Basic
credentials (no token round trips to manage): the service account's API key only to obtain
each build's credential, and that credential, confined to the build's space, for the rest."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from shared.oci import media_types as mt

ACCEPT_MANIFESTS = ", ".join(
    [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST]
)
CHUNK = 1024 * 1024


class RegistryRefused(Exception):
    """The registry answered with an error; ``status`` and the body's message say which."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class Manifest:
    content: bytes
    media_type: str
    digest: str

    def json(self) -> dict[str, Any]:
        value = json.loads(self.content)
        if not isinstance(value, dict):
            raise RegistryRefused(500, "manifest is not a JSON object")
        return value


class RegistryClient:
    def __init__(self, base_url: str, username: str, secret: str) -> None:
        self.base = base_url.rstrip("/")
        token = base64.b64encode(f"{username}:{secret}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RegistryClient:
        self._session = aiohttp.ClientSession(
            headers=self._headers, timeout=aiohttp.ClientTimeout(total=None, sock_read=300)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use the client as an async context manager")
        return self._session

    # OCI ---------------------------------------------------------------------------------

    async def manifest(self, repository: str, reference: str) -> Manifest:
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        async with self.session.get(url, headers={"Accept": ACCEPT_MANIFESTS}) as response:
            await _check(response)
            content = await response.read()
            media_type = response.headers.get("Content-Type", "").split(";")[0]
        return Manifest(content, media_type, "sha256:" + hashlib.sha256(content).hexdigest())

    async def manifest_status(self, repository: str, reference: str) -> int:
        """What the registry answers when asked whether the manifest is there (HEAD): 200,
        or the refusal's status. Nothing is fetched."""
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        async with self.session.head(url, headers={"Accept": ACCEPT_MANIFESTS}) as response:
            return response.status

    async def blob(self, repository: str, digest: str) -> bytes:
        async with self.session.get(f"{self.base}/v2/{repository}/blobs/{digest}") as response:
            await _check(response)
            return await response.read()

    async def has_blob(self, repository: str, digest: str) -> bool:
        async with self.session.head(f"{self.base}/v2/{repository}/blobs/{digest}") as response:
            return response.status == 200

    async def mount(self, repository: str, digest: str, source: str) -> bool:
        """Link a blob from ``source`` without moving bytes; False when the registry
        offered an upload instead (which is cancelled)."""
        url = f"{self.base}/v2/{repository}/blobs/uploads/"
        params = {"mount": digest, "from": source}
        async with self.session.post(url, params=params) as response:
            if response.status == 201:
                return True
            await _check(response)
            location = response.headers.get("Location")
        if location:
            async with self.session.delete(self._absolute(location)):
                pass
        return False

    async def upload(
        self, repository: str, digest: str, path: Path | None = None, data: bytes | None = None
    ) -> None:
        """A blob in one request (``?digest=``), streamed from ``path`` or sent from memory,
        unless the repository holds it already: a build for another deployment mostly
        re-pushes what the last one did, and asking costs the registry far less than an
        upload (which reserves and links the blob)."""
        size = len(data) if data is not None else (path.stat().st_size if path else 0)
        if await self.has_blob(repository, digest):
            return
        url = f"{self.base}/v2/{repository}/blobs/uploads/"
        body: Any = data if data is not None else _file_chunks(path)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        async with self.session.post(
            url, params={"digest": digest}, data=body, headers=headers
        ) as response:
            await _check(response)

    async def put_manifest(self, repository: str, tag: str, content: bytes, media_type: str) -> str:
        url = f"{self.base}/v2/{repository}/manifests/{tag}"
        async with self.session.put(
            url, data=content, headers={"Content-Type": media_type}
        ) as response:
            await _check(response)
            return response.headers.get("Docker-Content-Digest", "")

    async def delete_manifest(self, repository: str, digest: str) -> None:
        async with self.session.delete(
            f"{self.base}/v2/{repository}/manifests/{digest}"
        ) as response:
            if response.status not in (202, 404):
                await _check(response)

    # credentials -------------------------------------------------------------------------

    async def build_credential(self, space: str, ttl_seconds: int) -> tuple[str, str]:
        """A username and password that act in ``space`` alone, for one build."""
        url = f"{self.base}/api/v1/spaces/{_segment(space)}/build-credentials"
        async with self.session.post(url, json={"ttl_seconds": ttl_seconds}) as response:
            await _check(response)
            body = await response.json()
        return str(body["username"]), str(body["password"])

    # the feed ----------------------------------------------------------------------------

    async def package_versions(
        self, space: str, package_id: str, *, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The package's versions, newest first, at most ``limit`` of them."""
        url = (
            f"{self.base}/api/v1/spaces/{_segment(space)}/packages/{_segment(package_id)}/versions"
        )
        async with self.session.get(url, params={"limit": str(limit)}) as response:
            await _check(response)
            body = await response.json()
        return list(body["versions"])

    async def download_package(
        self, space: str, package_id: str, version: str, target: Path
    ) -> None:
        url = (
            f"{self.base}/api/v1/spaces/{_segment(space)}/packages/{_segment(package_id)}"
            f"/{_segment(version)}"
        )
        async with self.session.get(url) as response:
            await _check(response)
            with target.open("wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    out.write(chunk)

    def _absolute(self, location: str) -> str:
        return location if location.startswith("http") else f"{self.base}{location}"


def _segment(text: str) -> str:
    """One path segment, whatever ``text`` holds (callers validate it first; this keeps a
    ``/`` or ``..`` from ever becoming a path step)."""
    if text in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot be a path segment")
    return quote(text, safe="")


async def _check(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    try:
        body = await response.json(content_type=None)
        errors = body.get("errors") or [body.get("error") or {}]
        message = "; ".join(str(e.get("message") or e.get("code")) for e in errors)
    except (ValueError, AttributeError, aiohttp.ContentTypeError):
        message = response.reason or "error"
    raise RegistryRefused(response.status, message)


async def _file_chunks(path: Path | None) -> AsyncIterator[bytes]:
    if path is None:
        return
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk
