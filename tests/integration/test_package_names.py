"""Package uploads through the management API: a file name with no dot between id and
version is refused and stores nothing, and a version already in the feed is a conflict whose
answer names the package, for clients to offer replacing it."""

from __future__ import annotations

import io
import uuid
import zipfile

import requests

from tests.support.processes import Registry


def archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("index.html", "<p>catalog</p>")
    return buffer.getvalue()


def upload(registry: Registry, filename: str, **params: str) -> requests.Response:
    return requests.post(
        f"{registry.url}/api/v1/spaces/spaces-1/packages",
        files={"file": (filename, archive())},
        params=params,
        auth=registry.auth,
        timeout=60,
    )


def test_a_version_run_into_the_id_is_refused_and_stores_nothing(registry: Registry) -> None:
    stem = f"catalog{uuid.uuid4().hex[:6]}x"
    refused = upload(registry, f"{stem}-3.1.0.zip")
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert f"would be package '{stem}-3' version '1.0'" in message
    assert f"e.g. {stem}.3.1.0.zip" in message
    versions = requests.get(
        f"{registry.url}/api/v1/spaces/spaces-1/packages/{stem}-3/versions",
        auth=registry.auth,
        timeout=10,
    )
    assert versions.status_code == 404
    assert upload(registry, f"{stem}.3.1.0.zip").status_code == 201


def test_an_id_ending_in_a_number_with_a_full_version_uploads_as_before(
    registry: Registry,
) -> None:
    package_id = f"catalog-{uuid.uuid4().hex[:6]}x-2024"
    stored = upload(registry, f"{package_id}.3.1.0.zip")
    assert stored.status_code == 201, stored.text
    assert (stored.json()["id"], stored.json()["version"]) == (package_id, "3.1.0")


def test_an_existing_version_is_a_conflict_that_names_the_package(registry: Registry) -> None:
    package_id = f"catalog-{uuid.uuid4().hex[:6]}x"
    assert upload(registry, f"{package_id}.3.1.0.zip").status_code == 201
    again = upload(registry, f"{package_id}.3.1.0.zip")
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["code"] == "PACKAGE_EXISTS"
    assert "?replace=true" in error["message"]
    assert error["detail"] == {"space": "spaces-1", "id": package_id, "version": "3.1.0"}
    assert upload(registry, f"{package_id}.3.1.0.zip", replace="true").status_code == 201


def test_a_package_the_feed_holds_keeps_taking_versions_named_as_before(
    registry: Registry,
) -> None:
    """Only a new package is refused such a name: one that was stored as ``web-7`` (pushed
    with an OCI client, or before the rule) takes ``web-7.1.3.zip`` as version 1.3."""
    package_id = f"web{uuid.uuid4().hex[:6]}x-7"
    assert upload(registry, f"{package_id}.1.2.0.zip").status_code == 201
    again = upload(registry, f"{package_id}.1.3.zip")
    assert again.status_code == 201, again.text
    assert (again.json()["id"], again.json()["version"]) == (package_id, "1.3")
