"""Fixtures that start registries; imported by the integration and e2e conftests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.oci import Client
from tests.support.processes import Registry, Service, start_registry


@pytest.fixture(scope="session", params=["filesystem", "s3"])
def registry(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mongo_server: Service,
    s3_server: Service,
) -> Iterator[Registry]:
    """One registry process per storage driver, each with its own database and bucket."""
    storage: str = request.param
    suffix = uuid.uuid4().hex[:8]
    process = start_registry(
        tmp_path_factory.mktemp(f"registry-{storage}"),
        f"mongodb://127.0.0.1:{mongo_server.port}/registry_{storage}_{suffix}",
        storage=storage,
        s3_endpoint=f"127.0.0.1:{s3_server.port}",
        bucket=f"blobs-{suffix}",
    )
    yield process
    process.stop()


@pytest.fixture
def client(registry: Registry) -> Client:
    return Client.for_registry(registry.url, registry.auth)


@pytest.fixture
def repo() -> str:
    """A repository name no other test uses."""
    return f"spaces-1/test-{uuid.uuid4().hex[:10]}"
