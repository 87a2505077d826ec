"""oras-py pushes and pulls artifacts, and referrers pushed with a subject are listed."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import oras.client
import oras.oci
import pytest
import requests

from tests.support.oci import OCI_EMPTY, OCI_INDEX, OCI_MANIFEST, Client, digest_of
from tests.support.processes import Registry

SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"
EMPTY_CONFIG = b"{}"


@pytest.fixture
def oras_client(registry: Registry) -> Any:
    """An oras-py client for the registry over plain http, signing in with Basic.

    oras-py's token backend resends the token it holds when a 401 asks for a wider scope and
    renews only on a 403; insufficient scope is a 401 here as in CNCF Distribution, so that
    backend fails against both as soon as a pull-scoped token is followed by a push."""
    client = oras.client.OrasClient(hostname=registry.host, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(registry.username, registry.password)
    return client


def write_files(root: Path) -> dict[str, bytes]:
    """A text file, a binary file and a directory under ``root``; returns path → content."""
    files = {
        "readme.md": b"# an artifact\n",
        "data.bin": os.urandom(300_000),
        "docs/guide.txt": b"a file inside a pushed directory\n",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return files


def pushed_files(root: Path) -> list[str]:
    return [
        f"{root / 'readme.md'}:text/markdown",
        f"{root / 'data.bin'}:application/octet-stream",
        str(root / "docs"),
    ]


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def subject_of(client: Client, repo: str, tag: str) -> oras.oci.Subject:
    """The descriptor of the manifest ``repo:tag``, as oras-py's ``Subject``."""
    response = client.request(
        "GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST}
    )
    assert response.status_code == 200, response.text
    return oras.oci.Subject(
        mediaType=response.headers["Content-Type"],
        digest=response.headers["Docker-Content-Digest"],
        size=len(response.content),
    )


def push_subject(oras_client: Any, registry: Registry, repo: str, tmp_path: Path) -> str:
    """Push a one-file artifact to ``repo:v1``; return the manifest digest."""
    (tmp_path / "app.txt").write_text("the subject\n")
    response = oras_client.push(
        target=f"{registry.host}/{repo}:v1",
        files=[str(tmp_path / "app.txt")],
        disable_path_validation=True,
    )
    assert response.status_code == 201, response.text
    digest: str = response.headers["Docker-Content-Digest"]
    return digest


def push_signature(
    oras_client: Any, registry: Registry, repo: str, subject: oras.oci.Subject, tmp_path: Path
) -> str:
    """Push a signature whose type is given by its config media type; return its digest."""
    (tmp_path / "signature.sig").write_bytes(b"signed bytes")
    (tmp_path / "signature-config.json").write_text('{"signer": "e2e"}')
    response = oras_client.push(
        target=f"{registry.host}/{repo}:signature",
        files=[str(tmp_path / "signature.sig")],
        manifest_config=f"{tmp_path / 'signature-config.json'}:{SIGNATURE_TYPE}",
        manifest_annotations={"org.example.signed-by": "e2e"},
        subject=subject,
        disable_path_validation=True,
    )
    assert response.status_code == 201, response.text
    assert response.headers.get("OCI-Subject") == subject.digest
    digest: str = response.headers["Docker-Content-Digest"]
    return digest


def push_sbom(
    oras_client: Any, registry: Registry, repo: str, subject: oras.oci.Subject, tmp_path: Path
) -> str:
    """Push an SBOM with an explicit ``artifactType`` and the empty config; return its digest."""
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "e2e"}))
    empty = tmp_path / "empty.json"
    empty.write_bytes(EMPTY_CONFIG)
    container = oras_client.get_container(f"{registry.host}/{repo}:sbom")
    layer = oras.oci.NewLayer(str(sbom), media_type="application/spdx+json")
    config = {"mediaType": OCI_EMPTY, "digest": digest_of(EMPTY_CONFIG), "size": 2}
    for path, descriptor in [(sbom, layer), (empty, config)]:
        uploaded = oras_client.upload_blob(str(path), container, descriptor)
        assert uploaded.status_code in (200, 201), uploaded.text
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_TYPE,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": subject.mediaType, "digest": subject.digest, "size": subject.size},
    }
    response = oras_client.upload_manifest(manifest, container)
    assert response.status_code == 201, response.text
    assert response.headers.get("OCI-Subject") == subject.digest
    digest: str = response.headers["Docker-Content-Digest"]
    return digest


def referrers(client: Client, repo: str, digest: str, **params: str) -> Any:
    response = client.request("GET", f"/v2/{repo}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    body = response.json()
    assert (body["schemaVersion"], body["mediaType"]) == (2, OCI_INDEX)
    return response


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_artifact_files_round_trip(
    registry: Registry,
    client: Client,
    oras_client: Any,
    repo: str,
    tmp_path: Path,
    chunked: bool,
) -> None:
    """Files and a directory pushed as an artifact are pulled back identical, with annotations."""
    source = tmp_path / "source"
    source.mkdir()
    files = write_files(source)
    response = oras_client.push(
        target=f"{registry.host}/{repo}:v1",
        files=pushed_files(source),
        manifest_annotations={"org.opencontainers.image.description": "e2e artifact"},
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=64 * 1024,
    )
    assert response.status_code == 201, f"{response.text}\n{registry.service.log_tail()}"

    stored = client.request("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert stored.headers["Docker-Content-Digest"] == response.headers["Docker-Content-Digest"]
    manifest = stored.json()
    assert manifest["annotations"]["org.opencontainers.image.description"] == "e2e artifact"
    titles = [
        layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]
    ]
    assert titles == ["readme.md", "data.bin", "docs"]

    pulled = tmp_path / "pulled"
    oras_client.pull(target=f"{registry.host}/{repo}:v1", outdir=str(pulled))
    assert read_tree(pulled) == files


def test_referrers_list_artifacts_pushed_with_a_subject(
    registry: Registry, client: Client, oras_client: Any, repo: str, tmp_path: Path
) -> None:
    """The referrers API lists each artifact pushed with a subject, with its artifact type."""
    subject_digest = push_subject(oras_client, registry, repo, tmp_path)
    subject = subject_of(client, repo, "v1")
    assert subject.digest == subject_digest
    signature = push_signature(oras_client, registry, repo, subject, tmp_path)
    sbom = push_sbom(oras_client, registry, repo, subject, tmp_path)

    listed = {d["digest"]: d for d in referrers(client, repo, subject.digest).json()["manifests"]}

    assert set(listed) == {signature, sbom}
    assert listed[signature]["artifactType"] == SIGNATURE_TYPE
    assert listed[signature]["annotations"]["org.example.signed-by"] == "e2e"
    assert listed[sbom]["artifactType"] == SBOM_TYPE
    for digest, found in listed.items():
        body = client.request(
            "GET", f"/v2/{repo}/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
        ).content
        assert (found["mediaType"], found["size"]) == (OCI_MANIFEST, len(body))


def test_referrers_filter_by_artifact_type(
    registry: Registry, client: Client, oras_client: Any, repo: str, tmp_path: Path
) -> None:
    """``?artifactType=`` keeps only matching referrers and says so in ``OCI-Filters-Applied``."""
    push_subject(oras_client, registry, repo, tmp_path)
    subject = subject_of(client, repo, "v1")
    signature = push_signature(oras_client, registry, repo, subject, tmp_path)
    push_sbom(oras_client, registry, repo, subject, tmp_path)

    filtered = referrers(client, repo, subject.digest, artifactType=SIGNATURE_TYPE)
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [d["digest"] for d in filtered.json()["manifests"]] == [signature]

    unmatched = referrers(client, repo, subject.digest, artifactType="application/x-none")
    assert unmatched.headers.get("OCI-Filters-Applied") == "artifactType"
    assert unmatched.json()["manifests"] == []


def test_referrers_of_an_unknown_digest_is_an_empty_index(
    registry: Registry, client: Client, oras_client: Any, repo: str, tmp_path: Path
) -> None:
    """Asking for the referrers of a digest nothing refers to answers 200 with no manifests."""
    push_subject(oras_client, registry, repo, tmp_path)
    unknown = digest_of(b"nothing refers to this")
    assert referrers(client, repo, unknown).json()["manifests"] == []


def test_tags_are_listed_and_deleted(
    registry: Registry, oras_client: Any, repo: str, tmp_path: Path
) -> None:
    """oras-py lists an artifact repository's tags in order and deletes one by tag."""
    for tag in ("v2", "v1"):
        (tmp_path / "file.txt").write_text(f"version {tag}\n")
        oras_client.push(
            target=f"{registry.host}/{repo}:{tag}",
            files=[str(tmp_path / "file.txt")],
            disable_path_validation=True,
        )
    target = f"{registry.host}/{repo}"

    assert oras_client.get_tags(target) == ["v1", "v2"]
    assert oras_client.get_tags(target, N=1) == ["v1"]
    assert oras_client.delete_tag(target, "v1") is True
    assert oras_client.get_tags(target) == ["v2"]


def test_packages_move_between_oras_and_the_feed(
    registry: Registry, oras_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package pushed with oras downloads from the management API, and one uploaded there
    is pulled by oras under its file name."""
    package_id = f"orastool-{os.urandom(3).hex()}"
    archive = tmp_path / f"{package_id}.3.1.0.tgz"
    archive.write_bytes(gzip.compress(b"a package pushed with oras"))
    monkeypatch.chdir(tmp_path)  # oras titles a file with the path it was given
    response = oras_client.push(
        target=f"{registry.host}/spaces-1/packages/{package_id}:3.1.0", files=[archive.name]
    )
    assert response.status_code == 201, response.text
    api = f"{registry.url}/api/v1/spaces/spaces-1/packages/{package_id}"
    download = requests.get(f"{api}/3.1.0", auth=registry.auth, timeout=30)
    assert download.status_code == 200 and download.content == archive.read_bytes()

    uploaded = gzip.compress(b"a package uploaded to the feed")
    created = requests.post(
        f"{registry.url}/api/v1/spaces/spaces-1/packages",
        files={"file": (f"{package_id}.3.2.0.tar.gz", uploaded)},
        auth=registry.auth,
        timeout=30,
    )
    assert created.status_code == 201, created.text
    pulled = tmp_path / "pulled"
    oras_client.pull(
        target=f"{registry.host}/spaces-1/packages/{package_id}:3.2.0", outdir=str(pulled)
    )
    assert (pulled / f"{package_id}.3.2.0.tar.gz").read_bytes() == uploaded
