"""Manifests of every media type (end-3, end-7, end-9), on both storage drivers."""

from __future__ import annotations

import json
import os

import pytest

from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    canonical,
    descriptor,
    digest_of,
    error_codes,
)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_docker_schema2_and_manifest_list(client: Client, repo: str) -> None:
    """Docker manifests and lists are stored and served with their own media types."""
    config, layer = canonical({"os": "linux", "architecture": "amd64"}), os.urandom(300)
    client.push_blob(repo, config)
    client.push_blob(repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, config),
            "layers": [descriptor(DOCKER_LAYER, layer)],
        },
        indent=3,
    ).encode()  # unusual formatting: the stored bytes must be exactly these
    assert client.put_manifest(repo, "v2", manifest, DOCKER_MANIFEST).status_code == 201
    listing = canonical(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                descriptor(
                    DOCKER_MANIFEST, manifest, platform={"architecture": "amd64", "os": "linux"}
                )
            ],
        }
    )
    assert client.put_manifest(repo, "list", listing, DOCKER_LIST).status_code == 201

    for tag, body, media_type in (
        ("v2", manifest, DOCKER_MANIFEST),
        ("list", listing, DOCKER_LIST),
    ):
        response = client.request("GET", f"/v2/{repo}/manifests/{tag}")
        assert response.content == body
        assert response.headers["Content-Type"] == media_type
        assert response.headers["Docker-Content-Digest"] == digest_of(body)


def test_oci_index_needs_its_children(client: Client, repo: str) -> None:
    """An index is refused with MANIFEST_BLOB_UNKNOWN until its child manifests exist."""
    child_digest, child = client.push_image(repo, None, [os.urandom(100)])
    missing = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}})
    index = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                descriptor(OCI_MANIFEST, child, platform={"architecture": "amd64", "os": "linux"}),
                descriptor(OCI_MANIFEST, missing),
            ],
        }
    )
    refused = client.put_manifest(repo, "multi", index, OCI_INDEX)
    assert refused.status_code == 400
    assert error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    assert client.request("GET", f"/v2/{repo}/manifests/multi").status_code == 404

    good = canonical(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, child)]}
    )
    assert client.put_manifest(repo, "multi", good, OCI_INDEX).status_code == 201
    assert client.request("GET", f"/v2/{repo}/manifests/{child_digest}").content == child


def test_missing_layer_is_manifest_blob_unknown(client: Client, repo: str) -> None:
    """A manifest referencing a blob the repository lacks is refused and not stored."""
    config = canonical({})
    client.push_blob(repo, config)
    body = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor(OCI_LAYER, b"never pushed")],
        }
    )
    response = client.put_manifest(repo, "t", body)
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_BLOB_UNKNOWN"]
    assert client.request("GET", f"/v2/{repo}/manifests/{digest_of(body)}").status_code == 404


def test_artifact_with_empty_config_and_subject(client: Client, repo: str) -> None:
    """An artifact (artifactType, empty config) with a subject is stored and answered with
    OCI-Subject; the subject need not exist."""
    empty = b"{}"
    subject = {"mediaType": OCI_MANIFEST, "digest": digest_of(b"absent"), "size": 6}
    digest, _ = client.push_image(
        repo,
        None,
        [b"signature"],
        config=empty,
        config_media_type=OCI_EMPTY,
        artifactType="application/vnd.example.sig",
        subject=subject,
    )
    response = client.request("HEAD", f"/v2/{repo}/manifests/{digest}")
    assert response.status_code == 200
    body = client.request("GET", f"/v2/{repo}/manifests/{digest}").content
    put_again = client.put_manifest(repo, digest, body)
    assert put_again.headers["OCI-Subject"] == subject["digest"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", OCI_MANIFEST),
        (b"[]", OCI_MANIFEST),
        (canonical({"schemaVersion": 1, "mediaType": OCI_MANIFEST}), OCI_MANIFEST),
        (canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}), OCI_MANIFEST),
        (
            canonical(
                {"schemaVersion": 2, "config": {"mediaType": "x", "digest": "bad", "size": 1}}
            ),
            OCI_MANIFEST,
        ),
        (
            b'{"schemaVersion": 1, "signatures": []}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        ),
    ],
)
def test_invalid_manifests_are_refused(
    client: Client, repo: str, body: bytes, content_type: str
) -> None:
    """Bad JSON, wrong schema or unsupported types get 400 MANIFEST_INVALID."""
    response = client.put_manifest(repo, "bad", body, content_type)
    assert response.status_code == 400
    assert error_codes(response) == ["MANIFEST_INVALID"]


def test_manifest_over_4_mib_gets_413(client: Client, repo: str) -> None:
    """A manifest above the 4 MiB limit is refused with 413."""
    body = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
    response = client.put_manifest(repo, "big", body)
    assert response.status_code == 413
    assert error_codes(response) == ["SIZE_INVALID"]


def test_put_by_digest_must_match_the_content(client: Client, repo: str) -> None:
    """PUT to a digest reference that is not the body's digest is DIGEST_INVALID."""
    _, body = client.push_image(repo, "x", [b"l"])
    response = client.put_manifest(repo, digest_of(b"other"), body)
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]


def test_bad_tag_is_refused(client: Client, repo: str) -> None:
    """A tag outside the tag grammar is refused."""
    _, body = client.push_image(repo, "ok", [b"l"])
    response = client.put_manifest(repo, "-bad", body)
    assert response.status_code == 400


def test_deleting_a_tag_keeps_the_manifest(client: Client, repo: str) -> None:
    """DELETE by tag removes only that tag."""
    digest, _ = client.push_image(repo, "a", [b"layer"])
    client.put_manifest(repo, "b", client.request("GET", f"/v2/{repo}/manifests/a").content)
    assert client.request("DELETE", f"/v2/{repo}/manifests/a").status_code == 202
    assert client.request("GET", f"/v2/{repo}/manifests/a").status_code == 404
    assert client.request("GET", f"/v2/{repo}/manifests/b").status_code == 200
    assert client.request("GET", f"/v2/{repo}/manifests/{digest}").status_code == 200


def test_deleting_a_digest_removes_its_tags(client: Client, repo: str) -> None:
    """DELETE by digest removes the manifest and every tag pointing at it."""
    digest, body = client.push_image(repo, "a", [b"layer"])
    client.put_manifest(repo, "b", body)
    assert client.request("DELETE", f"/v2/{repo}/manifests/{digest}").status_code == 202
    for reference in ("a", "b", digest):
        response = client.request("GET", f"/v2/{repo}/manifests/{reference}")
        assert response.status_code == 404
        assert error_codes(response) == ["MANIFEST_UNKNOWN"]
    assert client.request("GET", f"/v2/{repo}/tags/list").json()["tags"] == []
    assert client.request("DELETE", f"/v2/{repo}/manifests/{digest}").status_code == 404


def test_retagging_moves_the_tag(client: Client, repo: str) -> None:
    """Pushing another manifest to a tag points the tag at the new one at once."""
    client.push_image(repo, "latest", [b"one"])
    client.request("GET", f"/v2/{repo}/manifests/latest")  # warm any cache
    second, _ = client.push_image(repo, "latest", [b"two"])
    response = client.request("GET", f"/v2/{repo}/manifests/latest")
    assert response.headers["Docker-Content-Digest"] == second
