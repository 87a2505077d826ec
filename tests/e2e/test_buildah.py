"""buildah builds on an image it pulls from the registry and pushes the result, which the
registry serves with the layers, config and history buildah made."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.containers import ContainersTool
from tests.support.docker_cli import busybox_rootfs_tar
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, Client
from tests.support.oci_layout import untar
from tests.support.processes import Registry

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"


def buildah(registry: Registry, tmp_path: Path, name: str) -> ContainersTool:
    """A buildah with its own image store, sharing the test's auth file."""
    return ContainersTool("buildah", tmp_path / name, registry, tmp_path / "auth.json")


@pytest.fixture
def base(registry: Registry, repo: str, tmp_path: Path) -> tuple[str, str]:
    """A busybox base image built with ``buildah bud`` (``FROM scratch``, ``ADD`` a root
    filesystem) and pushed to the registry from a store of its own: its reference and digest."""
    tool = buildah(registry, tmp_path, "base-builder")
    tool.login()
    context = tmp_path / "base-context"
    context.mkdir()
    busybox_rootfs_tar(context, {"etc/base-id": os.urandom(16).hex().encode()})
    (context / "Dockerfile").write_text("FROM scratch\nADD rootfs.tar /\n")
    reference = f"{registry.host}/{repo}-base:1"
    tool("bud", "--quiet", "--isolation", "chroot", "--tag", reference, str(context))
    return reference, tool.digest_after(["push"], "--tls-verify=false", reference)


def test_bud_from_a_registry_image_is_pushed_with_its_layers_config_and_history(
    registry: Registry, client: Client, repo: str, base: tuple[str, str], tmp_path: Path
) -> None:
    """``buildah bud`` in an empty store pulls ``FROM <registry>/spaces-1/...``, runs ``RUN``
    under chroot isolation, and ``buildah push`` stores base layer + one new layer, with the
    Dockerfile's config and history."""
    base_reference, base_digest = base
    tool = buildah(registry, tmp_path, "builder")
    tool.login()
    context = tmp_path / "context"
    context.mkdir()
    (context / "greeting.txt").write_text("hello from buildah\n")
    (context / "Dockerfile").write_text(
        f"FROM {base_reference}\n"
        "COPY greeting.txt /app/greeting.txt\n"
        'RUN ["/bin/sh", "-c", "echo built by buildah > /app/built.txt"]\n'
        "ENV GREETING=/app/greeting.txt\n"
        "LABEL org.example.built-by=buildah\n"
        'CMD ["/bin/cat", "/app/greeting.txt"]\n'
    )
    reference = f"{registry.host}/{repo}:1.0"
    tool(
        "bud",
        "--quiet",
        "--isolation",
        "chroot",
        "--tls-verify=false",
        "--tag",
        reference,
        str(context),
    )

    digest = tool.digest_after(["push"], "--tls-verify=false", reference)

    stored = client.request("GET", f"/v2/{repo}/manifests/1.0", headers={"Accept": OCI_MANIFEST})
    assert stored.status_code == 200, stored.text
    assert stored.headers["Content-Type"] == OCI_MANIFEST
    assert stored.headers["Docker-Content-Digest"] == digest
    manifest = stored.json()
    assert manifest["annotations"][BASE_NAME] == base_reference
    assert manifest["annotations"][BASE_DIGEST] == base_digest
    base_manifest = client.request(
        "GET", f"/v2/{repo}-base/manifests/1", headers={"Accept": OCI_MANIFEST}
    ).json()
    assert manifest["config"]["mediaType"] == OCI_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [OCI_LAYER, OCI_LAYER]
    assert manifest["layers"][0]["digest"] == base_manifest["layers"][0]["digest"]

    config_blob = client.request(
        "GET", f"/v2/{repo}/blobs/{manifest['config']['digest']}", allow_redirects=True
    )
    assert config_blob.status_code == 200, config_blob.text
    config = json.loads(config_blob.content)
    assert config["config"]["Cmd"] == ["/bin/cat", "/app/greeting.txt"]
    assert "GREETING=/app/greeting.txt" in config["config"]["Env"]
    assert config["config"]["Labels"]["org.example.built-by"] == "buildah"
    assert len(config["rootfs"]["diff_ids"]) == 2
    steps = [entry["created_by"] for entry in config["history"]]
    assert len(steps) == 6  # the base's ADD, then one entry per instruction of the Dockerfile
    assert "ADD file:" in steps[0]
    assert "COPY file:" in steps[1] and "/app/greeting.txt" in steps[1]
    assert "echo built by buildah > /app/built.txt" in steps[2]
    assert [("GREETING" in steps[3]), ("LABEL" in steps[4]), ("CMD" in steps[5])] == [True] * 3
    # the instructions' changes are committed as one layer, which the last entry carries
    assert [entry.get("empty_layer", False) for entry in config["history"]] == [
        False,
        True,
        True,
        True,
        True,
        False,
    ]

    layer = client.request(
        "GET", f"/v2/{repo}/blobs/{manifest['layers'][1]['digest']}", allow_redirects=True
    )
    assert layer.status_code == 200, layer.text
    files = untar(layer.content)
    assert files["app/greeting.txt"] == b"hello from buildah\n"
    assert files["app/built.txt"] == b"built by buildah\n"
