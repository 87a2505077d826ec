"""podman pushes images (gzip and zstd layers) and a two-platform OCI index, and pulls them back
into a store of its own with the digests it pushed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import requests

from tests.support.containers import ZSTD_MAGIC, ContainersTool
from tests.support.docker_cli import busybox_rootfs_tar
from tests.support.oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Client
from tests.support.processes import Registry

OCI_ZSTD_LAYER = "application/vnd.oci.image.layer.v1.tar+zstd"


def podman(registry: Registry, tmp_path: Path, name: str) -> ContainersTool:
    """A podman with its own image store, sharing the test's auth file."""
    return ContainersTool("podman", tmp_path / name, registry, tmp_path / "auth.json")


@pytest.fixture
def pusher(registry: Registry, tmp_path: Path) -> ContainersTool:
    """podman, logged in to the registry."""
    tool = podman(registry, tmp_path, "pusher")
    tool.login()
    return tool


@pytest.fixture
def puller(registry: Registry, tmp_path: Path, pusher: ContainersTool) -> ContainersTool:
    """Another podman with an empty image store and the pusher's credentials: whatever it has,
    it pulled from the registry."""
    return podman(registry, tmp_path, "puller")


def import_image(tool: ContainersTool, workdir: Path, name: str, arch: str = "amd64") -> bytes:
    """``podman import`` a busybox root filesystem with a random /marker; the marker."""
    marker = os.urandom(16).hex().encode()
    workdir.mkdir()
    archive = busybox_rootfs_tar(workdir, {"marker": marker})
    tool("import", "--quiet", "--arch", arch, str(archive), name)
    return marker


def get_manifest(client: Client, repo: str, reference: str, accept: str) -> requests.Response:
    response = client.request(
        "GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
    )
    assert response.status_code == 200, response.text
    return response


def get_blob(client: Client, repo: str, digest: str) -> bytes:
    response = client.request("GET", f"/v2/{repo}/blobs/{digest}", allow_redirects=True)
    assert response.status_code == 200, response.text
    return response.content


def test_image_is_pushed_and_pulled_with_the_same_digest(
    registry: Registry,
    client: Client,
    repo: str,
    pusher: ContainersTool,
    puller: ContainersTool,
    tmp_path: Path,
) -> None:
    """``podman push`` stores an OCI image; another store's ``podman pull`` gets that digest
    and the same files."""
    reference = f"{registry.host}/{repo}:1.0"
    marker = import_image(pusher, tmp_path / "image", reference)

    digest = pusher.digest_after(["push"], "--tls-verify=false", reference)

    stored = get_manifest(client, repo, "1.0", OCI_MANIFEST)
    assert stored.headers["Content-Type"] == OCI_MANIFEST
    assert stored.headers["Docker-Content-Digest"] == digest
    body = stored.json()
    assert body["config"]["mediaType"] == OCI_CONFIG
    assert [layer["mediaType"] for layer in body["layers"]] == [OCI_LAYER]

    puller("pull", "--quiet", "--tls-verify=false", reference)
    assert puller("image", "inspect", "--format", "{{.Digest}}", reference).strip() == digest
    with puller.mounted(reference) as rootfs:
        assert (rootfs / "marker").read_bytes() == marker
        assert (rootfs / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()


def test_zstd_layers_are_pushed_and_pulled(
    registry: Registry,
    client: Client,
    repo: str,
    pusher: ContainersTool,
    puller: ContainersTool,
    tmp_path: Path,
) -> None:
    """``podman push --compression-format zstd`` stores ``tar+zstd`` layers holding zstd data,
    which podman pulls and unpacks."""
    local = "localhost/spacedock-test/zstd:1"
    reference = f"{registry.host}/{repo}:zstd"
    marker = import_image(pusher, tmp_path / "image", local)

    digest = pusher.digest_after(
        ["push"], "--tls-verify=false", "--compression-format", "zstd", local, reference
    )

    stored = get_manifest(client, repo, "zstd", OCI_MANIFEST)
    assert stored.headers["Docker-Content-Digest"] == digest
    layers = stored.json()["layers"]
    assert [layer["mediaType"] for layer in layers] == [OCI_ZSTD_LAYER]
    blob = get_blob(client, repo, layers[0]["digest"])
    assert blob.startswith(ZSTD_MAGIC)
    assert len(blob) == layers[0]["size"]

    puller("pull", "--quiet", "--tls-verify=false", reference)
    assert puller("image", "inspect", "--format", "{{.Digest}}", reference).strip() == digest
    with puller.mounted(reference) as rootfs:
        assert (rootfs / "marker").read_bytes() == marker


def test_manifest_push_all_stores_an_oci_index_of_both_platforms(
    registry: Registry,
    client: Client,
    repo: str,
    pusher: ContainersTool,
    puller: ContainersTool,
    tmp_path: Path,
) -> None:
    """``podman manifest push --all`` stores an OCI index listing an amd64 and an arm64 image,
    each fetchable; ``podman pull --arch arm64`` resolves the arm64 one."""
    arches = ["amd64", "arm64"]
    markers = {
        arch: import_image(pusher, tmp_path / arch, f"localhost/spacedock-test/multi:{arch}", arch)
        for arch in arches
    }
    listed = "localhost/spacedock-test/multi:list"
    pusher("manifest", "create", listed)
    for arch in arches:
        pusher(
            "manifest", "add", listed, f"containers-storage:localhost/spacedock-test/multi:{arch}"
        )
    reference = f"{registry.host}/{repo}:multi"

    digest = pusher.digest_after(
        ["manifest", "push"], "--all", "--tls-verify=false", listed, f"docker://{reference}"
    )

    stored = get_manifest(client, repo, "multi", OCI_INDEX)
    assert stored.headers["Content-Type"] == OCI_INDEX
    assert stored.headers["Docker-Content-Digest"] == digest
    index = stored.json()
    assert index["mediaType"] == OCI_INDEX
    children = {entry["platform"]["architecture"]: entry for entry in index["manifests"]}
    assert sorted(children) == arches
    for arch, entry in children.items():
        assert entry["platform"]["os"] == "linux"
        manifest = get_manifest(client, repo, entry["digest"], OCI_MANIFEST)
        assert manifest.headers["Content-Type"] == OCI_MANIFEST
        assert len(manifest.content) == entry["size"]
        body = manifest.json()
        config = json.loads(get_blob(client, repo, body["config"]["digest"]))
        assert (config["architecture"], config["os"]) == (arch, "linux")
        for layer in body["layers"]:
            head = client.request("HEAD", f"/v2/{repo}/blobs/{layer['digest']}")
            assert head.status_code == 200, layer

    puller("pull", "--quiet", "--tls-verify=false", "--arch", "arm64", reference)
    inspected = json.loads(puller("image", "inspect", reference))[0]
    assert inspected["Architecture"] == "arm64"
    assert f"{registry.host}/{repo}@{children['arm64']['digest']}" in inspected["RepoDigests"]
    with puller.mounted(reference) as rootfs:
        assert (rootfs / "marker").read_bytes() == markers["arm64"]


def test_login_with_a_wrong_password_fails(registry: Registry, tmp_path: Path) -> None:
    """``podman login`` with a wrong password is refused and stores no credentials."""
    tool = podman(registry, tmp_path, "stranger")
    result = tool.attempt(
        "login",
        "--tls-verify=false",
        "--username",
        registry.username,
        "--password-stdin",
        registry.host,
        stdin="not-the-password\n",
    )
    assert result.returncode != 0, result.stdout
    # containers/image words the registry's 401 as a bad username or password
    assert "invalid username/password" in result.stderr, result.stderr
    auths = json.loads(tool.auth_file.read_text()) if tool.auth_file.exists() else {}
    assert registry.host not in auths.get("auths", {})
