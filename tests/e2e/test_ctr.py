"""containerd's ``ctr`` pushes to and pulls from the registry over plain HTTP with
``--user``, and what it pulls has the digests that were pushed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import succeed
from tests.support.containers import Ctr
from tests.support.oci import OCI_INDEX, OCI_MANIFEST, Client
from tests.support.oci_layout import LayoutWriter, read_blob
from tests.support.processes import Registry

PLATFORMS = ["amd64", "arm64"]


@pytest.fixture
def ctr(registry: Registry) -> Iterator[Ctr]:
    """``ctr`` in a namespace of its own on the engine's containerd, removed afterwards."""
    tool = Ctr(registry)
    yield tool
    tool.remove_namespace()


def archive_of(layout: LayoutWriter, tmp_path: Path) -> Path:
    """The layout as an OCI archive, the form ``ctr images import`` reads."""
    archive = tmp_path / f"{layout.root.name}.tar"
    succeed(["tar", "-C", str(layout.root), "-cf", str(archive), "."])
    return archive


def test_imported_image_is_pushed_and_pulled_back(
    registry: Registry, client: Client, ctr: Ctr, repo: str, tmp_path: Path
) -> None:
    """``ctr images push --plain-http --user`` stores the image byte for byte; after removing
    it, ``ctr images pull`` gets the same digest and blobs, and unpacks it."""
    layout = LayoutWriter(tmp_path / "layout")
    manifest = layout.image("amd64", {"etc/pushed-by": f"ctr {ctr.namespace}\n".encode()})
    layout.tag("v1", manifest)
    ctr(
        "images",
        "import",
        "--base-name",
        f"{registry.host}/{repo}",
        str(archive_of(layout, tmp_path)),
    )
    reference = f"{registry.host}/{repo}:v1"

    ctr("images", "push", *ctr.remote_args(), reference)

    stored = client.request("GET", f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert stored.status_code == 200, stored.text
    assert stored.headers["Content-Type"] == OCI_MANIFEST
    assert stored.headers["Docker-Content-Digest"] == manifest["digest"]
    assert stored.content == read_blob(layout.root, manifest["digest"])
    body = stored.json()
    blobs = [body["config"]["digest"], *(layer["digest"] for layer in body["layers"])]
    for digest in blobs:
        blob = client.request("GET", f"/v2/{repo}/blobs/{digest}", allow_redirects=True)
        assert blob.content == read_blob(layout.root, digest), digest

    ctr("images", "rm", "--sync", reference)
    assert reference not in ctr("images", "ls", "--quiet").split()
    pulled = ctr("images", "pull", *ctr.remote_args(), reference)

    assert f"unpacking linux/amd64 {manifest['digest']}" in pulled
    assert ctr.image_digest(reference) == manifest["digest"]
    for digest in blobs:
        assert ctr.content(digest) == read_blob(layout.root, digest), digest


def test_index_is_pulled_for_every_platform_and_pushed_to_another_repository(
    registry: Registry, client: Client, ctr: Ctr, repo: str, tmp_path: Path
) -> None:
    """``ctr images pull --all-platforms`` of a two-platform OCI index fetches both images;
    ``ctr images push`` of it to another repository stores the same index digest."""
    layout = LayoutWriter(tmp_path / "layout")
    children = [
        layout.image(
            arch,
            {"etc/platform": f"linux/{arch}\n".encode()},
            platform={"architecture": arch, "os": "linux"},
        )
        for arch in PLATFORMS
    ]
    index = layout.index(children)
    for child in children:
        body = json.loads(read_blob(layout.root, child["digest"]))
        for blob in [body["config"], *body["layers"]]:
            client.push_blob(repo, read_blob(layout.root, blob["digest"]))
        put = client.put_manifest(repo, child["digest"], read_blob(layout.root, child["digest"]))
        assert put.status_code == 201, put.text
    put = client.put_manifest(repo, "multi", read_blob(layout.root, index["digest"]), OCI_INDEX)
    assert put.status_code == 201, put.text
    reference = f"{registry.host}/{repo}:multi"

    ctr("images", "pull", "--all-platforms", *ctr.remote_args(), reference)

    assert ctr.image_digest(reference) == index["digest"]
    for child in children:
        assert ctr.content(child["digest"]) == read_blob(layout.root, child["digest"])

    copy = f"{registry.host}/{repo}-copy:multi"
    ctr("images", "tag", reference, copy)
    ctr("images", "push", *ctr.remote_args(), copy)

    stored = client.request(
        "GET", f"/v2/{repo}-copy/manifests/multi", headers={"Accept": OCI_INDEX}
    )
    assert stored.status_code == 200, stored.text
    assert stored.headers["Content-Type"] == OCI_INDEX
    assert stored.headers["Docker-Content-Digest"] == index["digest"]
    for child in children:
        fetched = client.request(
            "GET", f"/v2/{repo}-copy/manifests/{child['digest']}", headers={"Accept": OCI_MANIFEST}
        )
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == read_blob(layout.root, child["digest"])


def test_pull_with_a_wrong_password_is_refused(
    registry: Registry, client: Client, ctr: Ctr, repo: str
) -> None:
    """``ctr images pull --user admin:<wrong>`` fails as unauthorized and stores nothing."""
    client.push_image(repo, "1", [b"not for strangers"])
    reference = f"{registry.host}/{repo}:1"

    result = ctr.attempt(
        "images", "pull", "--plain-http", "--user", f"{registry.username}:wrong", reference
    )

    assert result.returncode != 0, result.stdout
    assert "401 Unauthorized" in result.stderr, result.stderr
    assert ctr("images", "ls", "--quiet").split() == []
