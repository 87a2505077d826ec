"""The docker CLI against the local engine: a base image made without internet, image cleanup."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.commands import require, run, succeed

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ["sh", "cat", "ls", "echo", "mkdir", "test", "wc", "base64", "sleep"]


def require_docker() -> None:
    """Fail (never skip) with a clear message when the docker CLI or engine is unavailable."""
    require("docker", "docker.io")
    info = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30)
    if info.returncode != 0:
        pytest.fail(
            "the docker engine is not reachable (`docker info` failed); start it with "
            f"`bash infra/dev/start-services.sh`\n{info.stderr}",
            pytrace=False,
        )


def busybox_rootfs_tar(workdir: Path, files: dict[str, bytes]) -> Path:
    """A tar of a root filesystem with a static busybox, a few applet links and ``files``
    (which make the layer, and so every digest, the test's own)."""
    if not BUSYBOX.is_file():
        pytest.fail(f"{BUSYBOX} is missing; install the Debian package 'busybox-static'")
    kind = succeed(["file", "--brief", "--dereference", str(BUSYBOX)]).stdout
    if "statically linked" not in kind:
        pytest.fail(f"{BUSYBOX} is not statically linked ({kind.strip()}); install busybox-static")
    rootfs = workdir / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "tmp").mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    for path, content in files.items():
        (rootfs / path).parent.mkdir(parents=True, exist_ok=True)
        (rootfs / path).write_bytes(content)
    archive = workdir / "rootfs.tar"
    succeed(["tar", "-C", str(rootfs), "-cf", str(archive), "."])
    return archive


def import_busybox_image(workdir: Path, name: str) -> None:
    """Import ``name``: a root filesystem holding a static busybox and a few applet links."""
    archive = busybox_rootfs_tar(workdir, {})
    imported = run(["docker", "import", str(archive), name], timeout=120)
    if imported.returncode != 0:
        pytest.fail(f"could not import {name}: {imported.stderr}")


def remove_images(*references: str) -> None:
    """Remove local images by reference; ones already gone are fine."""
    run(["docker", "rmi", "--force", *references], timeout=120)
