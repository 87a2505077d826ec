"""The registry, on each storage driver, stores what is pushed and serves it back."""

from __future__ import annotations

from tests.support.oci import Client, digest_of


def test_pushed_image_is_served_back_byte_for_byte(client: Client, repo: str) -> None:
    """A manifest pushed by tag comes back with its media type, digest and exact bytes."""
    layer = b"layer-bytes" * 1000
    digest, body = client.push_image(repo, "1.0", [layer])

    response = client.request("GET", f"/v2/{repo}/manifests/1.0")
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"

    blob = client.request("GET", f"/v2/{repo}/blobs/{digest_of(layer)}")
    assert blob.status_code == 200
    assert blob.content == layer
