"""Packages through the management API: upload, versions, download, and what OCI clients
see of them."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import uuid
import zipfile
from collections.abc import Callable

import pytest
import requests

from tests.support.accounts import Admin
from tests.support.oci import Client
from tests.support.processes import Registry


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def upload(
    registry: Registry,
    space: str,
    filename: str,
    content: bytes,
    auth: tuple[str, str] | None = None,
    **params: str,
) -> requests.Response:
    return requests.post(
        f"{registry.url}/api/v1/spaces/{space}/packages",
        files={"file": (filename, content)},
        params=params,
        auth=auth or registry.auth,
        timeout=60,
    )


def test_a_package_goes_in_and_comes_out_the_same(registry: Registry) -> None:
    package_id = f"web-{uuid.uuid4().hex[:6]}"
    content = zip_bytes({"appsettings.json": b'{"Logging": {}}', "bin/app.dll": b"\x00" * 5000})
    response = upload(registry, "spaces-1", f"{package_id}.1.2.1.zip", content)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["repository"] == f"spaces-1/packages/{package_id}"
    assert (body["id"], body["version"], body["tag"], body["size"]) == (
        package_id,
        "1.2.1",
        "1.2.1",
        len(content),
    )
    assert upload(registry, "spaces-1", f"{package_id}.1.10.0.zip", content).status_code == 201
    assert upload(registry, "spaces-1", f"{package_id}.1.3.0-beta.zip", content).status_code == 201

    api = f"{registry.url}/api/v1/spaces/spaces-1/packages/{package_id}"
    versions = requests.get(f"{api}/versions", auth=registry.auth, timeout=10).json()
    assert [v["tag"] for v in versions["versions"]] == ["1.10.0", "1.3.0-beta", "1.2.1"]
    download = requests.get(f"{api}/1.2.1", auth=registry.auth, timeout=10)
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["Content-Type"] == "application/zip"
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="{package_id}.1.2.1.zip"'
    )

    # OCI clients see an artifact whose one layer is the file, titled with its name.
    client = Client.for_registry(registry.url, registry.auth)
    manifest = client.request("GET", f"/v2/spaces-1/packages/{package_id}/manifests/1.2.1").json()
    assert manifest["artifactType"] == "application/vnd.spacedock.package.v1"
    (layer,) = manifest["layers"]
    assert layer["annotations"]["org.opencontainers.image.title"] == f"{package_id}.1.2.1.zip"
    blob = client.request("GET", f"/v2/spaces-1/packages/{package_id}/blobs/{layer['digest']}")
    assert blob.content == content


def test_an_existing_version_is_replaced_only_when_asked(registry: Registry) -> None:
    package_id = f"tool-{uuid.uuid4().hex[:6]}"
    first = gzip.compress(b"first")
    second = gzip.compress(b"second")
    assert upload(registry, "spaces-1", f"{package_id}.2.0.0.tar.gz", first).status_code == 201
    again = upload(registry, "spaces-1", f"{package_id}.2.0.0.tar.gz", second)
    assert again.status_code == 409
    assert "replace=true" in again.json()["error"]["message"]
    replaced = upload(registry, "spaces-1", f"{package_id}.2.0.0.tgz", second, replace="true")
    assert replaced.status_code == 201
    url = f"{registry.url}/api/v1/spaces/spaces-1/packages/{package_id}/2.0.0"
    download = requests.get(url, auth=registry.auth, timeout=10)
    assert download.content == second
    assert download.headers["Content-Disposition"].endswith('.tgz"')


def test_bad_uploads_are_refused_and_leave_nothing(registry: Registry) -> None:
    package_id = f"bad-{uuid.uuid4().hex[:6]}"
    good = zip_bytes({"a": b"b"})
    cases = [
        (upload(registry, "spaces-1", f"{package_id}.zip", good), 422),
        (upload(registry, "spaces-1", f"{package_id}.1.0.0.rar", good), 422),
        (upload(registry, "spaces-1", f"{package_id}.1.0.0+build.5.zip", good), 422),
        (upload(registry, "spaces-1", f"{package_id}.1.0.0.zip", b"not a zip at all"), 422),
        (upload(registry, "spaces-1", f"{package_id}.1.0.0.tgz", good), 422),
        (upload(registry, "spaces-1", f"{package_id}.1.0.0.zip", b""), 422),
        (
            requests.post(
                f"{registry.url}/api/v1/spaces/spaces-1/packages",
                data=good,
                auth=registry.auth,
                timeout=10,
            ),
            400,
        ),
        (
            requests.post(
                f"{registry.url}/api/v1/spaces/spaces-1/packages",
                files={"other": ("x.1.0.zip", good)},
                auth=registry.auth,
                timeout=10,
            ),
            422,
        ),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["message"]
    versions = requests.get(
        f"{registry.url}/api/v1/spaces/spaces-1/packages/{package_id}/versions",
        auth=registry.auth,
        timeout=10,
    )
    assert versions.status_code == 404
    client = Client.for_registry(registry.url, registry.auth)
    tags = client.request("GET", f"/v2/spaces-1/packages/{package_id}/tags/list")
    assert tags.status_code == 404


def test_package_roles(registry: Registry) -> None:
    """Readers download, writers upload, strangers see no such space."""
    admin = Admin(registry.url, registry.auth)
    space = admin.space("pkg")
    reader, writer, stranger = admin.user("r"), admin.user("w"), admin.user("s")
    admin.grant(space, reader, "reader")
    admin.grant(space, writer, "writer")
    content = zip_bytes({"f": b"x"})
    assert upload(registry, space, "app.1.0.0.zip", content, auth=reader.basic).status_code == 403
    assert upload(registry, space, "app.1.0.0.zip", content, auth=stranger.basic).status_code == 404
    assert (
        upload(registry, space, "app.1.0.0.zip", content, auth=writer.key_basic).status_code == 201
    )
    url = f"{registry.url}/api/v1/spaces/{space}/packages/app/1.0.0"
    assert requests.get(url, auth=reader.basic, timeout=10).content == content
    assert requests.get(url, auth=stranger.basic, timeout=10).status_code == 404
    missing = requests.get(url.replace("1.0.0", "9.9.9"), auth=reader.basic, timeout=10)
    assert missing.status_code == 404
    assert json.loads(missing.text)["error"]["code"] == "NOT_FOUND"


def test_malformed_or_cut_short_multipart_is_refused(registry: Registry) -> None:
    """A body without a boundary, or one that ends before its closing boundary, is a 400 and
    stores nothing."""
    package_id = f"cut-{uuid.uuid4().hex[:6]}"
    url = f"{registry.url}/api/v1/spaces/spaces-1/packages"
    content = zip_bytes({"a": b"b" * 1000})
    boundary = "XyZ"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{package_id}.1.0.0.zip"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    for body, content_type in (
        (head + content, f"multipart/form-data; boundary={boundary}"),
        (head + content + b"\r\n--Xy", f"multipart/form-data; boundary={boundary}"),
        (b"garbage", "multipart/form-data"),
        (b"", f"multipart/form-data; boundary={boundary}"),
    ):
        response = requests.post(
            url, data=body, headers={"Content-Type": content_type}, auth=registry.auth, timeout=10
        )
        assert response.status_code in (400, 422), (body[-20:], response.text)
    client = Client.for_registry(registry.url, registry.auth)
    assert client.request("GET", f"/v2/spaces-1/packages/{package_id}/tags/list").status_code == 404


def tar_gz_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            archive.addfile(entry, io.BytesIO(content))
    return buffer.getvalue()


DOCKERFILE = b"FROM 127.0.0.1:5000/spaces-1/base:1.0\nCOPY site /srv/site\n"


@pytest.mark.parametrize(
    ("extension", "archive"), [(".zip", zip_bytes), (".tar.gz", tar_gz_bytes)], ids=["zip", "tgz"]
)
def test_an_sdi_whose_sdi_yaml_a_build_would_refuse_is_refused_at_upload(
    registry: Registry, extension: str, archive: Callable[[dict[str, bytes]], bytes]
) -> None:
    """The 422 says what the build would have said, and nothing of the upload is left."""
    package_id = f"sdi-{uuid.uuid4().hex[:6]}"
    cases = [
        ({"sdi.yaml": b"features:\n  substitute_in_files: site/*.html\n"},
         "substitute_in_files must be a list", "sdi_invalid"),
        ({"sdi.yaml": b"packages:\n  - id: lib\n    extract_to: ../outside\n"},
         "packages[0].extract_to '../outside' leaves the folder (..)", "sdi_invalid"),
        ({"sdi.yaml": b"feature: {}\n"}, "sdi.yaml: unknown keys feature", "sdi_invalid"),
        ({"sdi.yaml": "caf\u00e9: 1\n".encode("latin-1")}, "sdi.yaml is not UTF-8 text",
         "sdi_invalid"),
    ]  # fmt: skip
    for files, message, code in cases:
        content = archive({"Dockerfile": DOCKERFILE, "site/index.html": b"<p>hi</p>", **files})
        response = upload(registry, "spaces-1", f"{package_id}.1.0.0{extension}", content)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert (error["message"], error["detail"]) == (message, {"build_error": code})
    versions = requests.get(
        f"{registry.url}/api/v1/spaces/spaces-1/packages/{package_id}/versions",
        auth=registry.auth,
        timeout=10,
    )
    assert versions.status_code == 404  # not even an empty repository
    listed = requests.get(
        f"{registry.url}/api/v1/spaces/spaces-1/repositories",
        params={"q": package_id},
        auth=registry.auth,
        timeout=10,
    )
    assert listed.json()["repositories"] == []


@pytest.mark.parametrize(
    "files",
    [
        {"Dockerfile": DOCKERFILE, "sdi.yaml": b"features:\n  substitute_in_files: [a.conf]\n"},
        {"Dockerfile": DOCKERFILE},  # sdi.yaml is optional
        {"sdi.yaml": b"not: [an, sdi"},  # no Dockerfile at the root: not an SDI
        {"Dockerfile": DOCKERFILE, "docs/sdi.yaml": b"features: 1"},  # not at the root
    ],
    ids=["valid-sdi", "no-sdi-yaml", "not-an-sdi", "nested-sdi-yaml"],
)
def test_packages_that_are_not_refused_sdis_upload_as_before(
    registry: Registry, files: dict[str, bytes]
) -> None:
    package_id = f"ok-{uuid.uuid4().hex[:6]}"
    for extension, content in ((".zip", zip_bytes(files)), (".tgz", tar_gz_bytes(files))):
        response = upload(registry, "spaces-1", f"{package_id}.1.0.0{extension}", content,
                          replace="true")  # fmt: skip
        assert response.status_code == 201, response.text
        download = requests.get(
            f"{registry.url}/api/v1/spaces/spaces-1/packages/{package_id}/1.0.0",
            auth=registry.auth,
            timeout=10,
        )
        assert download.content == content


def pax_tar_gz(pax: bytes, files: dict[str, bytes]) -> bytes:
    """A tar.gz whose first header is a pax header holding ``pax`` as it is."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        header = tarfile.TarInfo("././@PaxHeader")
        header.type, header.size = tarfile.XHDTYPE, len(pax)
        archive.addfile(header, io.BytesIO(pax))
        for name, content in files.items():
            entry = tarfile.TarInfo(name)
            entry.size = len(content)
            archive.addfile(entry, io.BytesIO(content))
    return gzip.compress(buffer.getvalue())


def test_hostile_sdis_are_answered_never_a_server_error(registry: Registry) -> None:
    """An sdi.yaml YAML's reader refuses is a 422 in the build's words; a pax header tarfile
    would take quadratic time and memory to parse (CVE-2024-6232) is let through unjudged,
    after the scan in its child process, and the registry goes on answering."""
    package_id = f"hostile-{uuid.uuid4().hex[:6]}"
    control = zip_bytes({"Dockerfile": DOCKERFILE, "sdi.yaml": b"packages: []\x01\n"})
    response = upload(registry, "spaces-1", f"{package_id}.1.0.0.zip", control)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["message"], error["detail"]) == (
        "sdi.yaml is not valid YAML (a character YAML does not allow)",
        {"build_error": "sdi_invalid"},
    )
    quadratic = pax_tar_gz(
        b"2 " * 32 * 1024 + b"=\n", {"Dockerfile": DOCKERFILE, "sdi.yaml": b"features: 7\n"}
    )
    response = upload(registry, "spaces-1", f"{package_id}.1.0.1.tar.gz", quadratic)
    assert response.status_code == 201, response.text
    assert requests.get(f"{registry.url}/v2/", auth=registry.auth, timeout=10).status_code == 200
