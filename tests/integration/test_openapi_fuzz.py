"""Schemathesis over the management API: requests generated from the served OpenAPI document
(valid ones, invalid ones, and methods a path does not have) get answers the document
describes, and never a server error.

A registry of its own, so what the generated requests change (spaces created, policies set,
users added) touches no other test; it holds what the document's examples name, so requests
reach past the 404s. The run is bounded (MAX_EXAMPLES per operation and phase) and
derandomized: the same document makes the same requests every time.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from services.registry.bootstrap import ADMIN
from tests.support.oci import Client
from tests.support.processes import Registry, Service, start_registry

MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    unsupported_method,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed_registry(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[Registry]:
    """A registry whose default space holds what the document's examples name: the image
    spaces-1/mywebapp:1.0.0 and the package mywebapp 1.0.0."""
    registry = start_registry(
        tmp_path_factory.mktemp("openapi-fuzz"),
        f"mongodb://127.0.0.1:{mongo_server.port}/fuzz_{uuid.uuid4().hex[:8]}",
    )
    client = Client.for_registry(registry.url, registry.auth)
    client.push_image("spaces-1/mywebapp", "1.0.0", [b"layer"])
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("hello.txt", "hello")
    uploaded = client.request(
        "POST",
        "/api/v1/spaces/spaces-1/packages",
        files={"file": ("mywebapp.1.0.0.zip", package.getvalue())},
    )
    assert uploaded.status_code == 201, uploaded.text
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def management_api(fuzzed_registry: Registry) -> schemathesis.BaseSchema:
    """The document as the registry serves it, called with the admin's password."""
    config = schemathesis.Config()
    config.projects.default.update(
        base_url=fuzzed_registry.url, basic_auth=fuzzed_registry.auth, request_timeout=30
    )
    config.projects.default.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
    return schemathesis.openapi.from_url(
        f"{fuzzed_registry.url}/api/v1/openapi.json", config=config, timeout=10
    )


schema = schemathesis.pytest.from_fixture("management_api")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_documented_answers(case: schemathesis.Case[Any]) -> None:
    if case.method in ("PATCH", "DELETE") and case.path_parameters.get("username") == ADMIN:
        return  # the run's own credentials: a new password would end it
    case.call_and_validate(checks=CHECKS)
