"""The reaper service applies retention on its schedule and removes abandoned uploads; two
reapers at once neither crash nor fight."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from pymongo import MongoClient

from tests.support.accounts import Admin
from tests.support.oci import Client
from tests.support.processes import (
    Registry,
    Service,
    ServiceProcess,
    start_reaper,
    start_registry,
)


def _database(registry: Registry) -> MongoClient[dict[str, object]]:
    return MongoClient(registry.env["SPACEDOCK_MONGO_URL"], tz_aware=True)


def test_two_reapers_apply_retention_and_remove_abandoned_uploads(
    registry: Registry, tmp_path: Path
) -> None:
    admin = Admin(registry.url, registry.auth)
    space = admin.space("sched")
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"{space}/app"
    for n in range(1, 5):
        client.push_image(repository, f"2.0.{n}-deployments-{n}", [uuid.uuid4().bytes])
    admin.call("PUT", f"/spaces/{space}/retention", 200, json={"deployment_tags": {"keep_last": 1}})
    session = client.request("POST", f"/v2/{repository}/blobs/uploads/")
    upload_id = session.headers["Docker-Upload-UUID"]
    now = dt.datetime.now(dt.UTC)
    with _database(registry) as mongo:
        db = mongo.get_default_database()
        for n in range(1, 4):  # the three older deployments are 40 days old
            db.tags.update_one(
                {"_id": f"{repository}:2.0.{n}-deployments-{n}"},
                {"$set": {"updated_at": now - dt.timedelta(days=40)}},
            )
        db.uploads.update_one(
            {"_id": upload_id}, {"$set": {"updated_at": now - dt.timedelta(days=2)}}
        )

    # Staged bytes no session owns, as a registry killed during a monolithic upload leaves
    # them: the old go, the fresh stay (on S3 the store tests cover it: S3 cannot backdate).
    staging = registry.data_dir / "blobs" / "uploads"
    crashed, in_flight = staging / str(uuid.uuid4()), staging / str(uuid.uuid4())
    on_filesystem = registry.env["SPACEDOCK_STORAGE"] == "filesystem"
    if on_filesystem:
        for path in (crashed, in_flight):
            path.write_bytes(b"half a blob")
        two_days_ago = time.time() - 2 * 86_400
        os.utime(crashed, (two_days_ago, two_days_ago))

    reapers = [
        start_reaper(tmp_path / f"reaper-{n}", registry, SPACEDOCK_RETENTION_INTERVAL_SECONDS="1")
        for n in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        tags: list[str] = []
        while time.monotonic() < deadline:
            tags = client.request("GET", f"/v2/{repository}/tags/list").json()["tags"]
            status = client.request(
                "GET", f"/v2/{repository}/blobs/uploads/{upload_id}"
            ).status_code
            swept = not (on_filesystem and crashed.exists())
            if tags == ["2.0.4-deployments-4"] and status == 404 and swept:
                break
            time.sleep(0.3)
        assert tags == ["2.0.4-deployments-4"], reapers[0].log_tail()
        assert (
            client.request("GET", f"/v2/{repository}/blobs/uploads/{upload_id}").status_code == 404
        )
        if on_filesystem:
            assert not crashed.exists() and in_flight.exists()
        time.sleep(2.5)  # a few more rounds, with both reapers
        for reaper in reapers:
            assert reaper.process.poll() is None, reaper.log_tail()
            assert "reaper_round_failed" not in reaper.log_path.read_text()
        applied = sum(r.log_path.read_text().count(f'"space": "{space}"') for r in reapers)
        assert applied >= 1
    finally:
        for reaper in reapers:
            reaper.stop()


def test_a_deployment_tag_pushed_makes_its_space_due_at_once(
    tmp_path: Path, mongo_server: Service, amqp_vhost: str
) -> None:
    """The reaper hears ``image.pushed``: with a day between scheduled runs, keep_last still
    applies within seconds of a new deployment tag."""
    registry = start_registry(
        tmp_path / "registry",
        f"mongodb://127.0.0.1:{mongo_server.port}/heard_{uuid.uuid4().hex[:8]}",
        extra_env={"SPACEDOCK_AMQP_URL": amqp_vhost},
    )
    reaper: ServiceProcess | None = None
    try:
        admin = Admin(registry.url, registry.auth)
        space = admin.space("heard")
        policy = {"deployment_tags": {"keep_last": 1, "retain_days": 0}}
        admin.call("PUT", f"/spaces/{space}/retention", 200, json=policy)
        reaper = start_reaper(
            tmp_path / "reaper",
            registry,
            SPACEDOCK_RETENTION_INTERVAL_SECONDS="86400",
            SPACEDOCK_RETENTION_DEBOUNCE_SECONDS="1",
        )
        _wait_for(lambda: f'"space": "{space}"' in reaper_log(reaper), "the first round")
        client = Client.for_registry(registry.url, registry.auth)
        repository = f"{space}/app"
        for n in (1, 2):
            client.push_image(repository, f"3.0.{n}-deployments-{n}", [uuid.uuid4().bytes])
        client.push_image(repository, "latest", [uuid.uuid4().bytes])

        def tags() -> list[str]:
            listed: list[str] = client.request("GET", f"/v2/{repository}/tags/list").json()["tags"]
            return sorted(listed)

        _wait_for(lambda: tags() == ["3.0.2-deployments-2", "latest"], "retention after a push")
        assert "deployment_tag_heard" in reaper_log(reaper)
    finally:
        if reaper is not None:
            reaper.stop()
        registry.stop()


def reaper_log(reaper: ServiceProcess) -> str:
    return reaper.log_path.read_text(errors="replace")


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
