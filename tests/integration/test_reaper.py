"""The reaper service applies retention on its schedule and removes abandoned uploads; two
reapers at once neither crash nor fight."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from pathlib import Path

from pymongo import MongoClient

from tests.support.accounts import Admin
from tests.support.oci import Client
from tests.support.processes import Registry, start_reaper


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
            if tags == ["2.0.4-deployments-4"] and status == 404:
                break
            time.sleep(0.3)
        assert tags == ["2.0.4-deployments-4"], reapers[0].log_tail()
        assert (
            client.request("GET", f"/v2/{repository}/blobs/uploads/{upload_id}").status_code == 404
        )
        time.sleep(2.5)  # a few more rounds, with both reapers
        for reaper in reapers:
            assert reaper.process.poll() is None, reaper.log_tail()
            assert "reaper_round_failed" not in reaper.log_path.read_text()
        applied = sum(r.log_path.read_text().count(f'"space": "{space}"') for r in reapers)
        assert applied >= 1
    finally:
        for reaper in reapers:
            reaper.stop()
