"""podman, buildah and containerd's ``ctr`` run as a user would, each kept to a private
configuration, credentials and image store under a test's temporary directory."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.commands import require, run, succeed
from tests.support.processes import Registry

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# dockerd's own containerd (docker.io starts one), else a system containerd
CONTAINERD_SOCKETS = [
    Path("/run/docker/containerd/containerd.sock"),
    Path("/run/containerd/containerd.sock"),
]


@dataclass
class ContainersTool:
    """``podman`` or ``buildah`` with its own storage.conf (vfs, under ``home``), containers.conf,
    registries.conf and auth file: nothing of the machine's ``~/.config/containers`` or
    ``/var/lib/containers/storage`` is read or written. (containers/image still keeps its
    blob-info cache in ``/var/lib/containers/cache`` when run as root; no setting moves it.)"""

    program: str
    home: Path
    registry: Registry
    auth_file: Path
    env: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        require(self.program, self.program)
        self.home.mkdir(parents=True)
        storage = self.home / "storage.conf"
        storage.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'graphroot = "{self.home / "root"}"\n'
            f'runroot = "{self.home / "run"}"\n'
        )
        engine = self.home / "containers.conf"
        engine.write_text(f'[engine]\ntmp_dir = "{self.home / "tmp"}"\nevents_logger = "none"\n')
        registries = self.home / "registries.conf"
        registries.write_text("unqualified-search-registries = []\n")
        self.env = {
            **os.environ,
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_CONF": str(engine),
            "CONTAINERS_REGISTRIES_CONF": str(registries),
            "REGISTRY_AUTH_FILE": str(self.auth_file),
        }

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        """Run the tool; on failure the test fails with its output and the registry's log."""
        command = [self.program, *args]
        return succeed(
            command, stdin=stdin, env=self.env, diagnose=self.registry.service.log_tail
        ).stdout

    def attempt(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the tool and return what happened, whatever its exit status."""
        return run([self.program, *args], stdin=stdin, env=self.env)

    def login(self) -> None:
        """``login --password-stdin`` to the registry, storing credentials in ``auth_file``."""
        self(
            "login",
            "--tls-verify=false",
            "--username",
            self.registry.username,
            "--password-stdin",
            self.registry.host,
            stdin=self.registry.password + "\n",
        )

    def digest_after(self, subcommand: list[str], *args: str) -> str:
        """Run a push-like ``subcommand`` with ``--digestfile`` (before ``args``: buildah takes
        no option after a positional argument); the manifest digest it wrote."""
        digest_file = self.home / f"digest-{uuid.uuid4().hex[:8]}"
        self(*subcommand, "--digestfile", str(digest_file), *args)
        return digest_file.read_text().strip()

    @contextmanager
    def mounted(self, image: str) -> Iterator[Path]:
        """The root filesystem of a local image (``podman image mount``), unmounted afterwards."""
        path = Path(self("image", "mount", image).strip())
        try:
            yield path
        finally:
            self("image", "unmount", image)


@dataclass
class Ctr:
    """containerd's ``ctr`` on the engine's containerd, in a namespace of its own."""

    registry: Registry
    namespace: str = field(default_factory=lambda: f"spacedock-test-{uuid.uuid4().hex[:10]}")
    address: Path = field(init=False)

    def __post_init__(self) -> None:
        require("ctr", "containerd")
        sockets = [socket for socket in CONTAINERD_SOCKETS if socket.is_socket()]
        if not sockets:
            pytest.fail(
                f"no containerd socket ({', '.join(map(str, CONTAINERD_SOCKETS))}): containerd "
                "runs inside dockerd; start it with `bash infra/dev/start-services.sh`",
                pytrace=False,
            )
        self.address = sockets[0]

    def command(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.address), "--namespace", self.namespace, *args]

    def __call__(self, *args: str) -> str:
        command = self.command(*args)
        return succeed(command, diagnose=self.registry.service.log_tail).stdout

    def attempt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(self.command(*args))

    def remote_args(self) -> list[str]:
        """How ``ctr`` reaches the registry: plain HTTP, the administrator's credentials."""
        return ["--plain-http", "--user", f"{self.registry.username}:{self.registry.password}"]

    def image_digest(self, reference: str) -> str:
        """The digest ``ctr images ls`` gives for ``reference``."""
        for line in self("images", "ls").splitlines()[1:]:
            columns = line.split()
            if columns and columns[0] == reference:
                return columns[2]
        raise AssertionError(f"{reference} is not among ctr's images in {self.namespace}")

    def content(self, digest: str) -> bytes:
        """A blob from containerd's content store (``ctr content get``)."""
        result = subprocess.run(
            self.command("content", "get", digest), capture_output=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout

    def remove_namespace(self) -> None:
        """Remove every image (waiting for garbage collection), then the namespace itself."""
        images = self.attempt("images", "ls", "--quiet").stdout.split()
        if images:
            self.attempt("images", "rm", "--sync", *images)
        removed = run(["ctr", "--address", str(self.address), "namespaces", "rm", self.namespace])
        assert removed.returncode == 0, f"namespace {self.namespace} left behind: {removed.stderr}"
