"""``spacedock serve`` — what ``make run`` starts — on embedded defaults: an embedded
MongoDB-wire server, filesystem blobs, the in-process bus, and the builder beside the
registry. A push, a package and a build work, and the process stops cleanly. Each service
also runs alone, on the variables it reads."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from tests.support.builds import push_base_image, upload_package, zip_of
from tests.support.oci import Client
from tests.support.processes import (
    BIN,
    Registry,
    Service,
    free_port,
    start_builder,
    start_reaper,
)


def test_serve_on_embedded_defaults_pushes_and_builds(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SPACEDOCK_")}
    env.update(SPACEDOCK_LISTEN=f"127.0.0.1:{port}", SPACEDOCK_DATA_DIR=str(data))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "spacedock"), "serve"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, log.read_text()
            time.sleep(0.3)
        password = (data / "admin-password").read_text().strip()
        assert f"admin password: {password}" in log.read_text()  # shown on the terminal
        auth = ("admin", password)
        client = Client.for_registry(url, auth)
        push_base_image(client, "spaces-1/base", "1.0")
        registry = Registry(
            url, f"127.0.0.1:{port}", Service(process, port, log), data, env, password=password
        )
        upload_package(
            registry,
            "spaces-1",
            "hello-sdi.1.0.0.zip",
            zip_of(
                {
                    "Dockerfile": f"FROM 127.0.0.1:{port}/spaces-1/base:1.0\nCOPY hello.txt /\n",
                    "hello.txt": "hello #{Octopus.Environment.Name}",
                    "sdi.yaml": "features:\n  substitute_in_files: [hello.txt]\n",
                }
            ),
        )
        builds = f"{url}/api/v1/spaces/spaces-1/builds"
        body = {
            "sdi": {"id": "hello-sdi", "version": "1.0.0"},
            "deployment": {"id": "deployments-1", "environment": "Dev"},
        }
        build_id = requests.post(builds, json=body, auth=auth, timeout=10).json()["build_id"]
        status: dict[str, object] = {}
        while time.monotonic() < deadline + 60:
            status = requests.get(f"{builds}/{build_id}", auth=auth, timeout=10).json()
            if status["status"] not in ("queued", "running"):
                break
            time.sleep(0.3)
        assert status["status"] == "succeeded", (status, log.read_text()[-3000:])
        tags = client.request("GET", "/v2/spaces-1/hello-sdi/tags/list").json()["tags"]
        assert tags == ["1.0.0-deployments-1"]
        # One process: the builder's and the outbox's metrics are on the registry's /metrics.
        metrics = requests.get(f"{url}/metrics", timeout=10).text
        assert 'spacedock_builds_total{status="succeeded",strategy="assembled"} 1.0' in metrics
        assert "spacedock_outbox_pending_entries" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"no clean stop in 30 s\n{log.read_text()[-3000:]}") from None
    assert code == 0, log.read_text()[-2000:]


def test_each_service_alone_reads_only_its_own_variables(
    registry: Registry, tmp_path: Path
) -> None:
    """A builder and a reaper beside a registry start, and stop cleanly, with a variable only
    the registry reads set wrongly; a registry given the same value refuses it by name."""
    wrong = {"SPACEDOCK_TOKEN_TTL_SECONDS": "forever"}
    builder = start_builder(tmp_path / "builder", registry, **wrong)
    reaper = start_reaper(tmp_path / "reaper", registry, **wrong)
    for service in (builder, reaper):
        service.stop()
        assert service.process.returncode == 0, service.log_tail()

    refused = subprocess.run(
        [str(BIN / "spacedock"), "registry"],
        env={**registry.env, **wrong},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "SPACEDOCK_TOKEN_TTL_SECONDS='forever'" in refused.stderr
