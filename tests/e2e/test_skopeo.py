"""skopeo copies images and multi-platform indexes into the registry and back, digests intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.support.commands import require, succeed
from tests.support.oci import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, Client
from tests.support.oci_layout import LayoutWriter, read_blob, tagged_descriptor, untar
from tests.support.processes import Registry

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
PLATFORMS = ["amd64", "arm64"]


@pytest.fixture(scope="module", autouse=True)
def skopeo_installed() -> None:
    require("skopeo", "skopeo")


def skopeo(registry: Registry, *args: str) -> str:
    """Run ``skopeo`` with ``args``; the registry's log is shown if it fails."""
    return succeed(["skopeo", *args], diagnose=registry.service.log_tail).stdout


def push_args(registry: Registry) -> list[str]:
    return ["--dest-tls-verify=false", "--dest-creds", f"{registry.username}:{registry.password}"]


def pull_args(registry: Registry) -> list[str]:
    return ["--src-tls-verify=false", "--src-creds", f"{registry.username}:{registry.password}"]


def inspect_raw(registry: Registry, reference: str) -> bytes:
    creds = f"{registry.username}:{registry.password}"
    raw = skopeo(registry, "inspect", "--raw", "--tls-verify=false", "--creds", creds, reference)
    return raw.encode()


def get_manifest(client: Client, repo: str, reference: str, accept: str) -> requests.Response:
    response = client.request(
        "GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
    )
    assert response.status_code == 200, response.text
    return response


def test_oci_image_round_trips_unchanged(
    registry: Registry, client: Client, repo: str, tmp_path: Path
) -> None:
    """An OCI image copied from a layout dir to the registry and back keeps every digest."""
    source = LayoutWriter(tmp_path / "source")
    manifest = source.image("amd64", {"etc/motd": b"single platform\n"})
    source.tag("v1", manifest)
    target = f"docker://{registry.host}/{repo}:v1"

    skopeo(registry, "copy", *push_args(registry), f"oci:{source.root}:v1", target)

    stored = get_manifest(client, repo, "v1", OCI_MANIFEST)
    assert stored.headers["Content-Type"] == OCI_MANIFEST
    assert stored.headers["Docker-Content-Digest"] == manifest["digest"]
    assert stored.content == read_blob(source.root, manifest["digest"])

    back = tmp_path / "back"
    skopeo(registry, "copy", *pull_args(registry), target, f"oci:{back}:v1")
    assert tagged_descriptor(back, "v1")["digest"] == manifest["digest"]
    body = json.loads(read_blob(back, manifest["digest"]))
    for blob in [body["config"], *body["layers"]]:
        assert read_blob(back, blob["digest"]) == read_blob(source.root, blob["digest"])


def test_two_platform_index_round_trips_unchanged(
    registry: Registry, client: Client, repo: str, tmp_path: Path
) -> None:
    """``skopeo copy --all`` stores an OCI index with both platform manifests and copies it back."""
    source = LayoutWriter(tmp_path / "source")
    children = [
        source.image(
            arch,
            {"etc/platform": f"linux/{arch}\n".encode()},
            platform={"architecture": arch, "os": "linux"},
        )
        for arch in PLATFORMS
    ]
    index = source.index(children)
    source.tag("multi", index)
    target = f"docker://{registry.host}/{repo}:multi"

    skopeo(registry, "copy", "--all", *push_args(registry), f"oci:{source.root}:multi", target)

    stored = get_manifest(client, repo, "multi", OCI_INDEX)
    assert stored.headers["Content-Type"] == OCI_INDEX
    assert stored.headers["Docker-Content-Digest"] == index["digest"]
    assert stored.content == read_blob(source.root, index["digest"])
    for child, arch in zip(children, PLATFORMS, strict=True):
        manifest = get_manifest(client, repo, child["digest"], OCI_MANIFEST)
        assert manifest.headers["Content-Type"] == OCI_MANIFEST
        assert manifest.content == read_blob(source.root, child["digest"])
        layer = manifest.json()["layers"][0]["digest"]
        blob = client.request("GET", f"/v2/{repo}/blobs/{layer}")
        assert blob.status_code == 200, blob.text
        assert untar(blob.content) == {"etc/platform": f"linux/{arch}\n".encode()}

    assert inspect_raw(registry, target) == read_blob(source.root, index["digest"])

    back = tmp_path / "back"
    skopeo(registry, "copy", "--all", *pull_args(registry), target, f"oci:{back}:multi")
    copied = tagged_descriptor(back, "multi")
    assert (copied["mediaType"], copied["digest"]) == (OCI_INDEX, index["digest"])
    for child in children:
        assert read_blob(back, child["digest"]) == read_blob(source.root, child["digest"])


def test_docker_daemon_image_is_stored_as_docker_schema2(
    registry: Registry, client: Client, repo: str, busybox_image: str, tmp_path: Path
) -> None:
    """An image copied from the docker engine keeps Docker schema 2 media types and its layer."""
    target = f"docker://{registry.host}/{repo}:base"
    skopeo(
        registry,
        "copy",
        "--format",
        "v2s2",
        *push_args(registry),
        f"docker-daemon:{busybox_image}",
        target,
    )

    stored = get_manifest(client, repo, "base", DOCKER_MANIFEST)
    assert stored.headers["Content-Type"] == DOCKER_MANIFEST
    body = stored.json()
    assert body["mediaType"] == DOCKER_MANIFEST
    assert body["config"]["mediaType"] == DOCKER_CONFIG
    assert [layer["mediaType"] for layer in body["layers"]] == [DOCKER_LAYER]
    assert inspect_raw(registry, target) == stored.content

    back = tmp_path / "back"
    skopeo(registry, "copy", *pull_args(registry), target, f"oci:{back}:base")
    manifest = json.loads(read_blob(back, tagged_descriptor(back, "base")["digest"]))
    layer = body["layers"][0]["digest"]
    assert [blob["digest"] for blob in manifest["layers"]] == [layer]
    files = untar(read_blob(back, layer))
    assert files["bin/busybox"] == Path("/bin/busybox").read_bytes()


def test_list_tags_and_delete_work_on_the_registry(
    registry: Registry, client: Client, repo: str
) -> None:
    """``skopeo list-tags`` shows every tag; ``skopeo delete`` removes the manifest and its tags."""
    _, body = client.push_image(repo, "a", [b"first image"])
    assert client.put_manifest(repo, "b", body).status_code == 201
    client.push_image(repo, "c", [b"second image"])
    creds = ["--tls-verify=false", "--creds", f"{registry.username}:{registry.password}"]
    listing = f"docker://{registry.host}/{repo}"

    assert json.loads(skopeo(registry, "list-tags", *creds, listing))["Tags"] == ["a", "b", "c"]

    skopeo(registry, "delete", *creds, f"{listing}:a")

    assert json.loads(skopeo(registry, "list-tags", *creds, listing))["Tags"] == ["c"]
