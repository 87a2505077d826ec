"""Pulling and deleting blobs (end-2, end-10), on both storage drivers."""

from __future__ import annotations

import os

import pytest

from tests.support.oci import Client, digest_of, error_codes


def test_get_and_head_carry_digest_and_length(client: Client, repo: str) -> None:
    """GET returns the bytes; HEAD the same headers without a body."""
    data = os.urandom(5000)
    digest = client.push_blob(repo, data)
    got = client.request("GET", f"/v2/{repo}/blobs/{digest}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["Docker-Content-Digest"] == digest
    head = client.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == digest
    assert head.content == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, 4999),
        ("bytes=-10", 4990, 4999),
        ("bytes=4000-9999", 4000, 4999),
    ],
)
def test_range_requests_return_partial_content(
    client: Client, repo: str, header: str, start: int, end: int
) -> None:
    """A satisfiable Range gets 206 with Content-Range and exactly those bytes."""
    data = os.urandom(5000)
    digest = client.push_blob(repo, data)
    response = client.request("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/5000"
    assert response.content == data[start : end + 1]


def test_unsatisfiable_range_gets_416_with_an_error_body(client: Client, repo: str) -> None:
    """A range past the end is answered 416 with an OCI error body."""
    digest = client.push_blob(repo, b"short")
    response = client.request("GET", f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-"})
    assert response.status_code == 416
    assert error_codes(response) == ["RANGE_INVALID"]


def test_blob_is_readable_only_where_it_is_linked(client: Client, repo: str) -> None:
    """A blob pushed to one repository is unknown to another that never linked it."""
    data = os.urandom(100)
    digest = client.push_blob(repo, data)
    response = client.request("GET", f"/v2/{repo}-elsewhere/blobs/{digest}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]


def test_delete_unlinks_only_this_repository(client: Client, repo: str) -> None:
    """DELETE removes the blob from the repository (202), not from others that hold it."""
    data = os.urandom(100)
    digest = client.push_blob(repo, data)
    client.push_blob(f"{repo}-keeps", data)
    response = client.request("DELETE", f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 202
    assert client.request("GET", f"/v2/{repo}/blobs/{digest}").status_code == 404
    assert client.request("GET", f"/v2/{repo}-keeps/blobs/{digest}").content == data
    again = client.request("DELETE", f"/v2/{repo}/blobs/{digest}")
    assert again.status_code == 404
    assert error_codes(again) == ["BLOB_UNKNOWN"]


@pytest.mark.parametrize(
    "digest", ["sha256:abc", "md5:" + "a" * 32, "sha256:" + "G" * 64, "nodigest"]
)
def test_invalid_digest_is_a_client_error(client: Client, repo: str, digest: str) -> None:
    """A malformed digest in the path is refused with 400 DIGEST_INVALID."""
    response = client.request("GET", f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_unknown_blob_is_404(client: Client, repo: str) -> None:
    """A well-formed digest nobody pushed is BLOB_UNKNOWN."""
    response = client.request("GET", f"/v2/{repo}/blobs/{digest_of(os.urandom(4))}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UNKNOWN"]
