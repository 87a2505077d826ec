"""Docker-strategy builds stay inside their space and off the network, with a real engine:
RUN steps have no network and bounded processes, ADD of a URL and bases from other hosts are
refused before the engine contacts anything, another space's image is refused by the build
and by the engine itself, and encoded secrets are masked in the log."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from services.builder.docker_engine import DockerEngine, DockerJob, DockerLimits
from shared.builds.errors import DockerfileFailed
from tests.support.accounts import Account, Admin
from tests.support.amqp import AMQP_URL
from tests.support.builds import build_over_http, zip_of
from tests.support.commands import succeed
from tests.support.docker_cli import remove_images
from tests.support.processes import (
    BUILDER_KEY,
    Registry,
    Service,
    ServiceProcess,
    start_build_stack,
)

PRIVATE_TEXT = "spaces-1-private-e2e-launch-codes"
PROCESSES = 321


@dataclass
class Stack:
    registry: Registry
    builder: ServiceProcess
    attacker: Account
    space: str
    base: str  # the busybox base in the attacker's space
    private: str  # spaces-1's image holding /secret.txt

    def sdi(self, space: str, auth: tuple[str, str], files: dict[str, str]) -> str:
        sdi_id = f"sdi-{uuid.uuid4().hex[:8]}"
        response = requests.post(
            f"{self.registry.url}/api/v1/spaces/{space}/packages",
            files={"file": (f"{sdi_id}.1.0.0.zip", zip_of(files))},
            auth=auth,
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return sdi_id

    def build(self, space: str, auth: tuple[str, str], sdi_id: str, **extra: Any) -> dict[str, Any]:
        request = {
            "build_id": f"e2e-{uuid.uuid4().hex[:8]}",
            "sdi": {"id": sdi_id, "version": "1.0.0"},
            "image": {"repository": sdi_id, "tag": "1.0.0-deployments-1"},
            "deployment": {"id": "deployments-1", "environment": "Production"},
            **extra,
        }
        return build_over_http(self.registry.url, auth, space, request, timeout=300)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service, busybox_image: str
) -> Iterator[Stack]:
    registry, builder = start_build_stack(
        tmp_path_factory.mktemp("e2e-isolation"),
        mongo_server.port,
        AMQP_URL,
        SPACEDOCK_BUILD_PROCESSES=str(PROCESSES),
        SPACEDOCK_BUILD_MEMORY_MB="256",
    )
    config = tmp_path_factory.mktemp("docker-config")
    env = {"DOCKER_CONFIG": str(config), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    pushed: list[str] = []
    try:
        admin = Admin(registry.url, registry.auth)
        space = admin.space("e2e-tenant")
        attacker = admin.user("attacker")
        admin.grant(space, attacker, "writer")
        succeed(
            ["docker", "login", "-u", registry.username, "--password-stdin", registry.host],
            stdin=registry.password + "\n", env=env,
        )  # fmt: skip
        for repository in (f"{space}/busybox", "spaces-1/busybox-private-base"):
            reference = f"{registry.host}/{repository}:1.0"
            succeed(["docker", "tag", busybox_image, reference])
            succeed(["docker", "push", reference], env=env)
            pushed.append(reference)
        stack = Stack(registry, builder, attacker, space, f"{registry.host}/{space}/busybox:1.0",
                      "")  # fmt: skip
        # spaces-1's private image, made by its own build: busybox and /secret.txt.
        owner = registry.auth
        sdi_id = stack.sdi("spaces-1", owner, {
            "Dockerfile": f"FROM {registry.host}/spaces-1/busybox-private-base:1.0\n"
                          "COPY secret.txt /secret.txt\n",
            "secret.txt": PRIVATE_TEXT + "\n",
        })  # fmt: skip
        made = stack.build("spaces-1", owner, sdi_id)
        assert made["status"] == "succeeded", (made, builder.log_tail())
        stack.private = made["result"]["image"]
        yield stack
    finally:
        remove_images(*pushed)
        builder.stop()
        registry.stop()


class Listener:
    """A TCP listener on loopback that counts connections: proof that nobody called."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.socket.settimeout(0.2)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.socket.close()


def _logs(status: dict[str, Any]) -> str:
    return "\n".join(status.get("logs") or [])


def test_run_steps_have_no_network_and_bounded_processes(stack: Stack) -> None:
    auth = stack.attacker.basic
    sdi_id = stack.sdi(stack.space, auth, {
        "Dockerfile": f"FROM {stack.base}\nRUN ls /sys/class/net\nRUN ulimit -u\n",
    })  # fmt: skip
    status = stack.build(stack.space, auth, sdi_id)
    assert status["status"] == "succeeded", (status, stack.builder.log_tail())
    lines = [line.split("] ", 1)[-1].strip() for line in status["logs"]]
    interfaces = lines[lines.index(next(x for x in lines if "RUN ls /sys/class/net" in x)) + 1 :]
    assert "lo" in interfaces[:4]
    assert not any(name.startswith(("eth", "en", "docker", "veth")) for name in interfaces[:4])
    assert str(PROCESSES) in lines


def test_a_fork_bomb_in_a_run_step_runs_out_of_processes(stack: Stack) -> None:
    """Root ignores RLIMIT_NPROC; the build's own cgroup is what stops it."""
    auth = stack.attacker.basic
    sdi_id = stack.sdi(stack.space, auth, {
        "Dockerfile": f"FROM {stack.base}\nRUN n=0; while [ $n -lt 500 ]; do sleep 10 & "
                      "n=$((n+1)); done; echo forked-$n\n",
    })  # fmt: skip
    status = stack.build(stack.space, auth, sdi_id)
    assert status["status"] == "failed", (status, stack.builder.log_tail())
    assert status["error"]["code"] == "dockerfile_failed"
    logs = _logs(status)
    assert "can't fork" in logs and "forked-500" not in logs


def test_add_of_a_url_and_a_base_from_another_host_never_reach_the_network(stack: Stack) -> None:
    auth = stack.attacker.basic
    listener = Listener()
    try:
        url = f"http://127.0.0.1:{listener.port}/payload"
        cases = [
            (f"FROM {stack.base}\nADD {url} /payload\n", "dockerfile_unsupported"),
            (f"FROM 127.0.0.1:{listener.port}/x/y:1\nRUN true\n", "base_image_denied"),
            (f"FROM {stack.base}\nCOPY --from=localhost:{listener.port}/x/y:1 /a /a\n",
             "base_image_denied"),
            ("FROM busybox\nRUN true\n", "base_image_denied"),
        ]  # fmt: skip
        for dockerfile, code in cases:
            sdi_id = stack.sdi(stack.space, auth, {"Dockerfile": dockerfile})
            status = stack.build(stack.space, auth, sdi_id)
            assert status["status"] == "failed", status
            assert status["error"]["code"] == code, status
    finally:
        listener.close()
    assert listener.connections == 0


def test_another_spaces_image_is_refused_before_the_engine_runs(stack: Stack) -> None:
    auth = stack.attacker.basic
    sdi_id = stack.sdi(stack.space, auth, {
        "Dockerfile": f"FROM {stack.private}\nRUN cat /secret.txt\n",
    })  # fmt: skip
    status = stack.build(stack.space, auth, sdi_id)
    assert status["status"] == "failed" and status["error"]["code"] == "base_image_denied"
    assert PRIVATE_TEXT not in repr(status)


def test_the_engine_pulls_with_the_builds_credential_even_when_it_holds_the_image(
    stack: Stack, tmp_path: Path
) -> None:
    """Past the build's own checks, the engine still acts with the build's credential: it
    pulls every base again, so another space's image it holds from an earlier build is
    refused, and nothing of it reaches the log."""
    registry = stack.registry
    succeed(["docker", "pull", stack.private], env={
        "DOCKER_CONFIG": str(_login(tmp_path / "owner", registry, registry.auth)),
        "PATH": "/usr/bin:/bin",
    })  # fmt: skip
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {stack.private}\nRUN cat /secret.txt\n")

    def build_in(space: str) -> tuple[str, list[str]]:
        minted = requests.post(
            f"{registry.url}/api/v1/spaces/{space}/build-credentials",
            json={"ttl_seconds": 300},
            auth=("spacedock-builder", BUILDER_KEY),
            timeout=10,
        )
        assert minted.status_code == 201, minted.text
        lines: list[str] = []
        job = DockerJob(
            context=context,
            repository=f"{registry.host}/{space}/engine-check",
            tag="1",
            build_args={},
            platform="linux/amd64",
            credentials=(minted.json()["username"], minted.json()["password"]),
            secrets=[],
            limits=DockerLimits(memory_bytes=256 * 1024 * 1024, processes=PROCESSES),
        )
        return asyncio.run(DockerEngine().build_and_push(job, lines.append)), lines

    try:
        # The owner's build works: the engine, the image and the credential path are sound.
        digest, lines = build_in("spaces-1")
        assert digest.startswith("sha256:") and PRIVATE_TEXT in "\n".join(lines)
        with pytest.raises(DockerfileFailed) as raised:
            build_in(stack.space)
        assert raised.value.code == "dockerfile_failed"
        assert PRIVATE_TEXT not in str(raised.value)
    finally:
        remove_images(stack.private)


def test_encodings_of_a_secret_are_masked_in_the_log(stack: Stack) -> None:
    auth = stack.attacker.basic
    secret = f"Pw-{uuid.uuid4().hex}"
    sdi_id = stack.sdi(stack.space, auth, {
        "Dockerfile": f"FROM {stack.base}\nCOPY app.conf /app.conf\nRUN base64 /app.conf\n"
                      "RUN cat /app.conf\n",
        "app.conf": "prefix=1\ndb.password=#{Db}\n",
        "sdi.yaml": yaml.safe_dump({"features": {"substitute_in_files": ["app.conf"]}}),
    })  # fmt: skip
    status = stack.build(stack.space, auth, sdi_id, sensitive_variables={"Db": secret})
    assert status["status"] == "succeeded", (status, stack.builder.log_tail())
    logs = _logs(status)
    encoded = base64.b64encode(f"prefix=1\ndb.password={secret}\n".encode()).decode()
    assert secret not in logs
    assert encoded not in logs
    assert base64.b64encode(secret.encode()).decode()[:44] not in logs  # aligned in the file
    assert "********" in logs


def _login(config: Path, registry: Registry, auth: tuple[str, str]) -> Path:
    config.mkdir(parents=True)
    succeed(
        ["docker", "login", "-u", auth[0], "--password-stdin", registry.host],
        stdin=auth[1] + "\n", env={"DOCKER_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return config
