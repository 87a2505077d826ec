"""Builds a deployment target pulls and runs: an SDI built with the assembled strategy and
one that needs RUN (docker strategy), each pulled with the docker CLI and run."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import yaml

from tests.support.amqp import AMQP_URL
from tests.support.builds import (
    APP_FILES,
    IMAGE_FILES,
    Requester,
    check_files,
    request_for,
    sdi_files,
    upload_package,
    zip_of,
)
from tests.support.builds import (
    SECRET as FULL_SECRET,
)
from tests.support.commands import succeed
from tests.support.docker_cli import remove_images
from tests.support.processes import (
    Registry,
    Service,
    ServiceProcess,
    start_build_stack,
)

SECRET = "Password=e2e-s3cret"


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[tuple[Registry, ServiceProcess]]:
    registry, builder = start_build_stack(
        tmp_path_factory.mktemp("e2e-builds"), mongo_server.port, AMQP_URL
    )
    yield registry, builder
    builder.stop()
    registry.stop()


@pytest.fixture(scope="module")
def docker_env(
    tmp_path_factory: pytest.TempPathFactory, stack: tuple[Registry, ServiceProcess]
) -> dict[str, str]:
    registry, _ = stack
    config = tmp_path_factory.mktemp("docker-config")
    env = {**os.environ, "DOCKER_CONFIG": str(config)}
    succeed(
        ["docker", "login", "--username", registry.username, "--password-stdin", registry.host],
        stdin=registry.password + "\n",
        env=env,
    )
    return env


@pytest.fixture(scope="module")
def base(
    stack: tuple[Registry, ServiceProcess], busybox_image: str, docker_env: dict[str, str]
) -> Iterator[str]:
    """The locally made busybox image, pushed as this registry's base image."""
    registry, _ = stack
    reference = f"{registry.host}/spaces-1/busybox-base:1.0"
    succeed(["docker", "tag", busybox_image, reference])
    succeed(["docker", "push", reference], env=docker_env)
    yield reference
    remove_images(reference)


def build(registry: Registry, request: dict[str, Any]) -> dict[str, Any]:
    url = f"{registry.url}/api/v1/spaces/spaces-1/builds"
    created = requests.post(url, json=request, auth=registry.auth, timeout=30)
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/{request['build_id']}", auth=registry.auth, timeout=30).json()
        if status["status"] in ("succeeded", "failed", "cancelled"):
            return dict(status)
        time.sleep(0.5)
    raise AssertionError(f"build {request['build_id']} did not finish")


def sdi_package(registry: Registry, name: str, dockerfile: str, features: dict[str, Any]) -> None:
    files = {
        "Dockerfile": dockerfile,
        "sdi.yaml": yaml.safe_dump({"features": features}),
        "app/appsettings.json": '{"Greeting": "placeholder", "Db": "none"}',
        "app/greet.sh": "#!/bin/sh\necho Hello from #{Octopus.Environment.Name}\n",
    }
    upload_package(registry, "spaces-1", f"{name}.1.0.0.zip", zip_of(files))


def request(name: str, environment: str, deployment: str) -> dict[str, Any]:
    return {
        "build_id": f"{name}-{deployment}",
        "sdi": {"id": name, "version": "1.0.0"},
        "image": {"repository": name, "tag": f"1.0.0-{deployment}"},
        "deployment": {"id": deployment, "environment": environment},
        "variables": {"Greeting": f"hi {environment}"},
        "sensitive_variables": {"Db": SECRET},
    }


FEATURES = {
    "substitute_in_files": ["app/greet.sh"],
    "structured_variables": ["app/appsettings.json"],
}


def test_assembled_and_docker_builds_pull_and_run(
    stack: tuple[Registry, ServiceProcess], base: str, docker_env: dict[str, str]
) -> None:
    registry, builder = stack
    suffix = uuid.uuid4().hex[:6]
    assembled, with_run = f"e2e-config-{suffix}", f"e2e-run-{suffix}"
    sdi_package(
        registry, assembled,
        f"FROM {base}\nCOPY app/ /app/\nCMD [\"/bin/sh\", \"/app/greet.sh\"]\n", FEATURES,
    )  # fmt: skip
    sdi_package(
        registry, with_run,
        f"FROM {base}\nCOPY app/ /app/\nRUN echo built-by-docker > /app/built.txt\n"
        'CMD ["/bin/sh", "/app/greet.sh"]\n',
        FEATURES,
    )  # fmt: skip
    pulled: list[str] = []
    try:
        for name, strategy in ((assembled, "assembled"), (with_run, "docker")):
            for environment, deployment in (
                ("Production", "deployments-1"),
                ("Test", "deployments-2"),
            ):
                status = build(registry, request(name, environment, deployment))
                assert status["status"] == "succeeded", (status, builder.log_tail())
                result = status["result"]
                assert result["strategy"] == strategy
                image = result["image"]
                pulled.append(image)
                succeed(["docker", "pull", image], env=docker_env)
                greeting = succeed(["docker", "run", "--rm", image]).stdout
                assert greeting.strip() == f"Hello from {environment}"
                settings = succeed(
                    ["docker", "run", "--rm", image, "cat", "/app/appsettings.json"]
                ).stdout
                assert f"hi {environment}" in settings and SECRET in settings
                inspect = succeed(["docker", "image", "inspect", image]).stdout
                history = succeed(["docker", "history", "--no-trunc", image]).stdout
                assert SECRET not in inspect and SECRET not in history
                if strategy == "docker":
                    built = succeed(
                        ["docker", "run", "--rm", image, "cat", "/app/built.txt"]
                    ).stdout
                    assert built.strip() == "built-by-docker"
    finally:
        remove_images(*pulled)
    assert SECRET not in builder.log_path.read_text()


def test_a_failing_run_step_is_dockerfile_failed(
    stack: tuple[Registry, ServiceProcess], base: str
) -> None:
    registry, _ = stack
    name = f"e2e-fail-{uuid.uuid4().hex[:6]}"
    sdi_package(registry, name, f"FROM {base}\nRUN exit 3\n", {})
    status = build(registry, request(name, "Test", "deployments-3"))
    assert status["status"] == "failed"
    assert status["error"]["code"] == "dockerfile_failed", status


def test_a_running_build_is_cancelled_and_pushes_nothing(
    stack: tuple[Registry, ServiceProcess], base: str
) -> None:
    registry, builder = stack
    name = f"e2e-cancel-{uuid.uuid4().hex[:6]}"
    sdi_package(registry, name, f"FROM {base}\nRUN sleep 20\n", {})
    body = request(name, "Test", "deployments-4")
    url = f"{registry.url}/api/v1/spaces/spaces-1/builds"
    assert requests.post(url, json=body, auth=registry.auth, timeout=30).status_code == 202
    deadline = time.monotonic() + 60
    while (
        requests.get(f"{url}/{body['build_id']}", auth=registry.auth, timeout=30).json()["status"]
        != "running"
    ):
        assert time.monotonic() < deadline, builder.log_tail()
        time.sleep(0.2)
    time.sleep(2)  # well inside RUN sleep 20
    cancel = requests.delete(f"{url}/{body['build_id']}", auth=registry.auth, timeout=30)
    assert cancel.status_code == 202
    started = time.monotonic()
    status: dict[str, Any] = {}
    while time.monotonic() - started < 15:
        status = requests.get(f"{url}/{body['build_id']}", auth=registry.auth, timeout=30).json()
        if status["status"] != "running":
            break
        time.sleep(0.2)
    assert status["status"] == "cancelled", status
    assert time.monotonic() - started < 5  # noticed within a second or so, not after the RUN
    tags = requests.get(
        f"{registry.url}/v2/spaces-1/{name}/tags/list", auth=registry.auth, timeout=30
    )
    assert tags.status_code == 404 or body["image"]["tag"] not in tags.json()["tags"]


def test_a_build_over_its_time_limit_fails_with_timeout(
    tmp_path_factory: pytest.TempPathFactory,
    mongo_server: Service,
    busybox_image: str,
    docker_env: dict[str, str],
    amqp_vhost: str,
) -> None:
    """A registry and builder of their own (and a virtual host of their own, so the module's
    builder cannot take the request), with a 10 s limit."""
    registry, quick = start_build_stack(
        tmp_path_factory.mktemp("time-limit"),
        mongo_server.port,
        amqp_vhost,
        SPACEDOCK_BUILD_TIMEOUT_SECONDS="10",
    )
    base = f"{registry.host}/spaces-1/slow-base:1.0"
    try:
        succeed(
            ["docker", "login", "-u", registry.username, "--password-stdin", registry.host],
            stdin=registry.password + "\n",
            env=docker_env,
        )
        succeed(["docker", "tag", busybox_image, base])
        succeed(["docker", "push", base], env=docker_env)
        name = f"e2e-slow-{uuid.uuid4().hex[:6]}"
        sdi_package(registry, name, f"FROM {base}\nRUN sleep 30\n", {})
        started = time.monotonic()
        status = build(registry, request(name, "Test", "deployments-6"))
        assert status["status"] == "failed" and status["error"]["code"] == "timeout", status
        assert time.monotonic() - started < 25
    finally:
        quick.stop()
        registry.stop()
        remove_images(base)


def test_the_full_sdi_for_two_environments_pulled_run_and_every_file_checked(
    stack: tuple[Registry, ServiceProcess], base: str, docker_env: dict[str, str]
) -> None:
    """The SDI with every feature, built over AMQP and over HTTP for two environments; each
    image pulled with the docker CLI, run, and every configured file read from a container."""
    registry, builder = stack
    suffix = uuid.uuid4().hex[:6]
    app_id, sdi_id = f"webapp-{suffix}", f"webapp-sdi-{suffix}"
    upload_package(registry, "spaces-1", f"{app_id}.1.2.1.zip", zip_of(APP_FILES))
    upload_package(registry, "spaces-1", f"{sdi_id}.1.2.0.zip", zip_of(sdi_files(base, app_id)))
    sdi = {"sdi": sdi_id, "app": app_id}
    requester = Requester()
    images = []
    try:
        for environment, deployment, via in (
            ("Production", "deployments-75", "amqp"),
            ("Test", "deployments-76", "http"),
        ):
            body = request_for(sdi, environment, deployment)
            if via == "amqp":
                requester.send(body, correlation_id=deployment)
                ((event, correlation),) = requester.replies(1)
                assert correlation == deployment
                assert event["type"] == "io.spacedock.build.succeeded", builder.log_tail()
                result = event["data"]
            else:
                status = build(registry, body)
                assert status["status"] == "succeeded", status
                result = status["result"]
            image = result["image"]
            images.append(image)
            succeed(["docker", "pull", image], env=docker_env)
            said = succeed(["docker", "run", "--rm", image]).stdout
            assert said.strip() == f"web {deployment} {environment}"
            files = {
                path: succeed(["docker", "run", "--rm", image, "cat", path]).stdout.encode()
                for path in IMAGE_FILES
            }
            check_files(files, environment, deployment)
            inspect = succeed(["docker", "image", "inspect", image]).stdout
            assert FULL_SECRET not in inspect
            assert FULL_SECRET not in succeed(["docker", "history", "--no-trunc", image]).stdout
    finally:
        remove_images(*images)
