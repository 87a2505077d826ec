"""Events on RabbitMQ: their CloudEvents shape, and no loss through broker outages, registry
crashes and several instances relaying the same outbox."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from pymongo import MongoClient

from tests.support.amqp import AMQP_URL, EventQueue, Received, start_broker, stop_broker
from tests.support.oci import OCI_MANIFEST, Client, canonical, descriptor, digest_of
from tests.support.processes import Registry, Service, restart_registry, start_registry

PUBLIC_URL = "https://registry.example.test"


@pytest.fixture
def events() -> Iterator[EventQueue]:
    queue = EventQueue("image.*")
    yield queue
    queue.delete()


def _start(workdir: Path, database: str, **env: str) -> Registry:
    return start_registry(
        workdir,
        database,
        extra_env={"SPACEDOCK_AMQP_URL": AMQP_URL, "SPACEDOCK_PUBLIC_URL": PUBLIC_URL, **env},
    )


@pytest.fixture
def database(mongo_server: Service) -> str:
    return f"mongodb://127.0.0.1:{mongo_server.port}/events_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def amqp_registry(tmp_path: Path, database: str) -> Iterator[Registry]:
    registry = _start(tmp_path / "registry", database)
    yield registry
    registry.stop()


class Pusher:
    """Pushes many small distinct images to one repository: one config and layer, and a
    manifest per tag that differs by an annotation."""

    def __init__(self, client: Client, repo: str) -> None:
        self.client = client
        self.repo = repo
        self.config = canonical({"architecture": "amd64", "os": "linux"})
        self.layer = b"shared layer " + repo.encode()
        client.push_blob(repo, self.config)
        client.push_blob(repo, self.layer)

    def manifest(self, tag: str) -> bytes:
        return canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor("application/vnd.oci.image.config.v1+json", self.config),
                "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", self.layer)],
                "annotations": {"tag": tag},
            }
        )

    def push(self, tag: str) -> tuple[str, str] | None:
        """(tag, digest) when the registry confirmed the push; None when it did not."""
        body = self.manifest(tag)
        try:
            response = self.client.put_manifest(self.repo, tag, body)
        except requests.RequestException:
            return None
        return (tag, digest_of(body)) if response.status_code == 201 else None


def _pushed(received: list[Received], repo: str) -> set[tuple[str, str]]:
    return {
        (r.data["tag"], r.data["digest"])
        for r in received
        if r.routing_key == "image.pushed" and r.data["repository"] == repo
    }


def test_push_and_delete_events_are_cloudevents_with_public_references(
    amqp_registry: Registry, events: EventQueue
) -> None:
    """A tag push, a digest-only push, a tag delete and a manifest delete each say what
    happened, as CloudEvents 1.0 on spacedock.events, with references on the public host."""
    client = Client.for_registry(amqp_registry.url, amqp_registry.auth)
    repo = f"spaces-1/events-{uuid.uuid4().hex[:6]}"
    pusher = Pusher(client, repo)
    tagged, untagged = pusher.manifest("1.0.0"), pusher.manifest("digest-only")
    assert client.put_manifest(repo, "1.0.0", tagged).status_code == 201
    assert client.put_manifest(repo, "latest", tagged).status_code == 201
    assert client.put_manifest(repo, digest_of(untagged), untagged).status_code == 201
    assert client.request("DELETE", f"/v2/{repo}/manifests/latest").status_code == 202
    assert client.request("DELETE", f"/v2/{repo}/manifests/{digest_of(tagged)}").status_code == 202

    received = events.drain(lambda got: len(got) >= 6, timeout=30)
    summary = sorted((r.routing_key, r.data["tag"] or "", r.data["digest"]) for r in received)
    assert summary == sorted(
        [
            ("image.pushed", "1.0.0", digest_of(tagged)),
            ("image.pushed", "latest", digest_of(tagged)),
            ("image.pushed", "", digest_of(untagged)),
            ("image.deleted", "latest", digest_of(tagged)),
            ("image.deleted", "1.0.0", digest_of(tagged)),
            ("image.deleted", "", digest_of(tagged)),
        ]
    )
    first = next(r for r in received if r.data["tag"] == "1.0.0")
    event, host = first.event, "registry.example.test"
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.spacedock.image.pushed"
    assert event["datacontenttype"] == "application/json"
    assert event["time"].endswith("Z")
    assert event["subject"] == f"{host}/{repo}:1.0.0@{digest_of(tagged)}"
    assert first.data == {
        "space": "spaces-1",
        "repository": repo,
        "tag": "1.0.0",
        "digest": digest_of(tagged),
        "media_type": OCI_MANIFEST,
        "size": len(tagged),
        "reference": f"{host}/{repo}:1.0.0@{digest_of(tagged)}",
        "pushed_by": "admin",
        "pushed_at": event["time"],
    }
    assert first.properties["content_type"] == "application/cloudevents+json"
    assert first.properties["delivery_mode"] == 2
    assert first.properties["message_id"] == event["id"]
    digest_only = next(r for r in received if r.data["digest"] == digest_of(untagged))
    assert digest_only.data["reference"] == f"{host}/{repo}@{digest_of(untagged)}"
    deleted = next(r for r in received if r.routing_key == "image.deleted")
    assert deleted.data["deleted_by"] == "admin" and "deleted_at" in deleted.data
    assert len({r.event["id"] for r in received}) == 6


def test_500_pushes_through_a_broker_restart_give_500_events(
    amqp_registry: Registry, events: EventQueue
) -> None:
    """RabbitMQ is stopped and started while 500 pushes go on: every push succeeds, and
    every one is announced once the broker is back."""
    client = Client.for_registry(amqp_registry.url, amqp_registry.auth)
    repo = f"spaces-1/outage-{uuid.uuid4().hex[:6]}"
    pusher = Pusher(client, repo)
    tags = [f"1.0.{i}" for i in range(500)]
    outage = threading.Timer(0.5, stop_broker)
    outage.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            first_half = list(pool.map(pusher.push, tags[:250]))
            outage.join()
            second_half = list(pool.map(pusher.push, tags[250:]))
    finally:
        outage.join()
        start_broker()
    confirmed = {push for push in first_half + second_half if push is not None}
    assert len(confirmed) == 500

    received = events.drain(lambda got: _pushed(got, repo) >= confirmed, timeout=90)
    assert _pushed(received, repo) == confirmed
    ids = [r.event["id"] for r in received if r.data["repository"] == repo]
    assert len(set(ids)) >= 500


def test_every_completed_push_is_announced_after_a_sigkill(
    tmp_path: Path, database: str, events: EventQueue
) -> None:
    """The registry is killed with SIGKILL in the middle of pushes; after a restart every
    push that was confirmed to its client still yields its event."""
    registry = _start(tmp_path / "before", database)
    client = Client.for_registry(registry.url, registry.auth)
    repo = f"spaces-1/crash-{uuid.uuid4().hex[:6]}"
    pusher = Pusher(client, repo)
    confirmed: set[tuple[str, str]] = set()
    lock = threading.Lock()

    def push(tag: str) -> None:
        result = pusher.push(tag)
        if result is not None:
            with lock:
                confirmed.add(result)
                if len(confirmed) == 150:
                    registry.service.kill()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(push, [f"2.0.{i}" for i in range(400)]))
    assert 150 <= len(confirmed) < 400
    restarted = restart_registry(registry, tmp_path / "after")
    try:
        received = events.drain(lambda got: _pushed(got, repo) >= confirmed, timeout=90)
        assert confirmed <= _pushed(received, repo)
    finally:
        restarted.stop()


def test_two_instances_relay_one_outbox_without_publishing_twice(
    tmp_path: Path, database: str, events: EventQueue
) -> None:
    """Two registries share a database and a broker; pushes to both are each announced
    exactly once, although both relays read the same outbox."""
    first = _start(tmp_path / "a", database)
    second = _start(tmp_path / "b", database)
    try:
        repo = f"spaces-1/pair-{uuid.uuid4().hex[:6]}"
        pushers = [Pusher(Client.for_registry(r.url, r.auth), repo) for r in (first, second)]
        tags = [f"3.0.{i}" for i in range(300)]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: pushers[i % 2].push(tags[i]), range(300)))
        confirmed = {result for result in results if result is not None}
        assert len(confirmed) == 300
        received = events.drain(lambda got: _pushed(got, repo) >= confirmed, timeout=60)
        # Anything published twice would have arrived by now as well.
        received = events.drain(lambda got: False, timeout=2, received=received)
        pushed = [r for r in received if r.routing_key == "image.pushed"]
        assert len(pushed) == 300
        assert len({r.event["id"] for r in pushed}) == 300
    finally:
        first.stop()
        second.stop()


def test_without_amqp_the_outbox_drains_to_the_in_process_bus(registry: Registry) -> None:
    """With SPACEDOCK_AMQP_URL unset the same events are recorded and relayed in-process:
    the outbox empties."""
    client = Client.for_registry(registry.url, registry.auth)
    repo = f"spaces-1/inproc-{uuid.uuid4().hex[:6]}"
    Pusher(client, repo).push("1.0.0")
    mongo: MongoClient[dict[str, object]] = MongoClient(registry.env["SPACEDOCK_MONGO_URL"])
    with mongo:
        outbox = mongo.get_default_database().outbox
        deadline = time.monotonic() + 10
        while outbox.count_documents({}) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outbox.count_documents({}) == 0
