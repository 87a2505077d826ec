"""The retention policy and tag pins through the management API."""

from __future__ import annotations

import datetime as dt
import uuid

from pymongo import MongoClient

from tests.support.accounts import Admin
from tests.support.oci import (
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Client,
    canonical,
    descriptor,
    digest_of,
)
from tests.support.processes import Registry


def test_policy_defaults_validation_and_roles(registry: Registry) -> None:
    admin = Admin(registry.url, registry.auth)
    space = admin.space("ret")
    policy = admin.call("GET", f"/spaces/{space}/retention", 200).json()
    assert policy == {
        "space": space,
        "deployment_tags": {"pattern": r"^.+-deployments-\d+$", "retain_days": 30, "keep_last": 10},
        "untagged_manifests": {"retain_hours": 24},
        "gc": {"grace_minutes": 60},
    }
    changed = admin.call(
        "PUT", f"/spaces/{space}/retention", 200,
        json={"deployment_tags": {"keep_last": 3, "retain_days": 7}, "gc": {"grace_minutes": 0}},
    ).json()  # fmt: skip
    assert changed["deployment_tags"]["keep_last"] == 3 and changed["gc"]["grace_minutes"] == 0
    assert changed["untagged_manifests"]["retain_hours"] == 24
    assert admin.call("GET", f"/spaces/{space}/retention", 200).json() == changed
    bad_policies: list[dict[str, object]] = [
        {"deployment_tags": {"pattern": "("}},
        {"deployment_tags": {"keep_last": -1}},
        {"nope": {}},
    ]
    for bad in bad_policies:
        admin.call("PUT", f"/spaces/{space}/retention", 422, json=bad)
    assert admin.call("GET", f"/spaces/{space}/retention", 200).json() == changed

    reader = admin.user("ret-reader")
    admin.grant(space, reader, "reader")
    as_reader = Admin(registry.url, reader.basic)
    as_reader.call("GET", f"/spaces/{space}/retention", 200)
    as_reader.call("PUT", f"/spaces/{space}/retention", 403, json={})


def test_pins(registry: Registry) -> None:
    admin = Admin(registry.url, registry.auth)
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"spaces-1/pinned/app-{uuid.uuid4().hex[:6]}"
    client.push_image(repository, "1.0.0-deployments-1", [b"layer"])
    path = f"/spaces/spaces-1/repositories/{repository.split('/', 1)[1]}/tags"
    pin = admin.call("PUT", f"{path}/1.0.0-deployments-1/pin", 201).json()
    assert pin["repository"] == repository and pin["pinned"] and pin["pinned_by"] == "admin"
    admin.call("PUT", f"{path}/1.0.0-deployments-1/pin", 200)
    admin.call("PUT", f"{path}/no-such-tag/pin", 404)
    admin.call("PUT", f"{path}/bad tag!/pin", 400)

    writer = admin.user("pinner")
    admin.grant("spaces-1", writer, "writer")
    as_writer = Admin(registry.url, writer.basic)
    as_writer.call("PUT", f"{path}/1.0.0-deployments-1/pin", 200)
    as_writer.call("DELETE", f"{path}/1.0.0-deployments-1/pin", 403)
    admin.call("DELETE", f"{path}/1.0.0-deployments-1/pin", 204)
    admin.call("DELETE", f"{path}/1.0.0-deployments-1/pin", 404)


def _backdate(
    registry: Registry, repository: str, *, tags: dict[str, float], manifests: dict[str, float]
) -> None:
    """Make tags look pushed, and manifests pushed, that many days ago."""
    now = dt.datetime.now(dt.UTC)
    mongo: MongoClient[dict[str, object]] = MongoClient(registry.env["SPACEDOCK_MONGO_URL"])
    with mongo:
        db = mongo.get_default_database()
        for tag, days in tags.items():
            db.tags.update_one(
                {"_id": f"{repository}:{tag}"},
                {"$set": {"updated_at": now - dt.timedelta(days=days)}},
            )
        for digest, days in manifests.items():
            db.manifests.update_one(
                {"_id": f"{repository}@{digest}"},
                {
                    "$set": {
                        "created_at": now - dt.timedelta(days=days),
                        "touched_at": now - dt.timedelta(days=days),
                    }
                },
            )


def test_a_run_removes_what_the_policy_says_and_a_dry_run_nothing(registry: Registry) -> None:
    admin = Admin(registry.url, registry.auth)
    space = admin.space("reap")
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"{space}/web"
    digests = {}
    for n in range(1, 6):
        digests[n], _ = client.push_image(
            repository, f"1.0.{n}-deployments-{n}", [f"layer {n}".encode()]
        )
    client.put_manifest(
        repository,
        "1.0.0",
        client.request("GET", f"/v2/{repository}/manifests/1.0.3-deployments-3").content,
    )
    # A referrer (an SBOM) of deployment 4's image, untagged and old: it stays with its image.
    empty = client.push_blob(repository, b"{}")
    sbom = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": digests[4], "size": 1},
    }
    sbom_body = canonical(sbom)
    assert client.put_manifest(repository, digest_of(sbom_body), sbom_body).status_code == 201
    ages: dict[str, float] = {"1.0.0": 400}
    for n, days in {1: 100, 2: 90, 3: 80, 4: 3, 5: 1}.items():
        ages[f"1.0.{n}-deployments-{n}"] = days
    old: dict[str, float] = {digests[n]: 100 for n in range(1, 6)}
    old[digest_of(sbom_body)] = 100
    _backdate(registry, repository, tags=ages, manifests=old)
    admin.call(
        "PUT",
        f"/spaces/{space}/retention",
        200,
        json={"deployment_tags": {"keep_last": 2, "retain_days": 30}},
    )
    admin.call("PUT", f"/spaces/{space}/repositories/web/tags/1.0.2-deployments-2/pin", 201)

    dry = admin.call(
        "POST", f"/spaces/{space}/retention/run", 200, params={"dry_run": "true"}
    ).json()
    assert dry["dry_run"] is True
    assert sorted(t["tag"] for t in dry["removed"]) == [
        "1.0.1-deployments-1",
        "1.0.3-deployments-3",
    ]
    assert [m["digest"] for m in dry["manifests"]] == [digests[1]]
    assert dry["bytes_freed"] > 0
    tags_before = client.request("GET", f"/v2/{repository}/tags/list").json()["tags"]
    assert len(tags_before) == 6  # a dry run changes nothing

    run = admin.call("POST", f"/spaces/{space}/retention/run", 200).json()
    assert run["dry_run"] is False and run["manifests_removed"] == 1
    tags_after = client.request("GET", f"/v2/{repository}/tags/list").json()["tags"]
    assert sorted(tags_after) == [
        "1.0.0",
        "1.0.2-deployments-2",
        "1.0.4-deployments-4",
        "1.0.5-deployments-5",
    ]
    assert client.request("GET", f"/v2/{repository}/manifests/{digests[1]}").status_code == 404
    # Deployment 3's tag went, its manifest stays for 1.0.0; the SBOM stays with its image.
    assert client.request("GET", f"/v2/{repository}/manifests/{digests[3]}").status_code == 200
    assert (
        client.request("GET", f"/v2/{repository}/manifests/{digest_of(sbom_body)}").status_code
        == 200
    )
    again = admin.call("POST", f"/spaces/{space}/retention/run", 200).json()
    assert again["removed"] == [] and again["manifests_removed"] == 0


def test_indexes_keep_their_manifests_and_referrers_go_with_their_subjects(
    registry: Registry,
) -> None:
    """Backdated multi-platform images: a removed index takes its platform manifests and
    their referrers, except a platform manifest a kept index also lists; a kept index keeps
    its manifests and its signature."""
    admin = Admin(registry.url, registry.auth)
    space = admin.space("multi")
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"{space}/web"

    def platform_image(label: str) -> bytes:
        _digest, body = client.push_image(repository, None, [f"{label} {uuid.uuid4()}".encode()])
        return body

    def index_of(*children: bytes) -> tuple[str, bytes]:
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, child) for child in children],
        }
        body = canonical(index)
        return digest_of(body), body

    def referrer_of(subject: bytes, artifact_type: str) -> str:
        empty = client.push_blob(repository, b"{}")
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [],
            "subject": descriptor(OCI_MANIFEST, subject),
        }
        body = canonical(document)
        assert client.put_manifest(repository, digest_of(body), body).status_code == 201
        return digest_of(body)

    old_amd64, old_arm64, shared_arm64 = (platform_image(p) for p in ("a1", "r1", "shared"))
    new_amd64 = platform_image("a2")
    old_sbom = referrer_of(old_amd64, "application/spdx+json")
    new_signature = referrer_of(new_amd64, "application/vnd.dev.cosign.signature")
    old_index, old_body = index_of(old_amd64, old_arm64, shared_arm64)
    new_index, new_body = index_of(new_amd64, shared_arm64)
    for tag, body in (("1.0.1-deployments-1", old_body), ("1.0.2-deployments-2", new_body)):
        assert client.put_manifest(repository, tag, body, OCI_INDEX).status_code == 201
    all_manifests = [digest_of(b) for b in (old_amd64, old_arm64, shared_arm64, new_amd64)]
    all_manifests += [old_sbom, new_signature, old_index, new_index]
    _backdate(
        registry,
        repository,
        tags={"1.0.1-deployments-1": 60, "1.0.2-deployments-2": 50},
        manifests=dict.fromkeys(all_manifests, 60.0),
    )
    admin.call("PUT", f"/spaces/{space}/retention", 200, json={"deployment_tags": {"keep_last": 1}})
    run = admin.call("POST", f"/spaces/{space}/retention/run", 200).json()
    assert [t["tag"] for t in run["removed"]] == ["1.0.1-deployments-1"]
    removed = {m["digest"] for m in run["manifests"]}
    assert removed == {old_index, digest_of(old_amd64), digest_of(old_arm64), old_sbom}
    for digest in (new_index, digest_of(new_amd64), digest_of(shared_arm64), new_signature):
        assert client.request("GET", f"/v2/{repository}/manifests/{digest}").status_code == 200
    for digest in removed:
        assert client.request("GET", f"/v2/{repository}/manifests/{digest}").status_code == 404
    referrers = client.request("GET", f"/v2/{repository}/referrers/{digest_of(new_amd64)}")
    assert [m["digest"] for m in referrers.json()["manifests"]] == [new_signature]
