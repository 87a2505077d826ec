"""Online garbage collection on both storage drivers: storage really freed, shared blobs
kept, a push that loses to the collector told so and fine on retry, an upload waiting for a
collector deleting the same digest, storage failures left to the next run, two collectors
never deleting the same blob twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared import garbage
from shared.garbage import collect_blobs
from shared.metadata.blobs import WRITE_CHUNK, BlobBeingDeleted
from tests.support.accounts import Admin
from tests.support.oci import Client, canonical, digest_of, error_codes
from tests.support.processes import Registry
from tests.support.stores import located, mongo_of, stores_of

GRACE_ZERO: dict[str, Any] = {"gc": {"grace_minutes": 0}}


def _unique(label: str) -> bytes:
    return f"{label} {uuid.uuid4()}".encode()


def _config(label: str) -> bytes:
    return canonical({"architecture": "amd64", "os": "linux", "label": _unique(label).decode()})


def test_retention_frees_the_storage_only_removed_images_used(registry: Registry) -> None:
    admin = Admin(registry.url, registry.auth)
    space = admin.space("gc")
    other_space = admin.space("gc-other")
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"{space}/web"
    old_only, kept_only, shared, elsewhere = (_unique(n) for n in ("old", "kept", "shared", "else"))
    old_config, new_config = _config("old"), _config("new")
    old, _ = client.push_image(
        repository, "1.0.1-deployments-1", [old_only, shared, elsewhere], config=old_config
    )
    client.push_image(repository, "1.0.2-deployments-2", [kept_only, shared], config=new_config)
    client.push_blob(f"{other_space}/mirror", elsewhere)  # another space still links it
    now = dt.datetime.now(dt.UTC)
    with mongo_of(registry) as mongo:
        db = mongo.get_default_database()
        db.tags.update_one(
            {"_id": f"{repository}:1.0.1-deployments-1"},
            {"$set": {"updated_at": now - dt.timedelta(days=40)}},
        )
        db.manifests.update_one(
            {"_id": f"{repository}@{old}"},
            {"$set": {"touched_at": now - dt.timedelta(days=40)}},
        )
    policy = {"deployment_tags": {"keep_last": 1}, **GRACE_ZERO}
    admin.call("PUT", f"/spaces/{space}/retention", 200, json=policy)
    gone = [digest_of(old_only), digest_of(old_config)]
    stay = [digest_of(b) for b in (shared, kept_only, elsewhere, new_config)]

    run_path = f"/spaces/{space}/retention/run"
    dry = admin.call("POST", run_path, 200, params={"dry_run": "true"}).json()
    assert dry["blobs_removed"] == 2
    assert dry["bytes_freed"] == len(old_only) + len(old_config)
    assert all(asyncio.run(located(registry, gone + stay)).values())  # a dry run frees nothing

    run = admin.call("POST", run_path, 200).json()
    assert [m["digest"] for m in run["manifests"]] == [old]
    assert run["blobs_removed"] == 2 and run["bytes_freed"] == dry["bytes_freed"]
    present = asyncio.run(located(registry, gone + stay))
    assert [d for d in gone if present[d]] == []
    assert [d for d in stay if not present[d]] == []
    for data in (kept_only, shared, new_config):  # the kept image still pulls whole
        response = client.request("GET", f"/v2/{repository}/blobs/{digest_of(data)}")
        assert response.status_code == 200 and response.content == data
    mirrored = client.request("GET", f"/v2/{other_space}/mirror/blobs/{digest_of(elsewhere)}")
    assert mirrored.status_code == 200
    again = admin.call("POST", run_path, 200).json()
    assert again["blobs_removed"] == 0 and again["manifests_removed"] == 0


def test_a_push_that_loses_to_the_collector_is_told_and_succeeds_on_retry(
    registry: Registry,
) -> None:
    admin = Admin(registry.url, registry.auth)
    space = admin.space("gc-race")
    admin.call("PUT", f"/spaces/{space}/retention", 200, json=GRACE_ZERO)
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"{space}/app"
    layer, config = _unique("layer"), _config("race")
    client.push_blob(repository, config)
    client.push_blob(repository, layer)
    # The collector runs between the blob uploads and the manifest: nothing references the
    # blobs yet and their grace (zero) is over.
    run = admin.call("POST", f"/spaces/{space}/retention/run", 200).json()
    assert run["blobs_removed"] == 2
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest_of(layer),
                "size": len(layer),
            }
        ],
    }
    refused = client.put_manifest(repository, "1.0.0", canonical(manifest))
    assert refused.status_code == 400 and error_codes(refused) == ["MANIFEST_BLOB_UNKNOWN"]
    head = client.request("HEAD", f"/v2/{repository}/blobs/{digest_of(layer)}")
    assert head.status_code == 404
    mount = client.request(
        "POST",
        f"/v2/{space}/other/blobs/uploads/",
        params={"mount": digest_of(layer), "from": repository},
    )
    assert mount.status_code == 202  # nothing to mount: a plain upload session instead

    digest, _ = client.push_image(repository, "1.0.0", [layer], config=config)  # the retry
    pulled = client.request("GET", f"/v2/{repository}/blobs/{digest_of(layer)}")
    assert pulled.status_code == 200 and pulled.content == layer
    assert all(asyncio.run(located(registry, [digest_of(layer), digest_of(config)])).values())
    assert client.request("GET", f"/v2/{repository}/manifests/{digest}").status_code == 200


async def test_an_upload_waits_for_a_collector_deleting_the_same_blob(registry: Registry) -> None:
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"spaces-1/gc-wait-{uuid.uuid4().hex[:6]}"
    data = _unique("blob")
    digest = client.push_blob(repository, data)
    assert client.request("DELETE", f"/v2/{repository}/blobs/{digest}").status_code == 202
    async with stores_of(registry) as (metadata, store):
        token = uuid.uuid4().hex
        claimed = await metadata.blobs.claim([digest], token, dt.timedelta(minutes=5))
        assert list(claimed.sizes) == [digest]
        outcome: dict[str, Any] = {}

        def upload_again() -> None:
            response = client.request(
                "POST", f"/v2/{repository}/blobs/uploads/", params={"digest": digest}, data=data
            )
            outcome["status"], outcome["at"] = response.status_code, time.monotonic()

        uploader = threading.Thread(target=upload_again)
        uploader.start()
        await asyncio.sleep(1.0)
        assert "status" not in outcome  # waiting for the collector
        finished_at = time.monotonic()
        assert await store.delete_blobs([digest]) == set()
        assert await metadata.blobs.forget(claimed, [digest]) == 1
        await asyncio.to_thread(uploader.join, 30)
        assert outcome["status"] == 201 and outcome["at"] >= finished_at
        assert await store.locate(digest) is not None
    pulled = client.request("GET", f"/v2/{repository}/blobs/{digest}")
    assert pulled.status_code == 200 and pulled.content == data


async def _unlinked_blobs(registry: Registry, count: int) -> list[str]:
    """``count`` blobs in storage that no repository links any more."""
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"spaces-1/gc-pool-{uuid.uuid4().hex[:6]}"

    def push_and_unlink() -> list[str]:
        digests = []
        for n in range(count):
            digest = client.push_blob(repository, _unique(f"pool {n}"))
            assert client.request("DELETE", f"/v2/{repository}/blobs/{digest}").status_code == 202
            digests.append(digest)
        return digests

    return await asyncio.to_thread(push_and_unlink)


async def test_a_storage_failure_leaves_the_blob_to_the_next_run(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    digests = await _unlinked_blobs(registry, 5)
    async with stores_of(registry) as (metadata, store):

        async def refuse(digests: list[str]) -> set[str]:
            return set(digests)

        with monkeypatch.context() as patched:
            patched.setattr(store, "delete_blobs", refuse)
            failed = await collect_blobs(metadata, store, among=digests)
        assert (failed.blobs_removed, failed.failed) == (0, 5)
        for digest in digests:
            assert await store.locate(digest) is not None
            doc = await metadata.blobs.get(digest)
            # Released at once, as a blob to upload again: pushes need not wait for a lease.
            assert doc is not None and doc["deleting_token"] is None and not doc["stored"]

        retried = await collect_blobs(metadata, store, among=digests)
        assert (retried.blobs_removed, retried.failed) == (5, 0)
        for digest in digests:
            assert await store.locate(digest) is None
            assert await metadata.blobs.get(digest) is None


async def test_two_collectors_at_once_delete_each_blob_once(registry: Registry) -> None:
    digests = await _unlinked_blobs(registry, 120)
    deleted: list[list[str]] = [[], []]

    async def collector(n: int) -> int:
        async with stores_of(registry) as (metadata, store):
            delete = store.delete_blobs

            async def counted(batch: list[str]) -> set[str]:
                deleted[n].extend(batch)
                return await delete(batch)

            store.delete_blobs = counted  # type: ignore[method-assign,assignment]
            removed = 0
            for _ in range(3):  # batches claimed concurrently, in several passes each
                removed += (await collect_blobs(metadata, store, among=digests)).blobs_removed
            return removed

    removed = await asyncio.gather(collector(0), collector(1))
    assert sum(removed) == len(digests)
    assert sorted(deleted[0] + deleted[1]) == sorted(digests)  # none deleted twice
    assert not any((await located(registry, digests)).values())


async def test_blobs_recorded_before_garbage_collection_are_upgraded(registry: Registry) -> None:
    """Documents an earlier version wrote (no reservation, claim or link count) are given
    them at start, so their blobs can be pushed, mounted and collected like any other."""
    data = _unique("from an earlier version")
    digest = digest_of(data)
    repository = f"spaces-1/gc-old-{uuid.uuid4().hex[:6]}"
    async with stores_of(registry) as (metadata, store):
        upload_id = str(uuid.uuid4())
        state = await store.begin_upload(upload_id)

        async def body() -> AsyncIterator[bytes]:
            yield data

        size, state = await store.append_upload(upload_id, state, 0, body(), None)
        await store.commit_upload(upload_id, state, digest, size)
        now = dt.datetime.now(dt.UTC)
        await metadata.db.blobs.insert_one({"_id": digest, "size": size, "created_at": now})
        await metadata.db.blob_links.insert_one(
            {
                "_id": f"{repository}@{digest}",
                "repository": repository,
                "digest": digest,
                "size": size,
                "created_at": now,
            }
        )
        assert await metadata.blobs.upgrade() >= 1
        doc = await metadata.blobs.get(digest)
        assert doc is not None and doc["stored"] and doc["links"] == 1
        assert await metadata.blobs.upgrade() == 0  # once

    client = Client.for_registry(registry.url, registry.auth)
    assert client.request("HEAD", f"/v2/{repository}/blobs/{digest}").status_code == 200
    assert client.push_blob(repository, data) == digest
    mount = client.request(
        "POST",
        f"/v2/{repository}-copy/blobs/uploads/",
        params={"mount": digest, "from": repository},
    )
    assert mount.status_code == 201


async def test_an_upload_whose_reservation_lapsed_cannot_link_a_blob_collected_meanwhile(
    registry: Registry,
) -> None:
    """Upload A reserves a blob and stalls past its lease; a collector takes the blob and
    upload B reserves it anew: A may not mark B's blob stored (its bytes may be gone)."""
    digest = digest_of(_unique("stalled"))
    repository = f"spaces-1/gc-stall-{uuid.uuid4().hex[:6]}"
    async with stores_of(registry) as (metadata, _store):
        blobs = metadata.blobs
        assert await blobs.reserve(digest, 10, "upload-a") is False
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await metadata.db.blobs.update_one({"_id": digest}, {"$set": {"writers.0.until": past}})
        claimed = await blobs.claim([digest], "collector", dt.timedelta(minutes=5))
        assert list(claimed.sizes) == [digest]
        assert await blobs.forget(claimed, [digest]) == 1
        assert await blobs.reserve(digest, 10, "upload-b") is False
        with pytest.raises(BlobBeingDeleted):
            await blobs.record_link(repository, digest, 10, "upload-a")
        doc = await blobs.get(digest)
        assert doc is not None and not doc["stored"] and doc["links"] == 0
        assert await blobs.link_size(repository, digest) is None
        await blobs.record_link(repository, digest, 10, "upload-b")  # B's own bytes: fine
        assert await blobs.link_size(repository, digest) == 10


async def test_blobs_linked_after_the_collector_read_them_stay_while_the_rest_go(
    registry: Registry,
) -> None:
    """Between reading its candidates and claiming them, two of a batch are mounted into a
    repository and one is reserved by an upload: the claim leaves those three alone, and takes
    and deletes the rest of the batch."""
    digests = await _unlinked_blobs(registry, 6)
    repository = f"spaces-1/gc-late-{uuid.uuid4().hex[:6]}"
    mounted, reserved, rest = digests[:2], digests[2], digests[3:]
    async with stores_of(registry) as (metadata, store):
        [batch] = [batch async for batch in metadata.blobs.unlinked(10, among=digests)]
        assert batch == sorted(digests)
        for digest in mounted:
            doc = await metadata.blobs.get(digest)
            assert doc is not None
            assert await metadata.blobs.link(repository, digest, int(doc["size"]))
        assert await metadata.blobs.reserve(reserved, 1, "late-upload")

        claim = await metadata.blobs.claim(batch, uuid.uuid4().hex, dt.timedelta(minutes=5))
        assert sorted(claim.sizes) == sorted(rest)
        assert await store.delete_blobs(list(claim.sizes)) == set()
        assert await metadata.blobs.forget(claim, list(claim.sizes)) == len(rest)

        assert (await collect_blobs(metadata, store, among=digests)).blobs_removed == 0
        for digest in [*mounted, reserved]:
            doc = await metadata.blobs.get(digest)
            assert doc is not None and doc["stored"] and doc["deleting_token"] is None
    present = await located(registry, digests)
    assert [d for d in digests if present[d]] == [*mounted, reserved]
    client = Client.for_registry(registry.url, registry.auth)
    for digest in mounted:
        assert client.request("GET", f"/v2/{repository}/blobs/{digest}").status_code == 200


async def test_a_collector_whose_claim_lapsed_forgets_and_releases_nothing(
    registry: Registry,
) -> None:
    """A collector stalled past its lease: another collector's claim, or an upload, has taken
    each blob over, and the stalled one's forget and release leave their documents alone."""
    taken, reserved = await _unlinked_blobs(registry, 2)
    async with stores_of(registry) as (metadata, _store):
        blobs = metadata.blobs
        lapsed = await blobs.claim([taken, reserved], "stalled", dt.timedelta(seconds=-1))
        assert sorted(lapsed.sizes) == sorted([taken, reserved])
        newer = await blobs.claim([taken], "newer", dt.timedelta(minutes=5))
        assert list(newer.sizes) == [taken]
        assert await blobs.reserve(reserved, 1, "upload") is True

        await blobs.unclaim(lapsed, [taken, reserved])
        assert await blobs.forget(lapsed, [taken, reserved]) == 0
        held = await blobs.get(taken)
        assert held is not None and held["deleting_token"] == "newer" and held["stored"]
        writing = await blobs.get(reserved)
        assert writing is not None and writing["stored"]
        assert [writer["token"] for writer in writing["writers"]] == ["upload"]
        assert await blobs.forget(newer, [taken]) == 1


async def test_many_batches_go_while_a_failed_one_is_left_for_the_next_run(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches are claimed while earlier ones are deleted: every batch is deleted and
    forgotten but the one whose storage delete fails, which is released."""
    digests = sorted(await _unlinked_blobs(registry, 11))
    monkeypatch.setattr(garbage, "BATCH", 3)
    refused = digests[3:6]  # the second batch
    async with stores_of(registry) as (metadata, store):
        delete = store.delete_blobs

        async def refuse_one_batch(batch: list[str]) -> set[str]:
            await asyncio.sleep(0.05)  # long enough for the next batch's claim to overlap
            return set(batch) if sorted(batch) == refused else await delete(batch)

        monkeypatch.setattr(store, "delete_blobs", refuse_one_batch)
        collected = await collect_blobs(metadata, store, among=digests)
        assert (collected.blobs_removed, collected.failed) == (8, 3)
        for digest in digests:
            doc = await metadata.blobs.get(digest)
            if digest in refused:
                assert doc is not None and doc["deleting_token"] is None and not doc["stored"]
            else:
                assert doc is None
    present = await located(registry, digests)
    assert [d for d in digests if present[d]] == refused


async def test_a_claim_larger_than_one_write_is_forgotten_whole(registry: Registry) -> None:
    """A claim is written, and forgotten, some ids at a time: every one of its blobs goes,
    not only the first writes' worth."""
    digests = await _unlinked_blobs(registry, WRITE_CHUNK * 2 + 5)
    async with stores_of(registry) as (metadata, _store):
        claim = await metadata.blobs.claim(digests, "collector", dt.timedelta(minutes=5))
        assert sorted(claim.sizes) == sorted(digests)
        assert await metadata.blobs.forget(claim, digests) == len(digests)
        assert [d for d in digests if await metadata.blobs.get(d) is not None] == []


async def test_indexes_no_collection_query_uses_are_dropped(registry: Registry) -> None:
    """Every blob write pays for each index: those of an earlier version that no query uses
    any more go at start."""
    async with stores_of(registry) as (metadata, _store):
        await metadata.db.blobs.create_index([("links", 1), ("touched_at", 1)])
        await metadata.db.blobs.create_index([("deleting_token", 1), ("_id", 1)])
        await metadata.blobs.ensure_indexes()
        assert sorted(await metadata.db.blobs.index_information()) == [
            "_id_",
            "_id_1_deleting_until_1",
            "links_1__id_1",
        ]
