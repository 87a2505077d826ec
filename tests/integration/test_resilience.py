"""Outages, crashes and several instances: each test starts the processes it breaks."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from minio import Minio

from tests.support.oci import Client, digest_of, error_codes
from tests.support.processes import (
    Registry,
    Service,
    restart_registry,
    start,
    start_moto,
    start_registry,
    start_secantus,
)

MiB = 1024 * 1024


def restart_secantus(old: Service, workdir: Path) -> Service:
    """The same server again, on the same port and storage."""
    command = [str(arg) for arg in old.process.args]  # type: ignore[union-attr]
    return start(command, old.port, workdir / "secantus-restarted.log")


def test_metadata_outage_gives_503_then_recovers(tmp_path: Path) -> None:
    """With MongoDB unreachable requests get 503 UNAVAILABLE within the timeout; once it is
    back the same process serves again."""
    mongo = start_secantus(tmp_path / "mongo", test_commands=False)
    registry = start_registry(tmp_path / "reg", f"mongodb://127.0.0.1:{mongo.port}/outage")
    client = Client.for_registry(registry.url, registry.auth)
    try:
        client.push_image("spaces-1/outage", "before", [b"x"])
        mongo.stop()
        started = time.monotonic()
        response = client.request("GET", "/v2/spaces-1/outage/manifests/never-cached")
        assert response.status_code == 503
        assert error_codes(response) == ["UNAVAILABLE"]
        assert time.monotonic() - started < 15
        assert requests.get(f"{registry.url}/readyz", timeout=20).status_code == 503

        mongo = restart_secantus(mongo, tmp_path / "mongo")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = client.request("GET", "/v2/spaces-1/outage/manifests/before")
            if response.status_code == 200:
                break
            time.sleep(0.5)
        assert response.status_code == 200
        client.push_image("spaces-1/outage", "after", [b"y"])
    finally:
        registry.stop()
        mongo.stop()


def test_storage_outage_gives_503_then_recovers(tmp_path: Path, mongo_url: str) -> None:
    """With S3 unreachable blob requests get 503; once it is back pushes work again."""
    moto = start_moto(tmp_path / "moto")
    registry = start_registry(
        tmp_path / "reg",
        mongo_url,
        storage="s3",
        s3_endpoint=f"127.0.0.1:{moto.port}",
        bucket="outage",
    )
    client = Client.for_registry(registry.url, registry.auth)
    try:
        digest = client.push_blob("spaces-1/s3-outage", b"stored")
        moto.stop()
        response = client.request("GET", f"/v2/spaces-1/s3-outage/blobs/{digest}")
        assert response.status_code == 503
        assert error_codes(response) == ["UNAVAILABLE"]
        push = client.request(
            "POST",
            "/v2/spaces-1/s3-outage/blobs/uploads/",
            params={"digest": digest_of(b"new")},
            data=b"new",
        )
        assert push.status_code == 503

        moto = start([str(a) for a in moto.process.args], moto.port, tmp_path / "moto2.log")  # type: ignore[union-attr]
        Minio(f"127.0.0.1:{moto.port}", "testing", "testing", secure=False).make_bucket("outage")
        assert client.push_blob("spaces-1/s3-outage", b"new") == digest_of(b"new")
    finally:
        registry.stop()
        moto.stop()


@pytest.fixture
def shared_pair(
    tmp_path: Path, mongo_url: str, s3_endpoint: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Registry, Registry]]:
    """Two registry instances on the same metadata and the same storage."""
    storage = getattr(request, "param", "filesystem")
    bucket = f"pair-{uuid.uuid4().hex[:8]}"
    common = {"storage": storage, "s3_endpoint": s3_endpoint, "bucket": bucket}
    first = start_registry(tmp_path / "a", mongo_url, **common)  # type: ignore[arg-type]
    second = start_registry(
        tmp_path / "b",
        mongo_url,
        extra_env={"SPACEDOCK_DATA_DIR": str(first.data_dir)},
        **common,  # type: ignore[arg-type]
    )
    yield first, second
    first.stop()
    second.stop()


@pytest.mark.parametrize("shared_pair", ["filesystem", "s3"], indirect=True)
def test_upload_continues_on_another_instance(shared_pair: tuple[Registry, Registry]) -> None:
    """Chunks of one upload may go to different instances; the digest is still proven."""
    a, b = (Client.for_registry(r.url, r.auth) for r in shared_pair)
    repo = "spaces-1/pair"
    data = os.urandom(6 * MiB + 11)
    location = a.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    cuts = [0, 2 * MiB, 5 * MiB, len(data) - 1000]
    for i, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        side = a if i % 2 == 0 else b
        response = side.request(
            "PATCH", location, data=data[lo:hi], headers={"Content-Range": f"{lo}-{hi - 1}"}
        )
        assert response.status_code == 202, response.text
    # The last bytes come with the PUT, on the instance that did not see the first chunk.
    done = b.request("PUT", location, params={"digest": digest_of(data)}, data=data[cuts[-1] :])
    assert done.status_code == 201, done.text
    assert a.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}").content == data

    wrong = a.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    a.request("PATCH", wrong, data=b"abc")
    refused = b.request("PUT", wrong, params={"digest": digest_of(b"abd")})
    assert error_codes(refused) == ["DIGEST_INVALID"]


def test_upload_survives_a_restart(tmp_path: Path, mongo_url: str) -> None:
    """An upload started before a restart is finished after it, on the same port."""
    registry = start_registry(tmp_path / "r", mongo_url)
    client = Client.for_registry(registry.url, registry.auth)
    data = os.urandom(3 * MiB)
    location = client.request("POST", "/v2/spaces-1/restart/blobs/uploads/").headers["Location"]
    client.request("PATCH", location, data=data[:MiB], headers={"Content-Range": f"0-{MiB - 1}"})
    registry.stop()
    registry = restart_registry(registry, tmp_path / "r2")
    try:
        status = client.request("GET", location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{MiB - 1}"
        done = client.request("PUT", location, params={"digest": digest_of(data)}, data=data[MiB:])
        assert done.status_code == 201, done.text
        assert (
            client.request("GET", f"/v2/spaces-1/restart/blobs/{digest_of(data)}").content == data
        )
    finally:
        registry.stop()


def test_sigkill_during_pushes_leaves_nothing_half_written(tmp_path: Path, mongo_url: str) -> None:
    """A registry killed mid-upload exposes no partial blob; after a restart the session is
    at its last complete chunk and clients can retry to completion."""
    registry = start_registry(tmp_path / "r", mongo_url)
    client = Client.for_registry(registry.url, registry.auth)
    repo = "spaces-1/killed"
    data = os.urandom(64 * MiB)
    location = client.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    client.request("PATCH", location, data=data[:MiB], headers={"Content-Range": f"0-{MiB - 1}"})

    def slow_body() -> Iterator[bytes]:
        for i in range(MiB, len(data), 256 * 1024):
            yield data[i : i + 256 * 1024]
            time.sleep(0.005)

    def stream_rest() -> None:
        with contextlib.suppress(requests.RequestException):
            client.request("PATCH", location, data=slow_body(), timeout=30)

    single = os.urandom(32 * MiB)

    def stream_single() -> None:
        with contextlib.suppress(requests.RequestException):
            client.request(
                "POST",
                f"/v2/{repo}/blobs/uploads/",
                params={"digest": digest_of(single)},
                data=iter([single[:MiB]] * 32),
                timeout=30,
            )

    writers = [threading.Thread(target=stream_rest), threading.Thread(target=stream_single)]
    for thread in writers:
        thread.start()
    time.sleep(1.0)
    registry.service.kill()
    for thread in writers:
        thread.join()

    registry = restart_registry(registry, tmp_path / "r2")
    try:
        assert client.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}").status_code == 404
        assert client.request("GET", f"/v2/{repo}/blobs/{digest_of(single)}").status_code == 404
        status = client.request("GET", location)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{MiB - 1}"
        # The client retries the whole blob on a new session, as docker does.
        assert client.push_blob(repo, data) == digest_of(data)
        assert client.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}").content == data
    finally:
        registry.stop()


def test_s3_redirect_serves_blobs_from_presigned_urls(
    tmp_path: Path, mongo_url: str, s3_endpoint: str
) -> None:
    """With SPACEDOCK_S3_REDIRECT a blob GET is a 307 to a presigned URL that serves it."""
    registry = start_registry(
        tmp_path / "r",
        mongo_url,
        storage="s3",
        s3_endpoint=s3_endpoint,
        bucket=f"redirect-{uuid.uuid4().hex[:6]}",
        extra_env={"SPACEDOCK_S3_REDIRECT": "true"},
    )
    client = Client.for_registry(registry.url, registry.auth)
    try:
        data = os.urandom(10_000)
        digest = client.push_blob("spaces-1/redirected", data)
        response = client.request("GET", f"/v2/spaces-1/redirected/blobs/{digest}")
        assert response.status_code == 307
        assert response.headers["Docker-Content-Digest"] == digest
        fetched = requests.get(response.headers["Location"], timeout=10)
        assert fetched.status_code == 200 and fetched.content == data
        head = client.request("HEAD", f"/v2/spaces-1/redirected/blobs/{digest}")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data))
    finally:
        registry.stop()
