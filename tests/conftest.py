"""Session-wide real services: a SecantusDB server and a moto S3 server, started once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.amqp import fresh_vhost
from tests.support.processes import Service, start_moto, start_secantus


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def mongo_server(services_dir: Path) -> Iterator[Service]:
    service = start_secantus(services_dir / "secantus")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3_server(services_dir: Path) -> Iterator[Service]:
    service = start_moto(services_dir / "moto")
    yield service
    service.stop()


@pytest.fixture
def mongo_url(mongo_server: Service) -> str:
    """A fresh database on the session's server for each test."""
    return f"mongodb://127.0.0.1:{mongo_server.port}/t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_endpoint(s3_server: Service) -> str:
    return f"127.0.0.1:{s3_server.port}"


@pytest.fixture
def amqp_vhost() -> Iterator[str]:
    """The URL of a virtual host of the test's own on the tests' RabbitMQ, deleted after it."""
    with fresh_vhost() as url:
        yield url
