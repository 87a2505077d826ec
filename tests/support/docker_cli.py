"""The docker CLI against the local engine: a base image made without internet, image cleanup."""

from __future__ import annotations

import shutil
import subprocess
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


def import_busybox_image(workdir: Path, name: str) -> None:
    """Import ``name``: a root filesystem holding a static busybox and a few applet links."""
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
    with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
        imported = subprocess.run(
            ["docker", "import", "-", name], stdin=tar.stdout, capture_output=True, timeout=120
        )
    if tar.returncode != 0 or imported.returncode != 0:
        pytest.fail(f"could not import {name}: {imported.stderr.decode(errors='replace')}")


def remove_images(*references: str) -> None:
    """Remove local images by reference; ones already gone are fine."""
    run(["docker", "rmi", "--force", *references], timeout=120)
