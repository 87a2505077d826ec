import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.docker_cli import import_busybox_image, remove_images, require_docker
from tests.support.fixtures import client, registry, repo

__all__ = ["busybox_image", "client", "docker_env", "registry", "repo"]


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local base image (static busybox, made without internet), removed after the session."""
    require_docker()
    name = f"spacedock-e2e/busybox-{uuid.uuid4().hex[:8]}:latest"
    import_busybox_image(tmp_path_factory.mktemp("busybox"), name)
    yield name
    remove_images(name)


@pytest.fixture
def docker_env(tmp_path: Path) -> dict[str, str]:
    """The environment for docker commands, with a private config dir (never ``~/.docker``)."""
    config = tmp_path / "docker-config"
    config.mkdir()
    return {**os.environ, "DOCKER_CONFIG": str(config)}
