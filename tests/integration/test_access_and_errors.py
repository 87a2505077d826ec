"""Credentials, spaces, names and error bodies at the HTTP level."""

from __future__ import annotations

import json
import time

import requests

from tests.support.oci import Client, digest_of, error_codes
from tests.support.processes import Registry


def test_version_check_challenges_without_credentials(registry: Registry) -> None:
    """/v2/ without credentials answers 401 with a Docker token challenge and the API version
    header."""
    response = requests.get(f"{registry.url}/v2/", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer realm="{registry.url}/auth/token",service="spacedock"'
    )
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert error_codes(response) == ["UNAUTHORIZED"]


def test_version_check_with_credentials(client: Client) -> None:
    """/v2/ with the admin's credentials answers 200."""
    response = client.request("GET", "/v2/")
    assert response.status_code == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_wrong_password_and_anonymous_pull_are_refused(registry: Registry, repo: str) -> None:
    """Pull, push and delete need valid credentials."""
    owner = Client.for_registry(registry.url, registry.auth)
    owner.push_image(repo, "t", [b"l"])
    for auth in (None, ("admin", "wrong"), ("nobody", "x")):
        stranger = Client.for_registry(registry.url, auth)
        for method, path in (
            ("GET", f"/v2/{repo}/manifests/t"),
            ("POST", f"/v2/{repo}/blobs/uploads/"),
            ("DELETE", f"/v2/{repo}/manifests/t"),
            ("GET", "/v2/_catalog"),
        ):
            response = stranger.request(method, path)
            assert response.status_code == 401, (auth, method, path)
            assert error_codes(response) == ["UNAUTHORIZED"]
    assert owner.request("GET", f"/v2/{repo}/manifests/t").status_code == 200


def test_malformed_basic_credentials_are_401(registry: Registry) -> None:
    """Garbage in the Authorization header is a 401, not a server error."""
    response = requests.get(
        f"{registry.url}/v2/", headers={"Authorization": "Basic !!!notbase64"}, timeout=10
    )
    assert response.status_code == 401


def test_unknown_space_is_name_unknown(client: Client) -> None:
    """A repository in a space that does not exist is NAME_UNKNOWN, for reads and pushes."""
    for method, path in (
        ("GET", "/v2/spaces-404/app/manifests/latest"),
        ("POST", "/v2/spaces-404/app/blobs/uploads/"),
        ("GET", "/v2/spaces-404/app/tags/list"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404
        assert error_codes(response) == ["NAME_UNKNOWN"]


def test_invalid_names_are_name_invalid(client: Client) -> None:
    """Names outside the OCI grammar are NAME_INVALID."""
    for name in ("Spaces-1/App", "spaces-1/a..b", "spaces-1/" + "a" * 260):
        response = client.request("GET", f"/v2/{name}/tags/list")
        assert response.status_code == 400, name
        assert error_codes(response) == ["NAME_INVALID"]


def test_a_name_without_a_space_is_unknown_and_says_how_names_are_formed(client: Client) -> None:
    """A name Docker accepts but that lies in no space is NAME_UNKNOWN, which clients do not
    retry (they retry NAME_INVALID), with the message that tells how names are formed."""
    for method, path in (("GET", "/v2/app/tags/list"), ("POST", "/v2/app/blobs/uploads/")):
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert error_codes(response) == ["NAME_UNKNOWN"]
        assert "<space>/<name>" in response.json()["errors"][0]["message"]


def test_a_reference_that_cannot_be_one_is_unknown_to_reads_and_invalid_to_a_put(
    client: Client, repo: str
) -> None:
    """As Distribution and the conformance suite expect: only a PUT validates it."""
    client.push_image(repo, "1.0", [b"layer"])
    for method in ("GET", "HEAD"):
        for reference in (".INVALID_MANIFEST_NAME", "sha256:not-hex", "a" * 200):
            response = client.request(method, f"/v2/{repo}/manifests/{reference}")
            assert response.status_code == 404, (method, reference)
            if method == "GET":
                assert error_codes(response) == ["MANIFEST_UNKNOWN"]
    put = client.request(
        "PUT",
        f"/v2/{repo}/manifests/.INVALID_MANIFEST_NAME",
        data=b"{}",
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert put.status_code == 400


def test_unknown_endpoint_and_method_have_oci_bodies(client: Client) -> None:
    """Unknown paths and unsupported methods still answer with an OCI error body."""
    unknown = client.request("GET", "/v2/spaces-1/app/nothing-here")
    assert unknown.status_code == 404
    assert error_codes(unknown)
    wrong_method = client.request("PATCH", "/v2/spaces-1/app/manifests/latest")
    assert wrong_method.status_code == 405
    assert error_codes(wrong_method) == ["UNSUPPORTED"]


def test_health_readiness_and_metrics(client: Client, registry: Registry, repo: str) -> None:
    """/healthz and /readyz answer 200; /metrics counts requests and bytes by route."""
    assert requests.get(f"{registry.url}/healthz", timeout=10).status_code == 200
    ready = requests.get(f"{registry.url}/readyz", timeout=10)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"metadata": "ok", "storage": "ok"}
    client.push_image(repo, "m", [b"metrics"])
    put_manifest = (
        'spacedock_http_requests_total{method="PUT",route="/v2/{name}/manifests/{reference}"'
    )
    deadline = time.monotonic() + 5  # recorded once the response has gone out
    while True:
        text = requests.get(f"{registry.url}/metrics", timeout=10).text
        if put_manifest in text or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (
        'spacedock_http_requests_total{method="PUT",route="/v2/{name}/manifests/{reference}"'
        in text
    )
    assert "spacedock_http_request_duration_seconds_bucket" in text
    assert "spacedock_http_received_bytes_total" in text
    assert "spacedock_uploads_in_flight" in text


def test_request_log_line_has_the_fields(client: Client, registry: Registry, repo: str) -> None:
    """Each request is one JSON log line with method, path, status, the bytes that really
    went in and out, duration and repository; no password appears in the log."""
    layer = b"log" * 10_000
    client.push_image(repo, "logged", [layer])
    client.request("GET", f"/v2/{repo}/blobs/{digest_of(layer)}")
    client.request("GET", f"/v2/{repo}/manifests/logged")
    # The line is written once the response has gone out, so it may trail the client a bit.
    deadline = time.monotonic() + 5
    while True:
        entries = [
            json.loads(line)
            for line in registry.service.log_path.read_text().splitlines()
            if repo in line and '"event": "request"' in line
        ]
        by_request = {(e["method"], e["path"].rsplit("/", 2)[-2]): e for e in entries}
        if ("GET", "manifests") in by_request or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    blob_get = by_request[("GET", "blobs")]
    assert blob_get["status"] == 200 and blob_get["bytes_out"] >= len(layer)
    assert blob_get["repository"] == repo and blob_get["duration_ms"] >= 0
    assert by_request[("GET", "manifests")]["bytes_out"] > 0
    blob_push = next(e for e in entries if e["method"] == "POST" and e["bytes_in"] == len(layer))
    assert blob_push["status"] == 201
    assert "test-admin-password" not in registry.service.log_path.read_text()
