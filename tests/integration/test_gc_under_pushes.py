"""Retention and garbage collection running while pushes go on, with every age limit and the
grace period at zero so that the collector races each push: blobs reused from earlier pushes,
mounted from another repository, and multi-platform indexes. Afterwards no stored manifest
points at a missing blob or manifest, and every tag pulls whole; pushes that lost a race were
told so and succeeded on retry."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.accounts import Admin
from tests.support.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    canonical,
    descriptor,
    digest_of,
    error_codes,
)
from tests.support.processes import Registry, start_reaper
from tests.support.stores import located, mongo_of

PUSHERS = 3
IMAGES_PER_PUSHER = 12
MAX_IMAGES_PER_PUSHER = 60
COLLECTOR_ROUNDS = 15  # on-demand runs overlapping the pushes, besides the reaper's
LOSING_CODES = {"BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"}


class Lost(Exception):
    """The collector removed something this push relied on; the push starts again."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"{response.request.method} {response.url}: {response.text[:200]}")


@dataclass
class Pusher:
    client: Client
    space: str
    pool: list[bytes]
    name: str
    pushed: int = 0
    lost: int = 0
    failures: list[str] = field(default_factory=list)
    own_layers: list[str] = field(default_factory=list)  # a layer only one image has

    def run(self, rounds_done: Callable[[], bool]) -> None:
        """At least IMAGES_PER_PUSHER images, and on until the collector has run enough."""
        try:
            n = 0
            while n < IMAGES_PER_PUSHER or (not rounds_done() and n < MAX_IMAGES_PER_PUSHER):
                self._push_until_it_lands(n)
                n += 1
        except Exception as exc:  # reported by the test, which must not hang on a thread
            self.failures.append(repr(exc))

    def _push_until_it_lands(self, n: int) -> None:
        last = ""
        for _ in range(100):
            try:
                self._push(n)
            except Lost as loss:
                self.lost += 1
                last = str(loss)
                time.sleep(random.uniform(0, 0.1))  # a client's back-off
                continue
            self.pushed += 1
            return
        raise AssertionError(f"{self.name}: image {n} never landed; last: {last}")

    def _push(self, n: int) -> None:
        repository = f"{self.space}/app-{n % 2}"
        neighbour = f"{self.space}/app-{(n + 1) % 2}"
        tag = f"1.0.{n}-deployments-{self.name}{n}"
        if n % 3 == 2:  # a multi-platform index over two fresh images
            children = [
                self._image(repository, neighbour, n, None, platform) for platform in ("a", "b")
            ]
            index = {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    descriptor(OCI_MANIFEST, body, platform={"architecture": arch, "os": "linux"})
                    for arch, body in zip(("amd64", "arm64"), children, strict=True)
                ],
            }
            self._put(repository, tag, canonical(index), OCI_INDEX)
        else:
            self._image(repository, neighbour, n, tag, "")

    def _image(
        self, repository: str, neighbour: str, n: int, tag: str | None, variant: str
    ) -> bytes:
        layers = [self.pool[n % len(self.pool)], self.pool[(n + 2) % len(self.pool)]]
        own = f"{self.name} {n}{variant} {uuid.uuid4()}".encode()
        layers.append(own)
        self.own_layers.append(digest_of(own))
        config = canonical({"architecture": "amd64", "os": "linux", "n": f"{self.name}{n}"})
        for blob in layers[:1]:
            self._mount_or_upload(repository, neighbour, blob)
        for blob in layers[1:2]:
            self._reuse_or_upload(repository, blob)
        for blob in [*layers[2:], config]:
            self._upload(repository, blob)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(OCI_LAYER, layer) for layer in layers],
        }
        body = canonical(manifest)
        self._put(repository, tag or digest_of(body), body, OCI_MANIFEST)
        return body

    def _reuse_or_upload(self, repository: str, blob: bytes) -> None:
        """What docker does: no upload when the registry says it has the blob."""
        head = self.client.request("HEAD", f"/v2/{repository}/blobs/{digest_of(blob)}")
        if head.status_code != 200:
            self._upload(repository, blob)

    def _mount_or_upload(self, repository: str, neighbour: str, blob: bytes) -> None:
        mount = self.client.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            params={"mount": digest_of(blob), "from": neighbour},
        )
        if mount.status_code == 201:
            return
        _expect(mount, 202)
        finish = self.client.request(
            "PUT", mount.headers["Location"], params={"digest": digest_of(blob)}, data=blob
        )
        _expect(finish, 201)

    def _upload(self, repository: str, blob: bytes) -> None:
        response = self.client.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            params={"digest": digest_of(blob)},
            data=blob,
        )
        _expect(response, 201)

    def _put(self, repository: str, reference: str, body: bytes, media_type: str) -> None:
        _expect(self.client.put_manifest(repository, reference, body, media_type), 201)


def _expect(response: requests.Response, status: int) -> None:
    if response.status_code == status:
        return
    if response.status_code in (400, 404) and set(error_codes(response)) <= LOSING_CODES:
        raise Lost(response)
    raise AssertionError(f"{response.status_code} {response.text[:300]}")


def test_no_manifest_ever_points_at_a_missing_blob(registry: Registry, tmp_path: Path) -> None:
    admin = Admin(registry.url, registry.auth)
    space = admin.space("gc-rounds")
    policy = {
        "deployment_tags": {"keep_last": 1, "retain_days": 0},
        "untagged_manifests": {"retain_hours": 0},
        "gc": {"grace_minutes": 0},
    }
    admin.call("PUT", f"/spaces/{space}/retention", 200, json=policy)
    pool = [f"shared layer {n} {uuid.uuid4()}".encode() for n in range(5)]
    pushers = [
        Pusher(Client.for_registry(registry.url, registry.auth), space, pool, f"p{n}")
        for n in range(PUSHERS)
    ]
    collected: dict[str, int] = {"runs": 0, "blobs_removed": 0, "manifests_removed": 0}
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            run = admin.call("POST", f"/spaces/{space}/retention/run", 200).json()
            collected["runs"] += 1
            collected["blobs_removed"] += run["blobs_removed"]
            collected["manifests_removed"] += run["manifests_removed"]
            # Irregular pauses: runs land at every point of a push, yet leave a push that lost
            # room to land on its retry (with no grace, a collector that never paused would
            # win every race).
            stop.wait(random.uniform(0.2, 1.0))

    reaper = start_reaper(
        tmp_path / "reaper",
        registry,
        SPACEDOCK_RETENTION_INTERVAL_SECONDS="1",
        SPACEDOCK_RETENTION_DEBOUNCE_SECONDS="1",
    )
    collector = threading.Thread(target=collect)
    threads = [
        threading.Thread(target=p.run, args=(lambda: collected["runs"] >= COLLECTOR_ROUNDS,))
        for p in pushers
    ]
    try:
        collector.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
    finally:
        stop.set()
        collector.join(60)
        reaper.stop()
    assert [f for p in pushers for f in p.failures] == []
    assert min(p.pushed for p in pushers) >= IMAGES_PER_PUSHER
    assert collected["runs"] >= COLLECTOR_ROUNDS, collected
    # Retention and GC really ran during the pushes (here or in the reaper): layers of images
    # that lost their tags are gone from storage.
    own_layers = [digest for p in pushers for digest in p.own_layers]
    assert not all(asyncio.run(located(registry, own_layers)).values()), collected
    assert "reaper_round_failed" not in reaper.log_path.read_text()

    referenced = _check_stored_references(registry, space)
    present = asyncio.run(located(registry, sorted(referenced)))
    assert [d for d, there in present.items() if not there] == []
    _pull_every_tag(Client.for_registry(registry.url, registry.auth), space)
    print(f"rounds: {collected}, lost races: {sum(p.lost for p in pushers)}")


def _check_stored_references(registry: Registry, space: str) -> set[str]:
    """Every manifest's blobs are known and not being deleted, every index's manifests and
    every tag's manifest exist; the blobs referenced."""
    with mongo_of(registry) as mongo:
        db = mongo.get_default_database()
        in_space = {"repository": {"$regex": f"^{space}/"}}
        manifests = {doc["_id"]: doc for doc in db.manifests.find(in_space, {"content": 0})}
        referenced = {blob for doc in manifests.values() for blob in doc["blobs"]}
        blobs = {doc["_id"]: doc for doc in db.blobs.find({"_id": {"$in": list(referenced)}})}
        assert sorted(referenced - set(blobs)) == []
        assert [d for d, doc in blobs.items() if doc["deleting_token"] or not doc["stored"]] == []
        for doc in manifests.values():
            for child in doc["manifests"]:
                assert f"{doc['repository']}@{child}" in manifests
        for tag in db.tags.find(in_space):
            assert f"{tag['repository']}@{tag['digest']}" in manifests
        return referenced


def _pull_every_tag(client: Client, space: str) -> None:
    accept = ", ".join([OCI_MANIFEST, OCI_INDEX])
    for name in ("app-0", "app-1"):
        repository = f"{space}/{name}"
        tags = client.request("GET", f"/v2/{repository}/tags/list").json()["tags"] or []
        for tag in tags:
            response = client.request(
                "GET", f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept}
            )
            assert response.status_code == 200, response.text
            for manifest in _manifests_of(client, repository, response.json()):
                for blob in [manifest["config"], *manifest["layers"]]:
                    pulled = client.request("GET", f"/v2/{repository}/blobs/{blob['digest']}")
                    assert pulled.status_code == 200 and digest_of(pulled.content) == blob["digest"]


def _manifests_of(client: Client, repository: str, document: dict[str, Any]) -> list[Any]:
    if document.get("mediaType") != OCI_INDEX:
        return [document]
    children = []
    for entry in document["manifests"]:
        child = client.request(
            "GET",
            f"/v2/{repository}/manifests/{entry['digest']}",
            headers={"Accept": OCI_MANIFEST},
        )
        assert child.status_code == 200, child.text
        children.append(child.json())
    return children
