"""The same config-only SDI built with the ``assembled`` strategy and with the ``docker``
strategy: seconds per build (as the builder measures it) and how many times faster."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.bench.errors import BenchError
from tests.support.amqp import AMQP_URL
from tests.support.builds import upload_package, zip_of
from tests.support.docker_cli import import_busybox_image, remove_images
from tests.support.processes import start_build_stack, start_secantus

ROUNDS = 3
TARGET_RATIO = 10.0


@dataclass(frozen=True, slots=True)
class BuildFigures:
    assembled: list[float]
    docker: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.docker) / statistics.median(self.assembled)

    def table(self) -> str:
        assembled, docker = statistics.median(self.assembled), statistics.median(self.docker)
        verdict = "PASS" if self.ratio >= TARGET_RATIO else "FAIL"
        return "\n".join(
            [
                "SDI build (config only)           assembled     docker   ratio  target  result",
                "-" * 80,
                f"seconds per build (median of {ROUNDS})  {assembled:9.3f}  {docker:9.3f}  "
                f"{self.ratio:5.1f}x  >= {TARGET_RATIO:g}x  {verdict}",
            ]
        )


def measure_builds(workdir: Path) -> BuildFigures:
    metadata = start_secantus(workdir / "secantus", test_commands=False)
    registry, builder = start_build_stack(workdir, metadata.port, AMQP_URL)
    base = f"{registry.host}/spaces-1/bench-base:1.0"
    config = workdir / "docker-config"
    config.mkdir()
    env = {**os.environ, "DOCKER_CONFIG": str(config)}
    local = f"spacedock-bench/busybox-{uuid.uuid4().hex[:8]}:latest"
    try:
        import_busybox_image(workdir / "busybox", local)
        _run(["docker", "login", "-u", registry.username, "--password-stdin", registry.host],
             env, stdin=registry.password)  # fmt: skip
        _run(["docker", "tag", local, base], env)
        _run(["docker", "push", base], env)
        files = {
            "Dockerfile": f"FROM {base}\nWORKDIR /app\nCOPY app/ ./\nENV MODE=#{{Mode}}\n"
            'CMD ["/bin/sh", "/app/run.sh"]\n',
            "sdi.yaml": "features:\n  substitute_in_files: [Dockerfile, app/run.sh]\n"
            "  structured_variables: [app/appsettings.json]\n",
            "app/appsettings.json": '{"Mode": "x", "Threads": 1}',
            "app/run.sh": "#!/bin/sh\necho #{Mode}\n",
        }
        upload_package(registry, "spaces-1", "bench-sdi.1.0.0.zip", zip_of(files))
        figures: dict[str, list[float]] = {"assembled": [], "docker": []}
        for round_number in range(ROUNDS):
            for strategy in ("assembled", "docker"):
                seconds = _build(registry.url, registry.auth, strategy, round_number)
                figures[strategy].append(seconds)
                print(f"  build {strategy:9s} {seconds:8.3f} s", flush=True)
        return BuildFigures(figures["assembled"], figures["docker"])
    finally:
        builder.stop()
        registry.stop()
        metadata.stop()
        remove_images(local, base)


def _build(url: str, auth: tuple[str, str], strategy: str, round_number: int) -> float:
    build_id = f"bench-{strategy}-{round_number}-{uuid.uuid4().hex[:6]}"
    body = {
        "build_id": build_id,
        "sdi": {"id": "bench-sdi", "version": "1.0.0"},
        "image": {"repository": f"bench-{strategy}", "tag": f"1.0.0-deployments-{round_number}"},
        "deployment": {"id": f"deployments-{round_number}", "environment": "Bench"},
        "variables": {"Mode": f"round-{round_number}", "Threads": "4"},
        "strategy": strategy,
    }
    api = f"{url}/api/v1/spaces/spaces-1/builds"
    response = requests.post(api, json=body, auth=auth, timeout=60)
    if response.status_code != 202:
        raise BenchError(f"build request refused: {response.text}")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = requests.get(f"{api}/{build_id}", auth=auth, timeout=60).json()
        if status["status"] == "succeeded":
            return float(status["result"]["duration_ms"]) / 1000
        if status["status"] in ("failed", "cancelled"):
            raise BenchError(f"{strategy} build failed: {status.get('error')}")
        time.sleep(0.2)
    raise BenchError(f"{strategy} build did not finish")


def _run(command: list[str], env: dict[str, str], stdin: str | None = None) -> None:
    result = subprocess.run(
        command, input=stdin, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode != 0:
        raise BenchError(f"{' '.join(command[:2])} failed: {result.stderr.strip()}")
