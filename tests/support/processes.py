"""Real services the tests start as child processes: SecantusDB, moto's S3 server, registries."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.args!r} did not listen on {port} within {timeout}s")


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start(
    command: list[str], port: int, log_path: Path, env: Mapping[str, str] | None = None
) -> Service:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=None if env is None else dict(env)
        )
    service = Service(process, port, log_path)
    try:
        wait_for_port(port, process)
    except RuntimeError as exc:
        service.stop()
        raise RuntimeError(f"{exc}\n{service.log_tail()}") from exc
    return service


def start_secantus(workdir: Path, *, test_commands: bool = True) -> Service:
    port = free_port()
    command = [
        str(BIN / "secantusd-py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(workdir / "data"),
        "--log-level",
        "WARNING",
    ]
    if test_commands:
        command.append("--enable-test-commands")
    return start(command, port, workdir / "secantus.log")


def start_moto(workdir: Path) -> Service:
    port = free_port()
    return start(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port, workdir / "moto.log"
    )


ADMIN_PASSWORD = "test-admin-password"
SEALING_KEY = "5ea1ed" * 10 + "5ea1"  # 32 bytes in hex, shared by registries and builders


@dataclass
class Registry:
    """A ``spacedock registry`` process and how to reach it."""

    url: str
    host: str
    service: Service
    data_dir: Path
    env: dict[str, str] = field(repr=False)
    username: str = "admin"
    password: str = ADMIN_PASSWORD

    @property
    def auth(self) -> tuple[str, str]:
        return (self.username, self.password)

    def stop(self) -> None:
        self.service.stop()


def start_registry(
    workdir: Path,
    mongo_url: str,
    *,
    storage: str = "filesystem",
    s3_endpoint: str | None = None,
    bucket: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Registry:
    port = port or free_port()
    data_dir = workdir / "data"
    env = {
        **os.environ,
        "SPACEDOCK_LISTEN": f"127.0.0.1:{port}",
        "SPACEDOCK_DATA_DIR": str(data_dir),
        "SPACEDOCK_MONGO_URL": mongo_url,
        "SPACEDOCK_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "SPACEDOCK_SEALING_KEY": SEALING_KEY,
        "SPACEDOCK_STORAGE": storage,
        "SPACEDOCK_LOG_FORMAT": "json",
    }
    if storage == "s3":
        assert s3_endpoint is not None and bucket is not None
        env.update(
            SPACEDOCK_S3_ENDPOINT=s3_endpoint,
            SPACEDOCK_S3_ACCESS_KEY="testing",
            SPACEDOCK_S3_SECRET_KEY="testing",
            SPACEDOCK_S3_BUCKET=bucket,
            SPACEDOCK_S3_REGION="us-east-1",
        )
    env.update(extra_env or {})
    service = start([str(BIN / "spacedock"), "registry"], port, workdir / "registry.log", env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return Registry(url, f"127.0.0.1:{port}", service, data_dir, env)
        except requests.RequestException:
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"registry not ready\n{service.log_tail()}")


def restart_registry(old: Registry, workdir: Path) -> Registry:
    """The same registry again after it stopped or died: same port, settings and data."""
    settings = {key: value for key, value in old.env.items() if key.startswith("SPACEDOCK_")}
    port = int(old.host.rsplit(":", 1)[1])
    return start_registry(workdir, settings["SPACEDOCK_MONGO_URL"], port=port, extra_env=settings)


BUILDER_KEY = "sdk_b01d000000000001.TestBuilderKeyTestBuilderKeyTestBuilderKey1"


class ServiceProcess(Service):
    """A ``spacedock builder`` or ``spacedock reaper`` process: a service without a port."""


def start_builder(workdir: Path, registry: Registry, **env: str) -> ServiceProcess:
    """``spacedock builder`` against ``registry`` (same database and broker settings)."""
    env = {"SPACEDOCK_BUILDER_KEY": BUILDER_KEY, "SPACEDOCK_DATA_DIR": str(workdir / "data"), **env}
    return _start_service("builder", workdir, registry, env)


def start_reaper(workdir: Path, registry: Registry, **env: str) -> ServiceProcess:
    """``spacedock reaper`` on ``registry``'s database and storage."""
    return _start_service("reaper", workdir, registry, env)


def _start_service(
    name: str, workdir: Path, registry: Registry, env: Mapping[str, str]
) -> ServiceProcess:
    """``spacedock <name>`` with the registry's settings, once it logs ``<name>_ready``."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {key: value for key, value in registry.env.items() if key.startswith("SPACEDOCK_")}
    environment = {**os.environ, **settings, "SPACEDOCK_REGISTRY_URL": registry.url, **env}
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(BIN / "spacedock"), name], stdout=log, stderr=subprocess.STDOUT, env=environment
        )
    service = ServiceProcess(process, 0, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited\n{service.log_tail()}")
        if f"{name}_ready" in log_path.read_text(errors="replace"):
            return service
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{name} not ready\n{service.log_tail()}")


def start_build_stack(
    workdir: Path, mongo_port: int, amqp_url: str, **builder_env: str
) -> tuple[Registry, ServiceProcess]:
    """A registry on a database of its own and a builder beside it, on ``amqp_url``."""
    registry = start_registry(
        workdir / "registry",
        f"mongodb://127.0.0.1:{mongo_port}/builds_{uuid.uuid4().hex[:8]}",
        extra_env={"SPACEDOCK_AMQP_URL": amqp_url, "SPACEDOCK_BUILDER_KEY": BUILDER_KEY},
    )
    try:
        return registry, start_builder(workdir / "builder", registry, **builder_env)
    except BaseException:
        registry.stop()
        raise
