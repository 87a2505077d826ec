"""Tokens, API keys, passwords and accounts through the real endpoints: what a token holds,
when credentials stop working, and the users API."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.support.accounts import PASSWORD, Account, Admin, bearer_client, granted, token
from tests.support.oci import Client, error_codes
from tests.support.processes import BUILDER_KEY, Registry, Service, start_registry

SHORT_TTL = 1


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[tuple[Registry, Registry]]:
    """Two instances on one database: the second issues tokens that live one second."""
    database = f"mongodb://127.0.0.1:{mongo_server.port}/tokens_{uuid.uuid4().hex[:8]}"
    first = start_registry(
        tmp_path_factory.mktemp("tokens-a"),
        database,
        extra_env={"SPACEDOCK_BUILDER_KEY": BUILDER_KEY},
    )
    second = start_registry(
        tmp_path_factory.mktemp("tokens-b"),
        database,
        extra_env={"SPACEDOCK_TOKEN_TTL_SECONDS": str(SHORT_TTL)},
    )
    yield first, second
    first.stop()
    second.stop()


@pytest.fixture(scope="module")
def registry_a(pair: tuple[Registry, Registry]) -> Registry:
    return pair[0]


@pytest.fixture(scope="module")
def admin(registry_a: Registry) -> Admin:
    return Admin(registry_a.url, registry_a.auth)


@pytest.fixture(scope="module")
def space(admin: Admin) -> str:
    return admin.space("tok")


def _member(admin: Admin, space: str, role: str) -> Account:
    account = admin.user(role)
    admin.grant(space, account, role)
    return account


def test_a_token_holds_only_the_scopes_the_caller_has(
    registry_a: Registry, admin: Admin, space: str
) -> None:
    """Asking for everything gets what the role allows and nothing more; a repository of a
    space without a role gets no entry at all."""
    url = registry_a.url
    every = f"repository:{space}/app:pull,push,delete"
    elsewhere = "repository:spaces-1/app:pull"
    expected = {"reader": ["pull"], "writer": ["pull", "push"], "admin": ["pull", "push", "delete"]}
    for role, actions in expected.items():
        account = _member(admin, space, role)
        for auth in (account.basic, account.key_basic):
            access = granted(token(url, auth, every, elsewhere, "registry:catalog:*"))
            assert access == [
                {"type": "repository", "name": f"{space}/app", "actions": actions},
                {"type": "registry", "name": "catalog", "actions": ["*"]},
            ], role
    star = granted(token(url, registry_a.auth, f"repository:{space}/app:*"))
    assert star[0]["actions"] == ["pull", "push", "delete"]


def test_token_response_has_the_docker_fields(registry_a: Registry) -> None:
    response = requests.get(
        f"{registry_a.url}/auth/token",
        params={"service": "spacedock", "scope": "repository:spaces-1/x:pull"},
        auth=registry_a.auth,
        timeout=10,
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")


def test_oauth2_password_grant(registry_a: Registry) -> None:
    """POST /auth/token with grant_type=password, as oras-go and containerd may send."""
    url = f"{registry_a.url}/auth/token"
    form = {
        "grant_type": "password",
        "service": "spacedock",
        "client_id": "test",
        "username": registry_a.username,
        "password": registry_a.password,
        "scope": "repository:spaces-1/x:pull",
    }
    response = requests.post(url, data=form, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "repository:spaces-1/x:pull"
    access = response.json()["access_token"]
    # scope says what was granted, not what was asked for
    asked = "repository:spaces-1/x:push,pull nosuch:thing:read repository:Bad:pull"
    granted = requests.post(url, data={**form, "scope": asked}, timeout=10).json()["scope"]
    assert granted == "repository:spaces-1/x:pull,push"
    assert bearer_client(registry_a.url, access).request("GET", "/v2/").status_code == 200
    wrong = requests.post(url, data={**form, "password": "nope-nope"}, timeout=10)
    assert wrong.status_code == 401
    refresh = requests.post(url, data={**form, "grant_type": "refresh_token"}, timeout=10)
    assert refresh.status_code == 400


def test_token_endpoint_refuses_bad_requests(registry_a: Registry) -> None:
    url = f"{registry_a.url}/auth/token"
    wrong = requests.get(url, auth=("admin", "wrong-password"), timeout=10)
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == 'Basic realm="spacedock"'
    other_service = requests.get(url, params={"service": "elsewhere"}, timeout=10)
    assert (other_service.status_code, error_codes(other_service)) == (400, ["INVALID_REQUEST"])
    malformed = requests.get(url, params={"scope": "nonsense"}, timeout=10)
    assert malformed.status_code == 400
    mismatch = requests.get(url, params={"account": "someone"}, auth=registry_a.auth, timeout=10)
    assert mismatch.status_code == 401
    bearer = requests.get(url, headers={"Authorization": "Bearer abc"}, timeout=10)
    assert bearer.status_code == 401


def test_forged_tokens_are_refused(registry_a: Registry, space: str) -> None:
    """A token whose claims were edited, or that claims no signature, is invalid_token."""
    access = token(registry_a.url, None, f"repository:{space}/app:pull")
    header, payload, signature = access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    claims["access"] = [{"type": "repository", "name": f"{space}/app", "actions": ["delete"]}]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=")
    for forged in (
        f"{header}.{forged_payload}.{signature}",
        f"{unsigned_header.decode()}.{forged_payload}.",
        "not-a-token",
    ):
        response = bearer_client(registry_a.url, forged).request("GET", "/v2/")
        assert response.status_code == 401, forged
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_token_without_the_scope_gets_an_insufficient_scope_challenge(
    registry_a: Registry, space: str
) -> None:
    """The role allows the push but the token was asked only for pull: 401 with a challenge
    that names the scope to ask for (RFC 6750 §3.1), as Distribution answers."""
    pull_only = token(registry_a.url, registry_a.auth, f"repository:{space}/app:pull")
    response = bearer_client(registry_a.url, pull_only).request(
        "POST", f"/v2/{space}/app/blobs/uploads/"
    )
    assert (response.status_code, error_codes(response)) == (401, ["UNAUTHORIZED"])
    challenge = response.headers["WWW-Authenticate"]
    assert f'scope="repository:{space}/app:pull,push"' in challenge
    assert 'error="insufficient_scope"' in challenge


def test_tokens_from_one_instance_work_on_another_and_expire(
    pair: tuple[Registry, Registry], space: str
) -> None:
    """Instances share the signing key; a token stops working when it expires."""
    first, short_lived = pair
    scope = f"repository:{space}/app:pull"
    from_first = token(first.url, first.auth, scope)
    assert bearer_client(short_lived.url, from_first).request("GET", "/v2/").status_code == 200
    brief = token(short_lived.url, short_lived.auth, scope)
    client = bearer_client(first.url, brief)
    assert client.request("GET", "/v2/").status_code == 200
    time.sleep(SHORT_TTL + 2.5)  # the lifetime plus the tolerated clock skew
    expired = client.request("GET", "/v2/")
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    fresh = token(short_lived.url, short_lived.auth, scope)
    assert bearer_client(first.url, fresh).request("GET", "/v2/").status_code == 200


def _wait_refused(client: Client, path: str = "/v2/", seconds: float = 5.0) -> int:
    deadline = time.monotonic() + seconds
    while True:
        status = client.request("GET", path).status_code
        if status == 401 or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_a_revoked_key_stops_working_with_its_tokens_on_every_instance(
    pair: tuple[Registry, Registry], admin: Admin, space: str
) -> None:
    """Revoking a key ends Basic access with it and every token it obtained: at once on the
    instance that revoked it, within the cache lifetime on the other."""
    first, second = pair
    account = _member(admin, space, "writer")
    by_key = token(first.url, account.key_basic, f"repository:{space}/app:pull")
    clients = [
        Client.for_registry(first.url, account.key_basic),
        Client.for_registry(second.url, account.key_basic),
        bearer_client(first.url, by_key),
        bearer_client(second.url, by_key),
    ]
    for client in clients:
        assert client.request("GET", "/v2/").status_code == 200
    admin.call("DELETE", f"/users/{account.username}/api-keys/{account.api_key_id}", 204)
    assert clients[0].request("GET", "/v2/").status_code == 401
    assert clients[2].request("GET", "/v2/").status_code == 401
    for client in clients[1::2]:
        assert _wait_refused(client) == 401
    refused = requests.get(f"{first.url}/auth/token", auth=account.key_basic, timeout=10)
    assert refused.status_code == 401
    # The password still works, and the key id cannot be revoked twice.
    assert Client.for_registry(first.url, account.basic).request("GET", "/v2/").status_code == 200
    admin.call("DELETE", f"/users/{account.username}/api-keys/{account.api_key_id}", 404)


def test_a_changed_password_ends_the_old_one_and_its_tokens(
    registry_a: Registry, admin: Admin, space: str
) -> None:
    account = _member(admin, space, "reader")
    old_token = token(registry_a.url, account.basic, f"repository:{space}/app:pull")
    own = Admin(registry_a.url, account.basic)
    own.call("PATCH", f"/users/{account.username}", 200, json={"password": "a-new-password"})
    assert (
        Client.for_registry(registry_a.url, account.basic).request("GET", "/v2/").status_code == 401
    )
    assert bearer_client(registry_a.url, old_token).request("GET", "/v2/").status_code == 401
    renewed = Client.for_registry(registry_a.url, (account.username, "a-new-password"))
    assert renewed.request("GET", "/v2/").status_code == 200
    # The API key was not tied to the password.
    assert (
        Client.for_registry(registry_a.url, account.key_basic).request("GET", "/v2/").status_code
        == 200
    )


def test_a_deleted_user_has_no_access_left(registry_a: Registry, admin: Admin, space: str) -> None:
    account = _member(admin, space, "admin")
    held = token(registry_a.url, account.basic, f"repository:{space}/app:pull")
    admin.call("DELETE", f"/users/{account.username}", 204)
    for client in (
        Client.for_registry(registry_a.url, account.basic),
        Client.for_registry(registry_a.url, account.key_basic),
        bearer_client(registry_a.url, held),
    ):
        assert client.request("GET", f"/v2/{space}/app/tags/list").status_code == 401
    # Recreating the name does not bring the old memberships back.
    admin.call("POST", "/users", 201, json={"username": account.username, "password": PASSWORD})
    again = Client.for_registry(registry_a.url, account.basic)
    assert again.request("GET", f"/v2/{space}/app/tags/list").status_code == 403


def test_a_key_belongs_to_its_user(registry_a: Registry, admin: Admin) -> None:
    """Another user's name with a valid key is refused."""
    alice, bob = admin.user("alice"), admin.user("bob")
    stolen = Client.for_registry(registry_a.url, (bob.username, alice.api_key))
    assert stolen.request("GET", "/v2/").status_code == 401


def test_service_accounts_have_roles_in_every_space(
    registry_a: Registry, admin: Admin, space: str
) -> None:
    """The builder's account (with the key its settings name) may push anywhere but not
    delete; the reaper's is an admin everywhere. Neither gets another key or a password,
    and neither can be deleted."""
    builder = Client.for_registry(registry_a.url, ("spacedock-builder", BUILDER_KEY))
    digest, _ = builder.push_image(f"{space}/built", "1.0-deployments-1", [b"layer"])
    refused = builder.request("DELETE", f"/v2/{space}/built/manifests/{digest}")
    assert (refused.status_code, error_codes(refused)) == (403, ["DENIED"])
    reaper = admin.call("GET", "/users/spacedock-reaper", 200).json()
    assert reaper["global_role"] == "admin"
    for name in ("spacedock-builder", "spacedock-reaper"):
        admin.call("POST", f"/users/{name}/api-keys", 409, json={"name": "test"})
        assert (
            Client.for_registry(registry_a.url, (name, "")).request("GET", "/v2/").status_code
            == 401
        )
        admin.call("DELETE", f"/users/{name}", 409)


def test_users_api_rules(registry_a: Registry, admin: Admin, space: str) -> None:
    """Only superusers manage accounts; everyone sees and manages their own."""
    carol = _member(admin, space, "admin")
    dave = admin.user("dave")
    as_carol = Admin(registry_a.url, carol.basic)
    as_carol.call("GET", "/users", 403)
    as_carol.call("POST", "/users", 403, json={"username": "eve-x", "password": PASSWORD})
    as_carol.call("GET", f"/users/{dave.username}", 404)
    as_carol.call("POST", f"/users/{dave.username}/api-keys", 404, json={})
    me = as_carol.call("GET", f"/users/{carol.username}", 200).json()
    assert me["memberships"] == [{"space": space, "role": "admin"}]
    assert me["superuser"] is False
    keys = as_carol.call("GET", f"/users/{carol.username}/api-keys", 200).json()["api_keys"]
    assert [k["id"] for k in keys] == [carol.api_key_id] and "key" not in keys[0]
    assert "hash" not in keys[0]
    # A space admin manages members of that space only.
    as_carol.call("PUT", f"/spaces/{space}/members/{dave.username}", 201, json={"role": "reader"})
    as_carol.call("PUT", f"/spaces/{space}/members/{dave.username}", 200, json={"role": "writer"})
    as_carol.call("PUT", f"/spaces/{space}/members/{dave.username}", 422, json={"role": "owner"})
    as_carol.call(
        "PUT",
        f"/spaces/{space}/members/nobody-{uuid.uuid4().hex[:6]}",
        404,
        json={"role": "reader"},
    )
    as_carol.call("PUT", f"/spaces/spaces-1/members/{dave.username}", 404, json={"role": "reader"})
    as_carol.call("DELETE", f"/spaces/{space}/members/{dave.username}", 204)
    as_carol.call("DELETE", f"/spaces/{space}/members/{dave.username}", 404)
    as_carol.call("POST", "/spaces", 403, json={"name": "mine"})
    as_carol.call("DELETE", f"/spaces/{space}", 403)


def test_user_input_is_validated(admin: Admin, registry_a: Registry) -> None:
    for body in (
        {"username": "Upper", "password": PASSWORD},
        {"username": "-dash", "password": PASSWORD},
        {"username": "ok-name", "password": "short"},
        {"username": "ok-name", "password": 12345678},
        {"username": "ok-name", "password": PASSWORD, "superuser": "yes"},
        {"username": "ok-name", "password": PASSWORD, "extra": 1},
    ):
        admin.call("POST", "/users", 422, json=body)
    admin.call("POST", "/users", 409, json={"username": "admin", "password": PASSWORD})
    admin.call("DELETE", "/users/admin", 409)  # not your own account
    admin.call("POST", "/users/admin/api-keys", 422, json={"name": "x" * 101})
    admin.call(
        "POST", "/users", 400, data=b"{not json", headers={"Content-Type": "application/json"}
    )


def test_no_secret_reaches_the_log(pair: tuple[Registry, Registry], admin: Admin) -> None:
    """Passwords, keys and tokens used above never appear in either instance's log."""
    account = admin.user("logcheck")
    issued = token(pair[0].url, account.key_basic, "repository:spaces-1/x:pull")
    bearer_client(pair[0].url, issued).request("GET", "/v2/")
    Client.for_registry(pair[1].url, account.key_basic).request("GET", "/v2/")
    secrets = (
        account.api_key,
        account.api_key.split(".", 1)[1],
        issued.split(".")[2],
        PASSWORD,
        pair[0].password,
    )
    for registry in pair:
        time.sleep(0.2)
        log = registry.service.log_path.read_text()
        assert "/auth/token" in log or registry is pair[1]
        for secret in secrets:
            assert secret not in log


def test_credentials_change_only_with_the_password(
    registry_a: Registry, admin: Admin, space: str
) -> None:
    """A token or an API key, even a superuser's, cannot mint keys, change a password or
    manage accounts: a leaked one cannot take the account over."""
    erin = _member(admin, space, "writer")
    token_client = bearer_client(
        registry_a.url, token(registry_a.url, erin.basic, f"repository:{space}/app:pull")
    )
    key_client = Client.for_registry(registry_a.url, erin.key_basic)
    for client in (token_client, key_client):
        for method, path, body in (
            ("POST", f"/api/v1/users/{erin.username}/api-keys", {}),
            ("PATCH", f"/api/v1/users/{erin.username}", {"password": "taken-over-now"}),
            ("DELETE", f"/api/v1/users/{erin.username}/api-keys/{erin.api_key_id}", None),
        ):
            response = client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
        # Reading one's own account needs no password, but a token was not granted it.
        own = client.request("GET", f"/api/v1/users/{erin.username}").status_code
        assert own == (403 if client is token_client else 200)
    assert Client.for_registry(registry_a.url, erin.basic).request("GET", "/v2/").status_code == 200
    admin_token = token(registry_a.url, registry_a.auth)
    refused = bearer_client(registry_a.url, admin_token).request(
        "POST", "/api/v1/users", json={"username": "via-token", "password": PASSWORD}
    )
    assert refused.status_code == 403
    # Service accounts have no password to set.
    admin.call("PATCH", "/users/spacedock-reaper", 409, json={"password": "not-allowed-here"})


def test_a_recreated_user_or_space_inherits_nothing(registry_a: Registry, admin: Admin) -> None:
    """Tokens of a deleted user do not fit a new user of the same name, and a space created
    again under a deleted one's id starts without members."""
    space = admin.space("again")
    frank = _member(admin, space, "reader")
    old_token = token(registry_a.url, frank.basic, f"repository:{space}/app:pull")
    admin.call("DELETE", f"/users/{frank.username}", 204)
    admin.call("POST", "/users", 201, json={"username": frank.username, "password": PASSWORD})
    admin.grant(space, frank, "reader")
    assert bearer_client(registry_a.url, old_token).request("GET", "/v2/").status_code == 401

    admin.call("DELETE", f"/spaces/{space}", 204)
    admin.call("POST", "/spaces", 201, json={"id": space, "name": "again"})
    as_frank = Admin(registry_a.url, frank.basic)
    as_frank.call("GET", f"/spaces/{space}", 404)
    assert admin.call("GET", f"/spaces/{space}/members", 200).json()["members"] == []


def test_hostile_input_is_a_4xx_and_never_logged(registry_a: Registry) -> None:
    """Malformed credentials, forms and JSON are client errors, and the password they carry
    reaches no log line (tracebacks carry no local variables)."""
    url, secret = registry_a.url, "hostile-secret-value"
    responses = [
        requests.post(
            f"{url}/auth/token",
            data=f"grant_type=password&username=admin&password={secret}&scope=\xff".encode(
                "latin-1"
            ),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=10,
        ),
        requests.post(
            f"{url}/auth/token",
            data=b"x",
            headers={"Content-Type": "multipart/form-data"},
            timeout=10,
        ),
        requests.post(
            f"{url}/auth/token",
            data=f"password={secret}",
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=bogus"},
            timeout=10,
        ),
        requests.get(f"{url}/v2/", headers={"Authorization": "Basic \xe9"}, timeout=10),
        requests.post(
            f"{url}/api/v1/users",
            data=b'{"username": "surrogate", "password": "' + secret.encode() + b'\\ud800"}',
            headers={"Content-Type": "application/json"},
            auth=registry_a.auth,
            timeout=10,
        ),
        requests.get(
            f"{url}/v2/_catalog", params={"n": "\u00b2"}, auth=registry_a.auth, timeout=10
        ),
        requests.get(
            f"{url}/api/v1/spaces/spaces-1/repositories",
            params={"limit": "\u00b2"},
            auth=registry_a.auth,
            timeout=10,
        ),
    ]
    for response in responses:
        assert 400 <= response.status_code < 500, (response.request.url, response.text)
    time.sleep(0.3)
    assert secret not in registry_a.service.log_path.read_text()


def test_service_keys_and_the_built_in_superuser_cannot_be_removed(
    admin: Admin, registry_a: Registry
) -> None:
    """A superuser revoking the builder's key would stop builds until a restart; deleting
    admin would leave the registry without its own superuser: both are 409."""
    response = requests.post(
        f"{registry_a.url}/api/v1/users",
        json={"username": f"su-{uuid.uuid4().hex[:6]}", "password": PASSWORD, "superuser": True},
        auth=registry_a.auth,
        timeout=10,
    )
    assert response.status_code == 201, response.text
    second = Admin(registry_a.url, (response.json()["username"], PASSWORD))
    for service in ("spacedock-builder", "spacedock-reaper"):
        keys = second.call("GET", f"/users/{service}/api-keys", 200).json()["api_keys"]
        for key_id in [key["id"] for key in keys] or ["0123456789abcdef"]:
            refused = second.call("DELETE", f"/users/{service}/api-keys/{key_id}")
            assert refused.status_code == 409, refused.text
            assert "service account" in refused.json()["error"]["message"]
        assert second.call("GET", f"/users/{service}/api-keys", 200).json()["api_keys"] == keys
    refused = second.call("DELETE", "/users/admin")
    assert refused.status_code == 409, refused.text
    assert admin.call("GET", "/users/admin").status_code == 200


def test_a_token_on_the_management_api_holds_only_what_it_was_granted(
    registry_a: Registry, admin: Admin, space: str
) -> None:
    """A token with no scopes (or only a repository's) cannot start a build or pin a tag,
    though the role could; one granted the space's scopes can, and only as far as the role
    goes: a writer is never granted space:<id>:manage."""
    writer = _member(admin, space, "writer")
    api = f"{registry_a.url}/api/v1/spaces/{space}"
    build = {"sdi": {"id": "nothing", "version": "1.0.0"}, "deployment": {"id": "deployments-1"}}
    bare = bearer_client(registry_a.url, token(registry_a.url, writer.basic))
    repo_only = bearer_client(
        registry_a.url, token(registry_a.url, writer.basic, f"repository:{space}/app:pull,push")
    )
    for client in (bare, repo_only):
        for method, url, body in (
            ("POST", f"{api}/builds", build),
            ("PUT", f"{api}/repositories/app/tags/1.0/pin", None),
            ("GET", api, None),
            ("GET", f"{registry_a.url}/api/v1/spaces", None),
        ):
            response = client.request(method, url, json=body)
            assert response.status_code == 403, (method, url, response.text)
            assert "does not grant" in response.json()["error"]["message"]
    access = token(registry_a.url, writer.basic, f"space:{space}:read,write,manage")
    assert granted(access) == [{"type": "space", "name": space, "actions": ["read", "write"]}]
    scoped = bearer_client(registry_a.url, access)
    assert scoped.request("GET", api).status_code == 200
    started = scoped.request("POST", f"{api}/builds", json=build)
    assert started.status_code in (202, 503), started.text  # accepted (no builder here)
    refused = scoped.request("GET", f"{api}/members")
    assert refused.status_code == 403 and "role" in refused.json()["error"]["message"]
    write_only = bearer_client(
        registry_a.url, token(registry_a.url, writer.basic, f"space:{space}:write")
    )
    assert write_only.request("GET", api).status_code == 200  # write covers read
    listing = bearer_client(
        registry_a.url, token(registry_a.url, writer.basic, "registry:catalog:*")
    ).request("GET", f"{registry_a.url}/api/v1/spaces")
    assert listing.status_code == 200
    assert [s["id"] for s in listing.json()["spaces"]] == [space]
