"""The referrers API (end-12a/b) at the HTTP level."""

from __future__ import annotations

from tests.support.oci import OCI_EMPTY, OCI_INDEX, Client, digest_of


def test_referrers_listed_and_filtered_by_artifact_type(client: Client, repo: str) -> None:
    """Manifests with a subject are listed for it, with artifactType and annotations, and
    can be filtered by artifactType."""
    subject_digest, subject_body = client.push_image(repo, "app", [b"app-layer"])
    subject = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": subject_digest,
        "size": len(subject_body),
    }
    sig, _ = client.push_image(
        repo,
        None,
        [b"sig"],
        config=b"{}",
        config_media_type=OCI_EMPTY,
        artifactType="application/vnd.example.sig",
        subject=subject,
        annotations={"org.example.kind": "signature"},
    )
    sbom, _ = client.push_image(
        repo,
        None,
        [b"sbom"],
        config=b'{"sbom":1}',
        config_media_type="application/vnd.example.sbom.config",
        subject=subject,
    )

    response = client.request("GET", f"/v2/{repo}/referrers/{subject_digest}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    index = response.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {sig, sbom}
    assert by_digest[sig]["artifactType"] == "application/vnd.example.sig"
    assert by_digest[sig]["annotations"] == {"org.example.kind": "signature"}
    assert by_digest[sbom]["artifactType"] == "application/vnd.example.sbom.config"
    assert "OCI-Filters-Applied" not in response.headers

    filtered = client.request(
        "GET",
        f"/v2/{repo}/referrers/{subject_digest}",
        params={"artifactType": "application/vnd.example.sig"},
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [sig]
    # Without artifactType, a manifest's type is its config's media type.
    by_config = client.request(
        "GET",
        f"/v2/{repo}/referrers/{subject_digest}",
        params={"artifactType": "application/vnd.example.sbom.config"},
    )
    assert [d["digest"] for d in by_config.json()["manifests"]] == [sbom]


def test_unknown_subject_has_an_empty_list(client: Client, repo: str) -> None:
    """Referrers of a digest nobody refers to: 200 and an empty index, never 404."""
    client.push_image(repo, "x", [b"l"])
    response = client.request("GET", f"/v2/{repo}/referrers/{digest_of(b'nothing')}")
    assert response.status_code == 200
    assert response.json()["manifests"] == []


def test_bad_subject_digest_is_400(client: Client, repo: str) -> None:
    """A malformed digest on the referrers API is a client error."""
    response = client.request("GET", f"/v2/{repo}/referrers/sha256:nope")
    assert response.status_code == 400
