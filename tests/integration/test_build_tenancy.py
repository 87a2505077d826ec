"""Builds between tenants, against real services: a build id is unique within its space only
(the same id in two spaces is two builds, over HTTP and AMQP, and a request is never answered
with another space's build), builds from before are found under their space, and a sensitive
value is never written to MongoDB in clear (checked in the database server's files)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.metadata.store import MetadataStore
from tests.support.accounts import Account, Admin
from tests.support.amqp import AMQP_URL
from tests.support.builds import (
    APP_FILES,
    Requester,
    push_base_image,
    request_for,
    sdi_files,
    upload_package,
    zip_of,
)
from tests.support.oci import Client
from tests.support.processes import (
    Registry,
    Service,
    ServiceProcess,
    start_build_stack,
    start_secantus,
)

SPACES = ("spaces-1", "spaces-2")
FINISHED = ("succeeded", "failed", "cancelled")


@dataclass
class Stack:
    registry: Registry
    builder: ServiceProcess
    database: Service  # a SecantusDB server of this module's alone
    database_dir: Path
    attacker: Account  # a writer in spaces-2, nothing in spaces-1
    sdis: dict[str, dict[str, str]]  # per space: an SDI and its application package


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    database_dir = tmp_path_factory.mktemp("tenancy-secantus")
    database = start_secantus(database_dir)
    try:
        registry, builder = start_build_stack(
            tmp_path_factory.mktemp("tenancy"), database.port, AMQP_URL
        )
    except BaseException:
        database.stop()
        raise
    try:
        admin = Admin(registry.url, registry.auth)
        admin.call("POST", "/spaces", 201, json={"id": "spaces-2", "name": "Tenant two"})
        attacker = admin.user("tenant-two-writer")
        admin.grant("spaces-2", attacker, "writer")
        yield Stack(
            registry,
            builder,
            database,
            database_dir,
            attacker,
            {space: _sdi_in(registry, space) for space in SPACES},
        )
    finally:
        builder.stop()
        registry.stop()
        database.stop()


def _sdi_in(registry: Registry, space: str) -> dict[str, str]:
    """A base image, an application package and an SDI in ``space``."""
    client = Client.for_registry(registry.url, registry.auth)
    suffix = uuid.uuid4().hex[:6]
    base = f"{space}/base-{suffix}"
    push_base_image(client, base, "1.0")
    app_id, sdi_id = f"webapp-{suffix}", f"webapp-sdi-{suffix}"
    upload_package(registry, space, f"{app_id}.1.2.1.zip", zip_of(APP_FILES))
    upload_package(
        registry,
        space,
        f"{sdi_id}.1.2.0.zip",
        zip_of(sdi_files(f"{registry.host}/{base}:1.0", app_id)),
    )
    return {"sdi": sdi_id, "app": app_id, "base": base}


def _request(stack: Stack, space: str, build_id: str, deployment: str) -> dict[str, Any]:
    request = request_for(stack.sdis[space], "Production", deployment)
    request.update(build_id=build_id, space=space)
    return request


def _finished(registry: Registry, space: str, build_id: str, auth: tuple[str, str]) -> Any:
    url = f"{registry.url}/api/v1/spaces/{space}/builds/{build_id}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = requests.get(url, auth=auth, timeout=10).json()
        if status["status"] in FINISHED:
            return status
        time.sleep(0.5)
    raise AssertionError(f"{space}/{build_id} did not finish")


def test_the_same_build_id_in_two_spaces_is_two_builds_over_http(stack: Stack) -> None:
    """A writer of spaces-2 takes an id first; the deployment server's request for spaces-1
    with the same id is still accepted and built, and each space shows its own build."""
    registry, attacker = stack.registry, stack.attacker
    build_id = f"deployments-99-web-{uuid.uuid4().hex[:6]}"
    theirs = _request(stack, "spaces-2", build_id, "deployments-99")
    ours = _request(stack, "spaces-1", build_id, "deployments-99")
    ours["image"]["tag"] = "1.2.0-ours"

    created = {}
    for space, body, auth in (
        ("spaces-2", theirs, attacker.basic),
        ("spaces-1", ours, registry.auth),
    ):
        body = {key: value for key, value in body.items() if key != "space"}
        response = requests.post(
            f"{registry.url}/api/v1/spaces/{space}/builds", json=body, auth=auth, timeout=10
        )
        assert response.status_code == 202, response.text
        assert response.json()["build_id"] == build_id
        assert response.headers["Location"] == f"/api/v1/spaces/{space}/builds/{build_id}"
        created[space] = response.json()
    assert created["spaces-1"]["status"] == "queued"  # a new build, not the other space's

    for space, body, auth in (
        ("spaces-2", theirs, attacker.basic),
        ("spaces-1", ours, registry.auth),
    ):
        status = _finished(registry, space, build_id, auth)
        assert status["status"] == "succeeded", (status, stack.builder.log_tail())
        assert status["build_id"] == build_id and status["space"] == space
        assert status["request"]["image"] == body["image"]
        assert status["result"]["space"] == space
        repository, tag = f"{space}/{body['image']['repository']}", body["image"]["tag"]
        assert status["result"]["image"] == f"{registry.host}/{repository}:{tag}"
        logs = requests.get(
            f"{registry.url}/api/v1/spaces/{space}/builds/{build_id}/logs", auth=auth, timeout=10
        )
        assert logs.status_code == 200 and logs.json()["build_id"] == build_id
    # The writer of spaces-2 cannot see or cancel the spaces-1 build of the same id.
    foreign = f"{registry.url}/api/v1/spaces/spaces-1/builds/{build_id}"
    assert requests.get(foreign, auth=attacker.basic, timeout=10).status_code in (403, 404)
    assert requests.delete(foreign, auth=attacker.basic, timeout=10).status_code in (403, 404)


def test_an_amqp_request_is_answered_with_its_own_spaces_build(stack: Stack) -> None:
    """A build of id X in spaces-2, then the deployment server's request for spaces-1 with
    id X and its own reply queue: the reply is the spaces-1 build, and the spaces-2
    requester hears nothing more."""
    build_id = f"deployments-99-web-{uuid.uuid4().hex[:6]}"
    attacker, deployment_server = Requester(), Requester()
    attacker.send(_request(stack, "spaces-2", build_id, "deployments-99"), "attacker")
    ((theirs, _),) = attacker.replies(1)
    assert theirs["data"]["space"] == "spaces-2"

    ours = _request(stack, "spaces-1", build_id, "deployments-99")
    deployment_server.send(ours, correlation_id="deployment-server")
    ((event, correlation),) = deployment_server.replies(1)
    assert correlation == "deployment-server"
    assert event["type"] == "io.spacedock.build.succeeded", (event, stack.builder.log_tail())
    result = event["data"]
    assert result["build_id"] == build_id and result["space"] == "spaces-1"
    repository = f"spaces-1/{ours['image']['repository']}"
    assert result["image"] == f"{stack.registry.host}/{repository}:{ours['image']['tag']}"
    assert event["subject"] == f"spaces-1/{build_id}"
    assert attacker.replies(1, timeout=3) == []

    # A repeat is answered with the first result of its own space, and only to its asker.
    deployment_server.send(ours, correlation_id="again")
    ((again, _),) = deployment_server.replies(1)
    assert again["data"] == result
    assert attacker.replies(1, timeout=3) == []


def test_a_sealed_field_that_does_not_open_is_request_invalid(stack: Stack) -> None:
    """Only the registry's own commands carry sealed values; one that does not open with
    the builder's key (forged, or sealed for another build) fails the request, unbuilt."""
    requester = Requester()
    request = _request(stack, "spaces-1", f"forged-{uuid.uuid4().hex[:6]}", "deployments-7")
    request.pop("sensitive_variables")
    request["sealed_sensitive_variables"] = "v1." + base64.urlsafe_b64encode(
        bytes(64)
    ).decode().rstrip("=")
    requester.send(request, correlation_id="forged")
    ((event, correlation),) = requester.replies(1)
    assert correlation == "forged" and event["type"] == "io.spacedock.build.failed"
    assert event["data"]["error"]["code"] == "request_invalid", event
    assert "sealed_sensitive_variables" in event["data"]["error"]["message"]


async def test_builds_recorded_before_builds_had_spaces_are_found_in_their_space(
    mongo_url: str,
) -> None:
    """A document keyed by the bare build id (the layout before) is moved, at start, under
    its space; the same id in another space stays free."""
    metadata = MetadataStore.connect(mongo_url)
    try:
        old = {"_id": "deployments-5-web", "space": "spaces-1", "status": "succeeded"}
        await metadata.db.builds.insert_one({**old, "request": None, "logs": ["done"]})
        await metadata.builds.ensure_indexes()
        moved = await metadata.builds.get("spaces-1", "deployments-5-web")
        assert moved is not None and moved.key == "spaces-1/deployments-5-web"
        assert moved.build_id == "deployments-5-web" and moved.logs == ("done",)
        assert await metadata.db.builds.find_one({"_id": "spaces-1/deployments-5-web"})
        assert await metadata.builds.get("spaces-2", "deployments-5-web") is None
        assert await metadata.db.builds.count_documents({}) == 1
        assert await metadata.builds.upgrade() == 0  # done once
    finally:
        await metadata.close()


def test_a_sensitive_value_is_never_written_to_mongodb_in_clear(stack: Stack) -> None:
    """After a build submitted over HTTP with a sensitive variable has finished, no file of
    the database server (data, journal, logs) holds the value: not as bytes, not in base64,
    not in UTF-16. A marker passed as a plain variable is there, so the files are read."""
    registry = stack.registry
    secret = f"Password=tenancy-{uuid.uuid4().hex}"
    marker = f"visible-marker-{uuid.uuid4().hex}"
    request = _request(stack, "spaces-1", f"sealed-{uuid.uuid4().hex[:6]}", "deployments-8")
    request.pop("space")
    request["sensitive_variables"] = {"ConnectionStrings:Db": secret, "Db": secret}
    request["variables"]["Marker"] = marker
    url = f"{registry.url}/api/v1/spaces/spaces-1/builds"
    created = requests.post(url, json=request, auth=registry.auth, timeout=10)
    assert created.status_code == 202, created.text
    status = _finished(registry, "spaces-1", request["build_id"], registry.auth)
    assert status["status"] == "succeeded", (status, stack.builder.log_tail())

    def forms(text: str) -> list[bytes]:
        raw = text.encode()
        return [
            raw,
            text.encode("utf-16-le"),
            text.encode("utf-16-be"),
            # in base64, wherever the value starts in what was encoded
            *(base64.b64encode(raw[i:])[4:-4] for i in range(3)),
            *(base64.urlsafe_b64encode(raw[i:])[4:-4] for i in range(3)),
        ]

    deadline = time.monotonic() + 30
    while True:  # the server writes its journal a moment after a commit
        files = {
            path: path.read_bytes() for path in stack.database_dir.rglob("*") if path.is_file()
        }
        if any(marker.encode() in content for content in files.values()):
            break
        assert time.monotonic() < deadline, "the marker never reached the database files"
        time.sleep(0.5)
    found = [
        (str(path.relative_to(stack.database_dir)), form[:12])
        for path, content in files.items()
        for form in forms(secret)
        if form in content
    ]
    assert found == []
