"""Pushing and pulling blobs the way docker does, with ``curl`` carrying the bytes.

Control requests (start and finish an upload, put a manifest) are small and go through
``requests``; every large body travels through a ``curl`` process, which streams at C speed so
the client is never what a throughput figure measures.
"""

from __future__ import annotations

import os
import subprocess
from typing import IO
from urllib.parse import urljoin

import requests

from tests.bench.errors import BenchError
from tests.bench.payloads import Payload, RepeatedPayload
from tests.bench.registries import RegistryUnderTest
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical, descriptor, digest_of

# -sS: quiet but say why it failed; -g: digests and brackets in URLs are not globs.
CURL = ("curl", "--silent", "--show-error", "--globoff", "--max-time", "600")
# docker's client never waits for "100 Continue"; curl would, for a round trip per upload.
NO_EXPECT = ("-H", "Expect:")
CONTROL_TIMEOUT_SECONDS = 300


def push(registry: RegistryUnderTest, repo: str, payload: Payload) -> None:
    """POST a session, PATCH the whole file into it, PUT it closed with its digest."""
    location = start_upload(registry, repo)
    location = _patch(registry, location, ["--upload-file", str(payload.path)])
    finish_upload(registry, location, payload.digest)


def push_stream(registry: RegistryUnderTest, repo: str, payload: RepeatedPayload) -> None:
    """Like ``push``, with the body piped in chunked, as docker sends a layer it is compressing."""
    location = start_upload(registry, repo)
    source = subprocess.Popen(
        ["cat", *[str(payload.pattern)] * payload.repeats], stdout=subprocess.PIPE
    )
    assert source.stdout is not None
    try:
        location = _patch(registry, location, ["--upload-file", "-"], stdin=source.stdout)
    finally:
        # Closing our end lets ``cat`` die of SIGPIPE should curl have stopped reading early.
        source.stdout.close()
        source.wait()
    finish_upload(registry, location, payload.digest)


def pull(registry: RegistryUnderTest, repo: str, digest: str, size: int) -> None:
    """GET the blob into /dev/null, checking that all of it came."""
    written = _curl(
        registry,
        [
            *registry.header_args(),
            "--output", "/dev/null",
            "--write-out", "%{http_code} %{size_download}",
            f"{registry.url}/v2/{repo}/blobs/{digest}",
        ]
    )  # fmt: skip
    if written != f"200 {size}":
        raise BenchError(f"{registry.name}: GET {digest} gave {written!r}, wanted 200 {size}")


def push_image(registry: RegistryUnderTest, repo: str, tag: str) -> None:
    """A small image (config, one layer, an OCI manifest) for the manifest workload."""
    config = canonical({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    layer = os.urandom(4096)
    for blob in (config, layer):
        finish_upload(registry, start_upload(registry, repo), digest_of(blob), blob)
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer)],
        }
    )
    response = requests.put(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        data=manifest,
        headers={**registry.headers, "Content-Type": OCI_MANIFEST},
        timeout=CONTROL_TIMEOUT_SECONDS,
    )
    _expect(registry, response, 201)


def start_upload(registry: RegistryUnderTest, repo: str) -> str:
    """A new upload session's absolute URL."""
    response = requests.post(
        f"{registry.url}/v2/{repo}/blobs/uploads/",
        headers=registry.headers,
        timeout=CONTROL_TIMEOUT_SECONDS,
    )
    _expect(registry, response, 202)
    return urljoin(registry.url, response.headers["Location"])


def finish_upload(
    registry: RegistryUnderTest, location: str, digest: str, body: bytes = b""
) -> None:
    separator = "&" if "?" in location else "?"
    response = requests.put(
        f"{location}{separator}digest={digest}",
        data=body,
        headers={**registry.headers, "Content-Type": "application/octet-stream"},
        timeout=CONTROL_TIMEOUT_SECONDS,
    )
    _expect(registry, response, 201)
    if response.headers.get("Docker-Content-Digest") != digest:
        raise BenchError(f"{registry.name}: stored {response.headers!r}, expected {digest}")


def _patch(
    registry: RegistryUnderTest,
    location: str,
    source: list[str],
    stdin: IO[bytes] | None = None,
) -> str:
    """PATCH a body into the session; return where the session continues.

    Distribution keeps the session's state in the URL, so the next request must use the
    Location of this response, not the one it was sent to.
    """
    written = _curl(
        registry,
        [
            *registry.header_args(),
            *NO_EXPECT,
            "-H", "Content-Type: application/octet-stream",
            "--request", "PATCH",
            *source,
            "--output", "/dev/null",
            "--write-out", "%{http_code} %header{location}",
            location,
        ],
        stdin=stdin,
    )  # fmt: skip
    status, _, next_location = written.partition(" ")
    if status != "202":
        raise BenchError(f"{registry.name}: PATCH {location} answered {status}")
    return urljoin(location, next_location) if next_location else location


def _curl(registry: RegistryUnderTest, args: list[str], stdin: IO[bytes] | None = None) -> str:
    """curl's ``--write-out`` text; a transport failure is a BenchError."""
    result = subprocess.run(
        [*CURL, *args], stdin=stdin, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BenchError(
            f"{registry.name}: curl failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout.strip()


def _expect(registry: RegistryUnderTest, response: requests.Response, status: int) -> None:
    if response.status_code != status:
        raise BenchError(
            f"{registry.name}: {response.request.method} {response.url} answered"
            f" {response.status_code}, wanted {status}: {response.text[:300]}"
        )
