"""Source Docker Image builds through RabbitMQ and HTTP, with the assembled strategy (no
Docker engine): the image in the registry holds every configured file, and the secret is
nowhere but its files."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import os
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.amqp import AMQP_URL
from tests.support.builds import (
    APP_FILES,
    SECRET,
    Requester,
    check_files,
    layer_of,
    push_base_image,
    push_zip_package,
    request_for,
    sdi_files,
    upload_package,
    zip_of,
)
from tests.support.commands import run
from tests.support.oci import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    canonical,
    digest_of,
)
from tests.support.processes import (
    BIN,
    Registry,
    Service,
    ServiceProcess,
    start_build_stack,
    start_builder,
)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[tuple[Registry, ServiceProcess]]:
    registry, builder = start_build_stack(
        tmp_path_factory.mktemp("builds"), mongo_server.port, AMQP_URL
    )
    yield registry, builder
    builder.stop()
    registry.stop()


@pytest.fixture(scope="module")
def sdi(stack: tuple[Registry, ServiceProcess]) -> dict[str, str]:
    """A base image, an application package and an SDI that uses every feature."""
    registry, _ = stack
    client = Client.for_registry(registry.url, registry.auth)
    suffix = uuid.uuid4().hex[:6]
    base = f"spaces-1/base-{suffix}"
    push_base_image(client, base, "1.0")
    app_id, sdi_id = f"webapp-{suffix}", f"webapp-sdi-{suffix}"
    upload_package(registry, "spaces-1", f"{app_id}.1.2.1.zip", zip_of(APP_FILES))
    files = sdi_files(f"{registry.host}/{base}:1.0", app_id)
    upload_package(registry, "spaces-1", f"{sdi_id}.1.2.0.zip", zip_of(files))
    return {"sdi": sdi_id, "app": app_id, "base": base}


def image_files(
    client: Client, repository: str, reference: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The image's config and the files of its layers (later layers win)."""
    manifest = client.request("GET", f"/v2/{repository}/manifests/{reference}").json()
    config = client.request("GET", f"/v2/{repository}/blobs/{manifest['config']['digest']}").json()
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        blob = client.request("GET", f"/v2/{repository}/blobs/{layer['digest']}").content
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    files["/" + member.name] = extracted.read()
    return config, files


def test_a_build_request_over_amqp_becomes_an_environment_specific_image(
    stack: tuple[Registry, ServiceProcess], sdi: dict[str, str]
) -> None:
    registry, builder = stack
    requester = Requester()
    results = {}
    for environment, deployment in (("Production", "deployments-75"), ("Test", "deployments-76")):
        request = request_for(sdi, environment, deployment)
        requester.send(request, correlation_id=f"corr-{deployment}")
        ((event, correlation),) = requester.replies(1)
        assert correlation == f"corr-{deployment}"
        assert event["type"] == "io.spacedock.build.succeeded", (event, builder.log_tail())
        results[environment] = (request, event["data"])

    client = Client.for_registry(registry.url, registry.auth)
    (version,) = requests.get(
        f"{registry.url}/api/v1/spaces/spaces-1/packages/{sdi['sdi']}/versions",
        auth=registry.auth, timeout=10,
    ).json()["versions"]  # fmt: skip
    pushed = dt.datetime.fromisoformat(version["pushed_at"])
    sdi_pushed_at = pushed if pushed.tzinfo else pushed.replace(tzinfo=dt.UTC)  # stored in UTC
    for environment, (request, result) in results.items():
        repository = f"spaces-1/{request['image']['repository']}"
        tag = request["image"]["tag"]
        assert result["image"] == f"{registry.host}/{repository}:{tag}"
        assert result["reference"] == f"{result['image']}@{result['digest']}"
        assert result["strategy"] == "assembled" and result["status"] == "succeeded"
        config, files = image_files(client, repository, tag)
        assert (
            client.request("GET", f"/v2/{repository}/manifests/{tag}").headers[
                "Docker-Content-Digest"
            ]
            == result["digest"]
        )
        check_files(files, environment, request["deployment"]["id"])
        assert files["/etc/base-release"] == b"spacedock test base\n"  # the base layer, mounted
        # Dated by its newest input, the SDI's push time, to the second: not 1970.
        assert config["created"] == sdi_pushed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert {entry["created"] for entry in config["history"][-2:]} == {config["created"]}
        assert f"APP_ENV={environment}" in config["config"]["Env"]
        assert (
            config["config"]["Cmd"] == ["/bin/sh", "/entrypoint.sh"]
            and config["config"]["WorkingDir"] == "/app"
        )
        # The secret is in its files and nowhere else: config, history, result, status, logs.
        assert SECRET not in json.dumps(config)
        assert SECRET not in json.dumps(result)
        status = requests.get(
            f"{registry.url}/api/v1/spaces/spaces-1/builds/{request['build_id']}",
            auth=registry.auth, timeout=10,
        ).json()  # fmt: skip
        logs = requests.get(
            f"{registry.url}/api/v1/spaces/spaces-1/builds/{request['build_id']}/logs",
            auth=registry.auth, timeout=10,
        ).json()  # fmt: skip
        assert status["status"] == "succeeded" and status["result"]["digest"] == result["digest"]
        assert status["request"]["sensitive_variables"] == ["ConnectionStrings:Db", "Db", "db.url"]
        assert SECRET not in json.dumps(status) and SECRET not in json.dumps(logs)
        assert logs["logs"]
    assert SECRET not in builder.log_path.read_text()
    assert SECRET not in registry.service.log_path.read_text()


def test_the_same_inputs_give_the_same_digest_and_a_repeat_builds_nothing(
    stack: tuple[Registry, ServiceProcess], sdi: dict[str, str]
) -> None:
    _, builder = stack
    requester = Requester()
    request = request_for(sdi, "Production", "deployments-80")
    requester.send(request)
    ((first, _),) = requester.replies(1)
    assert first["type"] == "io.spacedock.build.succeeded", builder.log_tail()
    requester.send(request)  # redelivered, or sent again: the first result, no new build
    ((again, _),) = requester.replies(1)
    assert again["data"] == first["data"]
    starts = [
        line
        for line in builder.log_path.read_text().splitlines()
        if '"build_started"' in line and f'"{request["build_id"]}"' in line
    ]
    assert len(starts) == 1, starts  # built once, answered twice
    other = request_for(sdi, "Production", "deployments-80")
    other["image"]["tag"] = request["image"]["tag"]
    requester.send(other)
    ((second, _),) = requester.replies(1)
    assert second["data"]["digest"] == first["data"]["digest"]
    assert second["data"]["build_id"] != first["data"]["build_id"]


def test_builds_through_http_and_their_status(
    stack: tuple[Registry, ServiceProcess], sdi: dict[str, str]
) -> None:
    registry, builder = stack
    url = f"{registry.url}/api/v1/spaces/spaces-1/builds"
    request = request_for(sdi, "Staging", "deployments-90")
    request.pop("space")
    created = requests.post(url, json=request, auth=registry.auth, timeout=10)
    assert created.status_code == 202, created.text
    assert created.json() == {"build_id": request["build_id"], "status": "queued"}
    again = requests.post(url, json=request, auth=registry.auth, timeout=10)
    assert again.status_code == 202 and again.json()["build_id"] == request["build_id"]
    deadline = time.monotonic() + 120
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/{request['build_id']}", auth=registry.auth, timeout=10).json()
        if status["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    assert status["status"] == "succeeded", (status, builder.log_tail())
    assert status["started_at"] and status["finished_at"] and status["created_at"]
    assert status["result"]["strategy"] == "assembled"
    invalid = requests.post(url, json={"sdi": {}}, auth=registry.auth, timeout=10)
    assert invalid.status_code == 422
    finished = requests.delete(f"{url}/{request['build_id']}", auth=registry.auth, timeout=10)
    assert finished.status_code == 409


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda r, s: r["sdi"].update(id="no-such-sdi"), "package_missing"),
        (lambda r, s: r["packages"].update({s["app"]: "9.9.9"}), "package_missing"),
        (lambda r, s: r.update(sdi={"version": "1"}), "request_invalid"),
        (lambda r, s: r["image"].update(tag="bad tag!"), "request_invalid"),
    ],
)
def test_failures_are_build_failed_events_with_codes(
    stack: tuple[Registry, ServiceProcess], sdi: dict[str, str], change: Any, code: str
) -> None:
    requester = Requester()
    request = request_for(sdi, "Production", "deployments-99")
    change(request, sdi)
    requester.send(request, correlation_id="failing")
    ((event, correlation),) = requester.replies(1)
    assert event["type"] == "io.spacedock.build.failed" and correlation == "failing"
    assert event["data"]["error"]["code"] == code, event
    assert SECRET not in json.dumps(event)


def test_a_message_that_is_not_a_request_is_refused_not_redelivered(
    stack: tuple[Registry, ServiceProcess],
) -> None:
    requester = Requester()
    requester.send(None, raw=b"{not json", correlation_id="garbage")
    ((event, correlation),) = requester.replies(1)
    assert event["data"]["error"]["code"] == "request_invalid" and correlation == "garbage"
    assert requester.replies(1, timeout=3) == []


def _sdi_with(registry: Registry, files: dict[str, str]) -> str:
    sdi_id = f"case-{uuid.uuid4().hex[:8]}"
    upload_package(registry, "spaces-1", f"{sdi_id}.1.0.0.zip", zip_of(files))
    return sdi_id


def _sdi_refused_at_upload(registry: Registry, files: dict[str, str], code: str) -> str:
    """An SDI the upload endpoint refuses with the build's code, pushed as an OCI artifact
    instead: the builder refuses it on its own as well."""
    sdi_id = f"case-{uuid.uuid4().hex[:8]}"
    refused = requests.post(
        f"{registry.url}/api/v1/spaces/spaces-1/packages",
        files={"file": (f"{sdi_id}.1.0.0.zip", zip_of(files))},
        auth=registry.auth,
        timeout=60,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["detail"] == {"build_error": code}
    client = Client.for_registry(registry.url, registry.auth)
    push_zip_package(client, "spaces-1", sdi_id, "1.0.0", zip_of(files))
    return sdi_id


def _evil_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Dockerfile", "FROM spaces-1/x:1\n")
        archive.writestr("../escape.txt", "out")
    return buffer.getvalue()


FAILURES = [
    ("archive_path_traversal", None),
    ("sdi_invalid", {"Dockerfile": "FROM spaces-1/x:1\n", "sdi.yaml": "packages: [[["}),
    ("dockerfile_missing", {"readme.txt": "no Dockerfile here"}),
    ("dockerfile_invalid", {"Dockerfile": "FROM spaces-1/x:1\nFROBNICATE now\n"}),
    ("base_image_missing", {"Dockerfile": "FROM {host}/spaces-1/no-base:1\nCOPY a /a\n", "a": "x"}),
    ("copy_source_missing", {"Dockerfile": "FROM {base}:1.0\nCOPY nothing-here /x\n"}),
    ("sensitive_value_in_image", {
        "Dockerfile": "FROM {base}:1.0\nENV DB=#{Db}\n",
        "sdi.yaml": "features:\n  substitute_in_files: [Dockerfile]\n",
    }),
    ("strategy_unavailable", {"Dockerfile": "FROM {base}:1.0\nRUN make\n"}),
]  # fmt: skip


@pytest.mark.parametrize(("code", "files"), FAILURES, ids=[code for code, _ in FAILURES])
def test_every_failure_class_is_build_failed_with_its_code(
    stack: tuple[Registry, ServiceProcess],
    sdi: dict[str, str],
    code: str,
    files: dict[str, str] | None,
) -> None:
    registry, builder = stack
    if files is None:
        sdi_id = f"case-{uuid.uuid4().hex[:8]}"
        upload_package(registry, "spaces-1", f"{sdi_id}.1.0.0.zip", _evil_zip())
    else:
        concrete = {
            name: text.replace("{base}", sdi["base"]).replace("{host}", registry.host)
            for name, text in files.items()
        }
        sdi_id = (
            _sdi_refused_at_upload(registry, concrete, code)
            if code == "sdi_invalid"
            else _sdi_with(registry, concrete)
        )
    request = {
        "build_id": f"fail-{uuid.uuid4().hex[:8]}",
        "space": "spaces-1",
        "sdi": {"id": sdi_id, "version": "1.0.0"},
        "deployment": {"id": "deployments-5", "environment": "Test"},
        "sensitive_variables": {"Db": SECRET},
        "strategy": "assembled" if code == "strategy_unavailable" else "auto",
    }
    requester = Requester()
    requester.send(request)
    ((event, _),) = requester.replies(1)
    assert event["type"] == "io.spacedock.build.failed", event
    assert event["data"]["error"]["code"] == code, (event, builder.log_tail())
    assert event["data"]["logs"], event
    assert SECRET not in json.dumps(event)
    status = requests.get(
        f"{registry.url}/api/v1/spaces/spaces-1/builds/{request['build_id']}",
        auth=registry.auth,
        timeout=10,
    ).json()
    assert status["status"] == "failed" and status["error"]["code"] == code


def test_builders_share_the_queue_and_each_build_runs_once(
    tmp_path_factory: pytest.TempPathFactory,
    stack: tuple[Registry, ServiceProcess],
    sdi: dict[str, str],
) -> None:
    """Two builders consume one queue: every request is built exactly once, by one of them."""
    registry, first = stack
    second = start_builder(tmp_path_factory.mktemp("second-builder"), registry)
    try:
        requester = Requester()
        requests_sent = [request_for(sdi, "Production", f"deployments-{200 + n}") for n in range(8)]
        for request in requests_sent:
            requester.send(request)
        replies = requester.replies(8)
        assert sorted(event["data"]["build_id"] for event, _ in replies) == sorted(
            request["build_id"] for request in requests_sent
        )
        assert all(event["type"] == "io.spacedock.build.succeeded" for event, _ in replies)
        logs = [first.log_path.read_text(), second.log_path.read_text()]
        for request in requests_sent:
            finished = [
                log.count(f'"build_id": "{request["build_id"]}", "status": "succeeded"')
                for log in logs
            ]
            assert sorted(finished) == [0, 1], (request["build_id"], finished)
        assert all("build_finished" in log for log in logs)  # both took a share
    finally:
        second.stop()


def test_the_cli_starts_a_build_and_waits_for_it(
    stack: tuple[Registry, ServiceProcess], sdi: dict[str, str]
) -> None:
    registry, _ = stack
    environment = {
        **os.environ,
        "SPACEDOCK_REGISTRY_URL": registry.url,
        "SPACEDOCK_PASSWORD": registry.password,
    }
    command = [
        str(BIN / "spacedock"), "builds", "start", "spaces-1", f"{sdi['sdi']}:1.2.0",
        "--deployment", "deployments-300", "--environment", "Production",
        "--var", "AppName=cli", "--secrets-file", "-", "--package", f"{sdi['app']}=1.2.1",
        "--repository", "from-cli", "--wait",
    ]  # fmt: skip
    result = run(command, env=environment, timeout=120, stdin=json.dumps({"Db": SECRET}))
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "succeeded", status
    assert status["result"]["image"] == f"{registry.host}/spaces-1/from-cli:1.2.0-deployments-300"
    assert status["request"]["sensitive_variables"] == ["Db"]  # read from the file, by name
    assert SECRET not in result.stdout


def test_a_base_index_is_resolved_for_the_requested_platform(
    stack: tuple[Registry, ServiceProcess], sdi: dict[str, str]
) -> None:
    """FROM an index: the assembled image builds on the platform the request names."""
    registry, builder = stack
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"spaces-1/multi-{uuid.uuid4().hex[:6]}"
    entries = []
    for architecture in ("amd64", "arm64"):
        layer, tar = layer_of({"etc/arch": architecture.encode()})
        config = canonical(
            {"architecture": architecture, "os": "linux", "config": {},
             "rootfs": {"type": "layers", "diff_ids": [digest_of(tar)]}}
        )  # fmt: skip
        client.push_blob(repository, config)
        client.push_blob(repository, layer)
        manifest = canonical(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
             "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)}]}
        )  # fmt: skip
        assert client.put_manifest(repository, digest_of(manifest), manifest).status_code == 201
        entries.append(
            {"mediaType": OCI_MANIFEST, "digest": digest_of(manifest), "size": len(manifest),
             "platform": {"os": "linux", "architecture": architecture}}
        )  # fmt: skip
    index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    assert client.put_manifest(repository, "1.0", index, OCI_INDEX).status_code == 201
    sdi_id = _sdi_with(registry, {"Dockerfile": f"FROM {repository}:1.0\nCOPY a /a\n", "a": "x"})
    requester = Requester()
    for platform, expected in (("linux/arm64", b"arm64"), (None, b"amd64")):
        request = {
            "space": "spaces-1",
            "sdi": {"id": sdi_id, "version": "1.0.0"},
            "deployment": {"id": f"deployments-{expected.decode()}", "environment": "Test"},
        }
        if platform:
            request["platform"] = platform
        requester.send(request)
        ((event, _),) = requester.replies(1)
        assert event["type"] == "io.spacedock.build.succeeded", (event, builder.log_tail())
        name, _, tag = event["data"]["image"].split("/", 1)[1].rpartition(":")
        built_config, files = image_files(client, name, tag)
        assert files["/etc/arch"] == expected and files["/a"] == b"x"
        assert built_config["architecture"] == expected.decode()
