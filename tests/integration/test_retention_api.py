"""The retention policy and tag pins through the management API."""

from __future__ import annotations

import uuid

from tests.support.accounts import Admin
from tests.support.oci import Client
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
