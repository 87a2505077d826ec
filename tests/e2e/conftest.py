import uuid
from collections.abc import Iterator

import pytest

from tests.support.docker_cli import import_busybox_image, remove_images, require_docker
from tests.support.fixtures import client, registry, repo

__all__ = ["busybox_image", "client", "registry", "repo"]


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local base image (static busybox, made without internet), removed after the session."""
    require_docker()
    name = f"spacedock-e2e/busybox-{uuid.uuid4().hex[:8]}:latest"
    import_busybox_image(tmp_path_factory.mktemp("busybox"), name)
    yield name
    remove_images(name)
