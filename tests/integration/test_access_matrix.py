"""Roles per space on every OCI and management path: each role, on each endpoint, in its own
space and in another, with each kind of credential (password, API key, bearer token)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.support.accounts import Account, Admin, bearer_client, granted, token
from tests.support.oci import OCI_MANIFEST, Client, digest_of, error_codes
from tests.support.processes import Registry, Service, start_registry

ROLES = ("none", "reader", "writer", "admin")
RANK = {"none": 0, "reader": 1, "writer": 2, "admin": 3}
NEEDS = {"pull": 1, "push": 2, "delete": 3, "read": 1, "manage": 3}
MODES = ("password", "api_key", "token")


@dataclass
class Image:
    digest: str
    manifest: bytes
    layer: str


@dataclass
class World:
    registry: Registry
    admin: Admin
    admin_client: Client
    own: str
    other: str
    users: dict[str, Account]
    bystander: Account
    images: dict[str, Image]

    def fresh_image(self, space: str) -> Image:
        layer = uuid.uuid4().bytes
        digest, body = self.admin_client.push_image(f"{space}/app", None, [layer])
        return Image(digest, body, digest_of(layer))


@pytest.fixture(scope="module")
def identity_registry(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[Registry]:
    registry = start_registry(
        tmp_path_factory.mktemp("identity"),
        f"mongodb://127.0.0.1:{mongo_server.port}/identity_{uuid.uuid4().hex[:8]}",
    )
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def world(identity_registry: Registry) -> World:
    registry = identity_registry
    admin = Admin(registry.url, registry.auth)
    admin_client = Client.for_registry(registry.url, registry.auth)
    own, other = admin.space("own"), admin.space("other")
    users = {role: admin.user(role) for role in ROLES}
    for role in ("reader", "writer", "admin"):
        admin.grant(own, users[role], role)
    bystander = admin.user("bystander", with_key=False)
    world = World(registry, admin, admin_client, own, other, users, bystander, {})
    for space in (own, other):
        world.images[space] = world.fresh_image(space)
        admin_client.put_manifest(f"{space}/app", "v1", world.images[space].manifest)
        admin_client.push_blob(f"{space}/src", b"mountable-" + space.encode())
        referrer = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": admin_client.push_blob(f"{space}/app", b"{}"),
                "size": 2,
            },
            "layers": [],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": world.images[space].digest,
                "size": len(world.images[space].manifest),
            },
        }
        body = json.dumps(referrer).encode()
        assert admin_client.put_manifest(f"{space}/app", digest_of(body), body).status_code == 201
    return world


Call = Callable[[Client, World, str], requests.Response]


@dataclass(frozen=True)
class Case:
    name: str
    needs: str
    call: Call
    ok: tuple[int, ...]
    management: bool = False


def _session(world: World, space: str) -> str:
    response = world.admin_client.request("POST", f"/v2/{space}/app/blobs/uploads/")
    assert response.status_code == 202, response.text
    return str(response.headers["Location"])


def _fresh_tag(world: World, space: str) -> str:
    tag = f"t-{uuid.uuid4().hex[:8]}"
    image = world.images[space]
    assert world.admin_client.put_manifest(f"{space}/app", tag, image.manifest).status_code == 201
    return tag


def oci(method: str, path: str, **kwargs: Any) -> Call:
    """``path`` under ``/v2/<space>``, with ``{layer}`` and ``{digest}`` of the space's image."""

    def call(client: Client, world: World, space: str) -> requests.Response:
        image = world.images[space]
        concrete = path.format(layer=image.layer, digest=image.digest)
        return client.request(method, f"/v2/{space}{concrete}", **kwargs)

    return call


def api(method: str, path: str, **kwargs: Any) -> Call:
    """``path`` under ``/api/v1/spaces/<space>``."""
    return lambda c, w, s: c.request(method, f"/api/v1/spaces/{s}{path}", **kwargs)


def _monolithic(client: Client, world: World, space: str) -> requests.Response:
    data = b"x" + space.encode()
    params = {"digest": digest_of(data)}
    return client.request("POST", f"/v2/{space}/app/blobs/uploads/", params=params, data=data)


def _mount(client: Client, world: World, space: str) -> requests.Response:
    params = {"mount": digest_of(b"mountable-" + space.encode()), "from": f"{space}/src"}
    return client.request("POST", f"/v2/{space}/app/blobs/uploads/", params=params)


def _put_manifest(client: Client, world: World, space: str) -> requests.Response:
    tag = f"p-{uuid.uuid4().hex[:6]}"
    return client.put_manifest(f"{space}/app", tag, world.images[space].manifest)


def _set_member(client: Client, world: World, space: str) -> requests.Response:
    path = f"/api/v1/spaces/{space}/members/{world.bystander.username}"
    return client.request("PUT", path, json={"role": "reader"})


CASES = (
    Case("get manifest", "pull", oci("GET", "/app/manifests/v1"), (200,)),
    Case("head manifest", "pull", oci("HEAD", "/app/manifests/v1"), (200,)),
    Case("get blob", "pull", oci("GET", "/app/blobs/{layer}"), (200,)),
    Case("head blob", "pull", oci("HEAD", "/app/blobs/{layer}"), (200,)),
    Case("tag list", "pull", oci("GET", "/app/tags/list"), (200,)),
    Case("referrers", "pull", oci("GET", "/app/referrers/{digest}"), (200,)),
    Case("start upload", "push", oci("POST", "/app/blobs/uploads/"), (202,)),
    Case("monolithic upload", "push", _monolithic, (201,)),
    Case("upload status", "push", lambda c, w, s: c.request("GET", _session(w, s)), (204,)),
    Case("upload chunk", "push", lambda c, w, s: c.request(
        "PATCH", _session(w, s), data=b"chunk", headers={"Content-Range": "0-4"}), (202,)),
    Case("cancel upload", "push", lambda c, w, s: c.request("DELETE", _session(w, s)), (204,)),
    Case("mount within the space", "push", _mount, (201,)),
    Case("put manifest", "push", _put_manifest, (201,)),
    Case("delete tag", "delete", lambda c, w, s: c.request(
        "DELETE", f"/v2/{s}/app/manifests/{_fresh_tag(w, s)}"), (202,)),
    Case("delete manifest", "delete", lambda c, w, s: c.request(
        "DELETE", f"/v2/{s}/app/manifests/{w.fresh_image(s).digest}"), (202,)),
    Case("delete blob", "delete", lambda c, w, s: c.request(
        "DELETE", f"/v2/{s}/app/blobs/{w.fresh_image(s).layer}"), (202,)),
    Case("read space", "read", api("GET", ""), (200,), True),
    Case("search", "read", api("GET", "/repositories", params={"q": "a"}), (200,), True),
    Case("list versions", "read", api("GET", "/repositories/app/versions"), (200,), True),
    Case("rename space", "manage", api("PATCH", "", json={"name": "renamed"}), (200,), True),
    Case("list members", "manage", api("GET", "/members"), (200,), True),
    Case("set a member", "manage", _set_member, (200, 201), True),
)  # fmt: skip


def _client(world: World, mode: str, account: Account, space: str) -> Client:
    url = world.registry.url
    if mode == "password":
        return Client.for_registry(url, account.basic)
    if mode == "api_key":
        return Client.for_registry(url, account.key_basic)
    access = token(
        url,
        account.basic,
        f"repository:{space}/app:pull,push,delete",
        f"repository:{space}/src:pull",
        f"space:{space}:read,write,manage",  # the management API's scopes
    )
    return bearer_client(url, access)


@pytest.mark.parametrize("mode", MODES)
def test_every_role_on_every_path_in_both_spaces(world: World, mode: str) -> None:
    """Each operation succeeds exactly when the caller's role in that space allows it; in
    the other space, where the caller has no role, everything is refused. Refusals are DENIED
    on the OCI API, and 404 (no role: the space is not even visible) or 403 (role too low)
    on the management API."""
    failures: list[str] = []
    checked = 0
    for role in ROLES:
        account = world.users[role]
        for space in (world.own, world.other):
            client = _client(world, mode, account, space)
            rank = RANK[role] if space == world.own else 0
            for case in CASES:
                response = case.call(client, world, space)
                checked += 1
                allowed = rank >= NEEDS[case.needs]
                where = f"{mode} {role} {'own' if space == world.own else 'other'} {case.name}"
                if allowed:
                    if response.status_code not in case.ok:
                        failures.append(f"{where}: {response.status_code} {response.text[:200]}")
                    continue
                if case.management:
                    expected = 403 if rank > 0 else 404
                    if response.status_code != expected:
                        failures.append(f"{where}: {response.status_code}, wanted {expected}")
                elif response.status_code != 403 or (
                    response.request.method != "HEAD" and error_codes(response) != ["DENIED"]
                ):
                    failures.append(f"{where}: {response.status_code} {response.text[:200]}")
    assert checked == len(ROLES) * 2 * len(CASES)
    assert not failures, "\n".join(failures)


def test_unknown_space_is_name_unknown_only_for_those_who_see_every_space(world: World) -> None:
    """A superuser is told a space does not exist; anyone else cannot tell a missing space
    from one they may not see."""
    missing = f"nowhere-{uuid.uuid4().hex[:6]}"
    response = world.admin_client.request("GET", f"/v2/{missing}/app/tags/list")
    assert (response.status_code, error_codes(response)) == (404, ["NAME_UNKNOWN"])
    writer = Client.for_registry(world.registry.url, world.users["writer"].basic)
    for path in (f"/v2/{missing}/app/tags/list", f"/v2/{world.other}/nothing/tags/list"):
        response = writer.request("GET", path)
        assert (response.status_code, error_codes(response)) == (403, ["DENIED"]), path


def test_catalog_and_space_list_show_only_spaces_with_a_role(world: World) -> None:
    """The catalog and the space list hold exactly the spaces the caller has a role in."""
    outsider = world.users["none"]
    world.admin.grant(world.other, outsider, "reader")
    try:
        expectations = {
            world.users["reader"].username: {world.own},
            outsider.username: {world.other},
        }
        for account in (world.users["reader"], outsider):
            for client in (
                Client.for_registry(world.registry.url, account.basic),
                bearer_client(
                    world.registry.url,
                    token(world.registry.url, account.basic, "registry:catalog:*"),
                ),
            ):
                names = client.request("GET", "/v2/_catalog").json()["repositories"]
                spaces = {name.split("/", 1)[0] for name in names}
                assert spaces == expectations[account.username], (account, names)
                listed = client.request("GET", "/api/v1/spaces").json()["spaces"]
                assert {s["id"] for s in listed} == expectations[account.username]
        everything = world.admin_client.request("GET", "/v2/_catalog", params={"n": 10000})
        spaces = {name.split("/", 1)[0] for name in everything.json()["repositories"]}
        assert {world.own, world.other} <= spaces
    finally:
        world.admin.call("DELETE", f"/spaces/{world.other}/members/{outsider.username}", 204)


def test_catalog_needs_an_account(world: World) -> None:
    """Anonymous callers get a challenge for the catalog scope, and an anonymous token does
    not hold it."""
    response = requests.get(f"{world.registry.url}/v2/_catalog", timeout=10)
    assert response.status_code == 401
    assert 'scope="registry:catalog:*"' in response.headers["WWW-Authenticate"]
    anonymous = token(world.registry.url, None, "registry:catalog:*")
    assert bearer_client(world.registry.url, anonymous).request(
        "GET", "/v2/_catalog"
    ).status_code in (401, 403)


def test_mounts_never_cross_into_a_space_without_a_role(world: World) -> None:
    """A writer can mount from repositories it can read; naming a repository of another
    space, or leaving ``from`` out, never links a blob from there: the client gets a plain
    upload session instead, which says nothing about the other space."""
    writer = world.users["writer"]
    secret_blob = digest_of(b"mountable-" + world.other.encode())
    for mode in MODES:
        client = _client(world, mode, writer, world.own)
        for params in (
            {"mount": secret_blob, "from": f"{world.other}/src"},
            {"mount": secret_blob},
        ):
            response = client.request("POST", f"/v2/{world.own}/app/blobs/uploads/", params=params)
            assert response.status_code == 202, (mode, params, response.text)
        head = world.admin_client.request("HEAD", f"/v2/{world.own}/app/blobs/{secret_blob}")
        assert head.status_code == 404

    world.admin.grant(world.other, writer, "reader")
    try:
        client = Client.for_registry(world.registry.url, writer.basic)
        response = client.request(
            "POST", f"/v2/{world.own}/app/blobs/uploads/", params={"mount": secret_blob}
        )
        assert response.status_code == 201, response.text
    finally:
        world.admin.call("DELETE", f"/spaces/{world.other}/members/{writer.username}", 204)


def test_anonymous_pull_is_per_space_and_pull_only(world: World) -> None:
    """Without credentials nothing is readable until a space allows anonymous pulls; then
    pulls work (directly and with an anonymous token) and push and delete still do not."""
    url = world.registry.url
    anonymous = Client.for_registry(url, None)
    manifest = f"/v2/{world.own}/app/manifests/v1"
    refused = anonymous.request("GET", manifest)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == (
        f'Bearer realm="{url}/auth/token",service="spacedock",'
        f'scope="repository:{world.own}/app:pull"'
    )
    world.admin.call("PATCH", f"/spaces/{world.own}", 200, json={"anonymous_pull": True})
    try:
        for client in (
            anonymous,
            bearer_client(url, token(url, None, f"repository:{world.own}/app:pull,push")),
        ):
            assert client.request("GET", manifest).status_code == 200
            layer = world.images[world.own].layer
            assert client.request("GET", f"/v2/{world.own}/app/blobs/{layer}").status_code == 200
            assert client.request("GET", f"/v2/{world.own}/app/tags/list").status_code == 200
            push = client.request("POST", f"/v2/{world.own}/app/blobs/uploads/")
            delete = client.request("DELETE", f"/v2/{world.own}/app/manifests/v1")
            assert push.status_code in (401, 403) and delete.status_code in (401, 403)
            other = client.request("GET", f"/v2/{world.other}/app/manifests/v1")
            assert other.status_code in (401, 403)
        granted_access = token(url, None, f"repository:{world.own}/app:pull,push,delete")
        assert granted(granted_access) == [
            {"type": "repository", "name": f"{world.own}/app", "actions": ["pull"]}
        ]
    finally:
        world.admin.call("PATCH", f"/spaces/{world.own}", 200, json={"anonymous_pull": False})
    assert anonymous.request("GET", manifest).status_code == 401
