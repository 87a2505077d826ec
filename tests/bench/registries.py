"""The two registries under test, started side by side on free local ports.

Both keep blobs on the local filesystem of the bench's work directory and log every request to
a file (Spacedock as JSON, Distribution its default access log), so neither gets a head start.
"""

from __future__ import annotations

import base64
import contextlib
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.errors import BenchError
from tests.support.processes import Service, free_port, start, start_registry, start_secantus

DISTRIBUTION_BINARY = "docker-registry"


@dataclass(frozen=True, slots=True)
class RegistryUnderTest:
    """How a workload reaches a registry: its URL, the headers every request carries, its pid."""

    name: str
    url: str
    pid: int
    headers: Mapping[str, str] = field(default_factory=dict)

    def header_args(self) -> list[str]:
        """The headers as ``-H`` options, which curl and wrk both take."""
        return [arg for key, value in self.headers.items() for arg in ("-H", f"{key}: {value}")]


@dataclass(frozen=True, slots=True)
class Registries:
    distribution: RegistryUnderTest
    spacedock: RegistryUnderTest


@contextlib.contextmanager
def running_registries(workdir: Path) -> Iterator[Registries]:
    """Distribution and Spacedock (with its SecantusDB), stopped on the way out."""
    with contextlib.ExitStack() as stack:
        with _startup_errors():
            distribution = start_distribution(workdir / "distribution")
            stack.callback(distribution.stop)
            metadata = start_secantus(workdir / "secantus", test_commands=False)
            stack.callback(metadata.stop)
            spacedock = start_registry(
                workdir / "spacedock",
                # as `make run` reaches its embedded server (shared/metadata/embedded.py)
                f"mongodb://127.0.0.1:{metadata.port}/spacedock_bench?retryWrites=false",
            )
            stack.callback(spacedock.stop)
        with _log_tails_on_failure(distribution, metadata, spacedock.service):
            yield Registries(
                distribution=RegistryUnderTest(
                    "distribution",
                    f"http://127.0.0.1:{distribution.port}",
                    distribution.process.pid,
                ),
                spacedock=RegistryUnderTest(
                    "spacedock",
                    spacedock.url,
                    spacedock.service.process.pid,
                    {"Authorization": basic_auth(*spacedock.auth)},
                ),
            )


@contextlib.contextmanager
def _log_tails_on_failure(*services: Service) -> Iterator[None]:
    """When a workload fails, what the services said, before their directory is removed."""
    try:
        yield
    except BenchError:
        for service in services:
            print(f"--- {service.log_path}", file=sys.stderr)
            print(service.log_tail(10), file=sys.stderr)
        raise


@contextlib.contextmanager
def _startup_errors() -> Iterator[None]:
    """The process helpers raise RuntimeError (with the log's tail) when a service won't start."""
    try:
        yield
    except RuntimeError as exc:
        raise BenchError(f"a registry did not start: {exc}") from exc


def start_distribution(workdir: Path) -> Service:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(distribution_config(workdir / "storage", port))
    return start([DISTRIBUTION_BINARY, "serve", str(config)], port, workdir / "registry.log")


def distribution_config(root: Path, port: int) -> str:
    """Distribution's defaults, except where it keeps blobs and where it listens.

    Upload purging is off so that its background sweep never runs during a measurement.
    """
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {root}\n"
        "  maintenance:\n"
        "    uploadpurging:\n"
        "      enabled: false\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
    )


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
