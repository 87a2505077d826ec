"""The CLI beside ``spacedock serve`` (what ``make run`` starts), given only the instance's
own SPACEDOCK_LISTEN and SPACEDOCK_DATA_DIR: it finds the registry and signs in as admin with
the generated password, and waits for builds with exit codes a pipeline can trust."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.builds import push_base_image, zip_of
from tests.support.commands import run
from tests.support.oci import Client
from tests.support.processes import BIN, free_port

OK, FAILED, USAGE = 0, 1, 2


@dataclass
class Instance:
    url: str
    host: str
    env: dict[str, str]  # what the instance was started with, and all the CLI is given
    password: str


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    workdir = tmp_path_factory.mktemp("cli-serve")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPACEDOCK_")}
    env.update(SPACEDOCK_LISTEN=f"127.0.0.1:{port}", SPACEDOCK_DATA_DIR=str(workdir / "data"))
    log = workdir / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "spacedock"), "serve"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        password = (workdir / "data" / "admin-password").read_text().strip()
        yield Instance(url, f"127.0.0.1:{port}", env, password)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def cli(instance: Instance, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "spacedock"), *args], stdin="", env={**instance.env, **env}, timeout=180)


def push_sdi(instance: Instance, tmp_path: Path, name: str, dockerfile: str) -> None:
    archive = tmp_path / f"{name}.1.0.0.zip"
    archive.write_bytes(
        zip_of(
            {
                "Dockerfile": dockerfile,
                "hello.txt": "hello #{Octopus.Environment.Name}",
                "sdi.yaml": "features:\n  substitute_in_files: [hello.txt]\n",
            }
        )
    )
    pushed = cli(instance, "package", "push", "spaces-1", str(archive))
    assert pushed.returncode == OK, pushed.stderr


def test_the_cli_finds_the_instance_and_its_admin_password(instance: Instance) -> None:
    listed = cli(instance, "spaces", "list")
    assert listed.returncode == OK, listed.stderr
    assert "spaces-1" in [s["id"] for s in json.loads(listed.stdout)["spaces"]]
    # Another user has no password here, and there is no terminal to ask on.
    other = cli(instance, "spaces", "list", "--user", "someone")
    assert other.returncode == USAGE
    assert other.stderr.count("\n") == 1 and "set SPACEDOCK_PASSWORD" in other.stderr
    # The instance's admin password is not offered to another registry.
    elsewhere = cli(instance, "spaces", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert elsewhere.returncode == USAGE and "SPACEDOCK_PASSWORD" in elsewhere.stderr


def test_a_build_waited_for_shows_its_progress_and_exits_0(
    instance: Instance, tmp_path: Path
) -> None:
    client = Client.for_registry(instance.url, ("admin", instance.password))
    push_base_image(client, "spaces-1/cli-base", "1.0")
    name = f"cli-ok-sdi-{uuid.uuid4().hex[:6]}"
    dockerfile = f"FROM {instance.host}/spaces-1/cli-base:1.0\nCOPY hello.txt /\n"
    push_sdi(instance, tmp_path, name, dockerfile)

    started = cli(
        instance, "builds", "start", "spaces-1", f"{name}:1.0.0", "--deployment", "deployments-4",
        "--environment", "Staging", "--wait", "--timeout", "120",
    )  # fmt: skip
    assert started.returncode == OK, started.stderr
    build = json.loads(started.stdout)
    assert build["status"] == "succeeded"
    build_id = build["build_id"]
    assert f"build {build_id}: succeeded" in started.stderr
    assert f"fetched {name} 1.0.0" in started.stderr  # the log lines, as they came

    logs = cli(instance, "builds", "logs", "spaces-1", build_id)
    assert logs.returncode == OK and f"fetched {name} 1.0.0" in logs.stdout.splitlines()[0]
    followed = cli(instance, "builds", "logs", "spaces-1", build_id, "--follow")
    assert followed.returncode == OK and followed.stdout == logs.stdout


def test_a_build_that_fails_exits_1_with_its_error(instance: Instance, tmp_path: Path) -> None:
    name = f"cli-bad-sdi-{uuid.uuid4().hex[:6]}"
    push_sdi(instance, tmp_path, name, f"FROM {instance.host}/spaces-1/no-such-base:1.0\n")

    started = cli(
        instance, "builds", "start", "spaces-1", f"{name}:1.0.0", "--deployment", "deployments-5",
        "--environment", "Dev", "--wait", "--timeout", "120",
    )  # fmt: skip
    assert started.returncode == FAILED, started.stderr
    build = json.loads(started.stdout)  # the failed build, for a script to read
    assert build["status"] == "failed"
    assert f"spacedock: build {build['build_id']} failed: base_image_missing" in started.stderr

    followed = cli(instance, "builds", "logs", "spaces-1", build["build_id"], "--follow")
    assert followed.returncode == FAILED
    assert "failed: base_image_missing" in followed.stdout

    listed = cli(instance, "builds", "list", "spaces-1", "--status", "failed", "--limit", "1")
    assert listed.returncode == OK, listed.stderr
    assert [b["build_id"] for b in json.loads(listed.stdout)["builds"]] == [build["build_id"]]
