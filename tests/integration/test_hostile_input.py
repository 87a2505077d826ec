"""Input no parser should choke on gets the API's own 4xx, never a 5xx, and stores nothing:
integers too long to convert, lone surrogates and NUL where BSON cannot hold them, requests
aiohttp's parser refuses, and a client that hangs up in the middle of a chunk."""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from typing import Any

import pytest
import requests

from tests.support.oci import OCI_CONFIG, OCI_LAYER, Client, canonical, descriptor, digest_of
from tests.support.processes import Registry

HUGE = "9" * 5000  # past Python's 4300-digit limit on int(str)


def api(client: Client, method: str, path: str, **kwargs: Any) -> requests.Response:
    return client.request(method, f"/api/v1{path}", **kwargs)


def assert_api_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def assert_oci_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    errors = response.json()["errors"]
    assert [e["code"] for e in errors] == [code] and errors[0]["message"]


def log_size(registry: Registry) -> int:
    return registry.service.log_path.stat().st_size


def log_since(registry: Registry, offset: int) -> str:
    with registry.service.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def assert_no_server_error(text: str) -> None:
    for line in text.splitlines():
        assert "Traceback" not in line, text[-3000:]
        if line.startswith("{"):
            entry = json.loads(line)
            assert entry.get("level") not in ("error", "critical"), line
            assert not 500 <= int(entry.get("status") or 0) < 600, line


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"n": value}
    return value


# -- integers past the conversion limit ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/spaces"),
        ("PATCH", "/spaces/spaces-1"),
        ("PUT", "/spaces/spaces-1/retention"),
        ("POST", "/spaces/spaces-1/builds"),
    ],
)
def test_huge_integer_in_a_json_body_is_a_400(client: Client, method: str, path: str) -> None:
    """A JSON body with a 5000-digit integer is not JSON the API reads: 400 BAD_REQUEST."""
    policy = api(client, "GET", "/spaces/spaces-1/retention").json()
    spaces = api(client, "GET", "/spaces").json()
    body = b'{"name": "x", "anonymous_pull": ' + HUGE.encode() + b"}"
    response = api(client, method, path, data=body, headers={"Content-Type": "application/json"})
    assert_api_error(response, 400, "BAD_REQUEST")
    assert api(client, "GET", "/spaces/spaces-1/retention").json() == policy
    assert api(client, "GET", "/spaces").json() == spaces


@pytest.mark.parametrize(
    "request_body",
    [
        {"sdi": {"id": "app", "version": "1.0.0"}, "deployment": {"a\u0000b": "x"}},
        {"sdi": {"id": "app", "version": "1.0.0"}, "variables": {"A\u0000": "x"}},
        {"sdi": {"id": "app", "version": "1.0.0"}, "deployment": _nested(150)},
    ],
    ids=["nul-in-deployment-key", "nul-in-variable-name", "nested-150-deep"],
)
def test_what_mongodb_cannot_hold_is_a_400(client: Client, request_body: dict[str, Any]) -> None:
    """A writer's build request with a NUL in a key or nesting past any use is refused, and
    no build is stored."""
    response = api(
        client, "POST", "/spaces/spaces-1/builds", json={**request_body, "build_id": "hostile-1"}
    )
    assert_api_error(response, 400, "BAD_REQUEST")
    assert api(client, "GET", "/spaces/spaces-1/builds/hostile-1").status_code == 404


@pytest.mark.parametrize(
    "path", ["/spaces/spaces-1/repositories", "/spaces/spaces-1/repositories/app/versions"]
)
def test_huge_limit_is_a_400(client: Client, path: str) -> None:
    assert_api_error(api(client, "GET", path, params={"limit": HUGE}), 400, "BAD_REQUEST")


def test_huge_page_size_is_pagination_invalid(client: Client, repo: str) -> None:
    client.push_image(repo, "1.0", [b"layer"])
    for path in (f"/v2/{repo}/tags/list", "/v2/_catalog"):
        response = client.request("GET", path, params={"n": HUGE})
        assert_oci_error(response, 400, "PAGINATION_NUMBER_INVALID")


# -- manifests BSON cannot hold ---------------------------------------------------------------


def image_manifest(client: Client, repo: str, **fields: Any) -> dict[str, Any]:
    """An image manifest whose blobs are pushed: valid but for what ``fields`` add."""
    config, layer = canonical({"architecture": "amd64", "os": "linux"}), b"hostile-layer"
    client.push_blob(repo, config)
    client.push_blob(repo, layer)
    return {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER, layer)],
        **fields,
    }


def assert_manifest_refused(client: Client, repo: str, body: bytes) -> None:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    assert_oci_error(client.put_manifest(repo, tag, body), 400, "MANIFEST_INVALID")
    assert client.request("GET", f"/v2/{repo}/manifests/{tag}").status_code == 404
    assert client.request("GET", f"/v2/{repo}/manifests/{digest_of(body)}").status_code == 404


def test_the_valid_manifest_is_accepted(client: Client, repo: str) -> None:
    """The control for the cases below: without the hostile field the manifest is stored."""
    body = canonical(image_manifest(client, repo, annotations={"a": "b"}, artifactType="x/y"))
    assert client.put_manifest(repo, "ok", body).status_code == 201


def test_huge_schema_version_is_manifest_invalid(client: Client, repo: str) -> None:
    document = image_manifest(client, repo)
    del document["schemaVersion"]
    body = canonical(document)[:-1] + b',"schemaVersion":' + HUGE.encode() + b"}"
    assert_manifest_refused(client, repo, body)


@pytest.mark.parametrize(
    "fields",
    [
        {"annotations": {"key": "\udc00"}},
        {"annotations": {"\ud800": "value"}},
        {"artifactType": "application/x\udfff"},
        {"annotations": {"nul\x00key": "value"}},
        {"subject": {"mediaType": "x\ud83d", "digest": digest_of(b"s"), "size": 1}},
    ],
    ids=["surrogate-value", "surrogate-key", "surrogate-artifact-type", "nul-key", "subject"],
)
def test_text_bson_cannot_hold_is_manifest_invalid(
    client: Client, repo: str, fields: dict[str, Any]
) -> None:
    """Lone surrogates anywhere, and NUL in an annotation key, are refused before storing."""
    assert_manifest_refused(client, repo, canonical(image_manifest(client, repo, **fields)))


def test_surrogate_in_config_media_type_is_manifest_invalid(client: Client, repo: str) -> None:
    document = image_manifest(client, repo)
    document["config"]["mediaType"] = "application/vnd.x\udc80+json"
    assert_manifest_refused(client, repo, canonical(document))


# -- requests aiohttp's parser refuses ------------------------------------------------------


# What docker, podman, skopeo and ctr send first: a TLS ClientHello, to a plain-HTTP port.
TLS_CLIENT_HELLO = (
    b"\x16\x03\x01\x00\x2f\x01\x00\x00\x2b\x03\x03"
    + bytes(range(32))
    + b"\x00\x00\x02\x13\x01\x01\x00"
)


def raw_exchange(registry: Registry, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes; read the answer until the server closes the connection."""
    host, port = registry.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        b"GET /api/v1/spaces HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n",
        b"GET /v2/\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: " + HUGE.encode() + b"\r\n\r\n",
        TLS_CLIENT_HELLO,
    ],
    ids=[
        "header-too-large", "control-character", "bad-request-line", "huge-content-length",
        "https-probe",
    ],
)  # fmt: skip
def test_requests_the_parser_refuses_get_a_json_error(
    registry: Registry, request_bytes: bytes
) -> None:
    """aiohttp's own 400s carry a JSON error body in both envelopes, and log no traceback."""
    start = log_size(registry)
    status, headers, body = raw_exchange(registry, request_bytes)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    document = json.loads(body)
    assert document["errors"][0]["code"] == "BAD_REQUEST" and document["errors"][0]["message"]
    assert document["error"]["code"] == "BAD_REQUEST"
    time.sleep(0.2)
    logged = log_since(registry, start)
    assert_no_server_error(logged)
    # The access log records it as the 400 it is.
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "request" and line.get("status") == 400 for line in lines)
    # And so do the metrics, under a route of its own.
    metrics = requests.get(f"{registry.url}/metrics", timeout=10).text
    counted = [
        line for line in metrics.splitlines()
        if line.startswith("spacedock_http_requests_total{") and 'route="unparsed"' in line
        and 'status="400"' in line
    ]  # fmt: skip
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 1


# -- a client that hangs up mid-chunk --------------------------------------------------------


def test_aborted_patch_is_no_server_error_and_the_upload_resumes(
    registry: Registry, client: Client, repo: str
) -> None:
    """A PATCH cut short is logged as a client disconnect, not a 500; the session keeps its
    offset and takes the chunk again."""
    first, second = b"a" * 1000, b"b" * 200_000
    location = client.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    patched = client.request("PATCH", location, data=first)
    assert patched.status_code == 202 and patched.headers["Range"] == "0-999"

    start = log_size(registry)
    host, port = registry.host.rsplit(":", 1)
    auth = "Basic " + base64.b64encode(":".join(registry.auth).encode()).decode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: {registry.host}\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(second)}\r\n"
            f"Content-Range: 1000-{1000 + len(second) - 1}\r\n\r\n".encode()
            + second[: len(second) // 2]
        )
        time.sleep(0.3)  # let the registry start writing the chunk
    deadline = time.monotonic() + 10
    while "client_disconnected" not in log_since(registry, start):
        assert time.monotonic() < deadline, log_since(registry, start)
        time.sleep(0.1)

    status = client.request("GET", location)
    assert status.status_code == 204 and status.headers["Range"] == "0-999"
    resumed = client.request(
        "PATCH", location, data=second, headers={"Content-Range": f"1000-{len(first) + 199_999}"}
    )
    assert resumed.status_code == 202, resumed.text
    digest = digest_of(first + second)
    assert client.request("PUT", location, params={"digest": digest}).status_code == 201
    assert client.request("GET", f"/v2/{repo}/blobs/{digest}").content == first + second
    assert_no_server_error(log_since(registry, start))
