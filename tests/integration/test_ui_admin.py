"""The web UI's retention and administration forms over HTTP, against a real registry: each
change needs the session's CSRF token, roles are those of the management API, the policy is
judged as the API judges it, and a new API key is shown once."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.support.accounts import PASSWORD, Account, Admin
from tests.support.oci import Client
from tests.support.processes import Registry, Service, start_registry
from tests.support.ui_http import SignedIn, form_token, sign_in

NEW_KEY = re.compile(r'<pre class="command new-key-text">([^<]+)</pre>')
FORM_NONCE = re.compile(r'name="form_nonce" value="([^"]+)"')


def form_nonce(html: str) -> str:
    match = FORM_NONCE.search(html)
    assert match is not None, html
    return match.group(1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mongo_server: Service) -> Iterator[Registry]:
    process = start_registry(
        tmp_path_factory.mktemp("ui-admin"),
        f"mongodb://127.0.0.1:{mongo_server.port}/ui_admin_{uuid.uuid4().hex[:8]}",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(registry: Registry) -> Admin:
    return Admin(registry.url, registry.auth)


@pytest.fixture
def space(admin: Admin) -> str:
    return admin.space("harbour")


@pytest.fixture
def superuser(registry: Registry) -> SignedIn:
    return sign_in(registry, registry.auth)


def member(admin: Admin, space: str, role: str) -> Account:
    account = admin.user(role)
    admin.grant(space, account, role)
    return account


def policy_of(admin: Admin, space: str) -> dict[str, object]:
    return dict(admin.call("GET", f"/spaces/{space}/retention", 200).json())


def policy_form(**changes: str) -> dict[str, str]:
    form = {
        "pattern": r"^.+-deployments-\d+$",
        "keep_last": "10",
        "retain_days": "30",
        "untagged_retain_hours": "24",
        "gc_grace_minutes": "60",
    }
    return {**form, **changes}


def user_exists(admin: Admin, username: str) -> bool:
    return admin.call("GET", f"/users/{username}").status_code == 200


def key_ids(admin: Admin, username: str) -> list[str]:
    keys = admin.call("GET", f"/users/{username}/api-keys", 200).json()["api_keys"]
    return [key["id"] for key in keys]


def test_every_new_form_refuses_a_post_without_the_token(
    registry: Registry, admin: Admin, space: str, superuser: SignedIn
) -> None:
    account = member(admin, space, "reader")
    before = policy_of(admin, space)
    keys_before = key_ids(admin, account.username)
    forms = {
        f"/spaces/{space}/retention": policy_form(keep_last="1"),
        f"/spaces/{space}/retention/dry-run": {},
        f"/spaces/{space}/retention/run": {},
        "/users": {"username": "never-made", "password": PASSWORD},
        f"/users/{account.username}/delete": {},
        f"/users/{account.username}/api-keys": {"name": "smuggled"},
        f"/users/{account.username}/api-keys/revoke": {"key_id": account.api_key_id},
        f"/spaces/{space}/members": {"username": account.username, "role": "admin"},
        f"/spaces/{space}/members/remove": {"username": account.username},
    }
    for path, form in forms.items():
        for token in ({}, {"csrf_token": "not-the-token"}):
            refused = superuser.post(path, {**form, **token})
            assert refused.status_code == 403, path
            assert refused.headers["Content-Type"].startswith("text/html"), path
    assert policy_of(admin, space) == before
    assert not user_exists(admin, "never-made")
    assert user_exists(admin, account.username)
    assert key_ids(admin, account.username) == keys_before
    members = admin.call("GET", f"/spaces/{space}/members", 200).json()["members"]
    assert {"username": account.username, "role": "reader"} in members


def test_a_reader_sees_the_policy_but_cannot_change_try_or_run_it(
    registry: Registry, admin: Admin, space: str
) -> None:
    reader = sign_in(registry, member(admin, space, "reader").basic)
    shown = reader.get(f"/spaces/{space}/retention")
    assert shown.status_code == 200
    assert r"<code>^.+-deployments-\d+$</code>" in shown.text
    assert "Dry run" not in shown.text and '<form method="post" action="/spaces' not in shown.text
    token = reader.csrf_token(f"/spaces/{space}/retention")
    for path, form in (
        (f"/spaces/{space}/retention", policy_form(keep_last="1")),
        (f"/spaces/{space}/retention/dry-run", {}),
        (f"/spaces/{space}/retention/run", {}),
    ):
        assert reader.post(path, {**form, "csrf_token": token}).status_code == 403, path
    assert policy_of(admin, space)["deployment_tags"]["keep_last"] == 10  # type: ignore[index]


def test_a_stranger_finds_no_retention_or_members_page(
    registry: Registry, admin: Admin, space: str
) -> None:
    elsewhere = admin.space("elsewhere")
    stranger = sign_in(registry, member(admin, elsewhere, "admin").basic)
    for path in (f"/spaces/{space}/retention", f"/spaces/{space}/members"):
        assert stranger.get(path).status_code == 404
    token = stranger.csrf_token()
    refused = stranger.post(f"/spaces/{space}/retention/dry-run", {"csrf_token": token})
    assert refused.status_code == 404


def test_an_invalid_policy_gets_the_apis_message_and_changes_nothing(
    registry: Registry, admin: Admin, space: str, superuser: SignedIn
) -> None:
    before = policy_of(admin, space)
    token = superuser.csrf_token()
    for field, value, api_value in (
        ("keep_last", "-1", -1),
        ("retain_days", "soon", "soon"),
        ("pattern", "([unclosed", "([unclosed"),
    ):
        section = "pattern" if field == "pattern" else field
        api = admin.call(
            "PUT",
            f"/spaces/{space}/retention",
            422,
            json={"deployment_tags": {section: api_value}},
        )
        message = api.json()["error"]["message"]
        page = superuser.post(
            f"/spaces/{space}/retention", {**policy_form(**{field: value}), "csrf_token": token}
        )
        assert page.status_code == 422, field
        assert page.headers["Content-Type"].startswith("text/html")
        assert message.replace("'", "&#39;") in page.text, (field, message)
        assert f'value="{value}"' in page.text  # what was typed is kept
    assert policy_of(admin, space) == before


def test_a_valid_policy_is_saved_then_a_run_removes_what_the_dry_run_listed(
    registry: Registry, admin: Admin, space: str, superuser: SignedIn
) -> None:
    client = Client.for_registry(registry.url, registry.auth)
    for build in range(1, 4):
        client.push_image(
            f"{space}/ferry", f"2.0.{build}-deployments-{build}", [f"{build}".encode()]
        )
    token = superuser.csrf_token()
    form = policy_form(keep_last="1", retain_days="0", untagged_retain_hours="0")
    saved = superuser.post(f"/spaces/{space}/retention", {**form, "csrf_token": token})
    assert saved.status_code == 303 and saved.headers["Location"] == f"/spaces/{space}/retention"
    tags = policy_of(admin, space)["deployment_tags"]
    assert tags == {"pattern": form["pattern"], "retain_days": 0, "keep_last": 1}

    dry = superuser.post(f"/spaces/{space}/retention/dry-run", {"csrf_token": token})
    assert dry.status_code == 200
    listed = re.findall(r'<tr class="going-tag" data-tag="([^"]+)">', dry.text)
    assert listed == ["2.0.1-deployments-1", "2.0.2-deployments-2"]
    assert len(re.findall(r'<tr class="going-manifest">', dry.text)) == 2
    freed = re.search(r"\((\d+) bytes\)</span> freed", dry.text)
    assert freed is not None and int(freed.group(1)) > 0
    kept = client.request("GET", f"/v2/{space}/ferry/manifests/2.0.1-deployments-1")
    assert kept.status_code == 200  # a dry run removed nothing

    ran = superuser.post(f"/spaces/{space}/retention/run", {"csrf_token": token})
    assert ran.status_code == 303
    assert ran.headers["Location"].startswith(
        f"/spaces/{space}/retention?tags_removed=2&manifests_removed=2&bytes_freed="
    )
    summary = superuser.get(ran.headers["Location"])
    assert "The run removed 2 tags and 2 manifests" in summary.text
    listing = client.request("GET", f"/v2/{space}/ferry/tags/list")
    assert listing.json()["tags"] == ["2.0.3-deployments-3"]


def test_users_are_for_superusers_as_in_the_api(
    registry: Registry, admin: Admin, space: str
) -> None:
    space_admin = member(admin, space, "admin")
    browser = sign_in(registry, space_admin.basic)
    api = requests.get(f"{registry.url}/api/v1/users", auth=space_admin.basic, timeout=30)
    assert browser.get("/users").status_code == api.status_code == 403
    assert browser.get("/users/admin").status_code == 404  # another account: not found
    own = browser.get(f"/users/{space_admin.username}")
    assert own.status_code == 200 and space_admin.api_key_id in own.text
    token = browser.csrf_token()
    made = browser.post(
        "/users", {"username": "by-a-space-admin", "password": PASSWORD, "csrf_token": token}
    )
    assert made.status_code == 403
    assert not user_exists(admin, "by-a-space-admin")


def test_a_superuser_creates_and_deletes_a_user(
    registry: Registry, admin: Admin, superuser: SignedIn
) -> None:
    token = superuser.csrf_token()
    username = f"deckhand-{uuid.uuid4().hex[:6]}"
    made = superuser.post(
        "/users", {"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert made.status_code == 303 and made.headers["Location"] == f"/users/{username}"
    assert requests.get(f"{registry.url}/v2/", auth=(username, PASSWORD), timeout=30).ok
    again = superuser.post(
        "/users", {"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert again.status_code == 409 and "already exists" in again.text
    short = superuser.post(
        "/users", {"username": "x-short", "password": "short", "csrf_token": token}
    )
    assert short.status_code == 422 and "password must be" in short.text
    bad = superuser.post(
        "/users", {"username": "Not Valid", "password": PASSWORD, "csrf_token": token}
    )
    assert bad.status_code == 422 and not user_exists(admin, "x-short")
    assert superuser.post(f"/users/{username}/delete", {"csrf_token": token}).status_code == 303
    assert not user_exists(admin, username)
    itself = superuser.post(f"/users/{registry.username}/delete", {"csrf_token": token})
    assert itself.status_code == 409 and user_exists(admin, registry.username)


def test_a_new_key_is_shown_once_and_works(registry: Registry, admin: Admin) -> None:
    """The key is in the answer to the form and nowhere else; the same form sent again (a
    reload repeats the POST) makes no second key and shows none."""
    account = admin.user("keys", with_key=False)
    browser = sign_in(registry, account.basic)
    page = browser.get(f"/users/{account.username}").text
    form = {"name": "ci", "csrf_token": form_token(page), "form_nonce": form_nonce(page)}
    made = browser.post(f"/users/{account.username}/api-keys", form)
    assert made.status_code == 201
    assert made.headers["Cache-Control"] == "no-store"
    shown = NEW_KEY.search(made.text)
    assert shown is not None
    key = shown.group(1)
    works = requests.get(
        f"{registry.url}/api/v1/users/{account.username}", auth=(account.username, key), timeout=30
    )
    assert works.status_code == 200
    again = browser.post(f"/users/{account.username}/api-keys", form)
    assert again.status_code == 409 and "sent already" in again.text
    assert NEW_KEY.search(again.text) is None and key not in again.text
    (key_id,) = key_ids(admin, account.username)
    later = browser.get(f"/users/{account.username}").text
    assert key not in later and NEW_KEY.search(later) is None
    revoked = browser.post(
        f"/users/{account.username}/api-keys/revoke",
        {"key_id": key_id, "csrf_token": form_token(later)},
    )
    assert revoked.status_code == 303 and key_ids(admin, account.username) == []


def test_two_forms_open_at_once_each_make_and_show_their_own_key(
    registry: Registry, admin: Admin
) -> None:
    account = admin.user("tabs", with_key=False)
    browser = sign_in(registry, account.basic)
    tabs = [browser.get(f"/users/{account.username}").text for _ in range(2)]
    shown = []
    for n, page in enumerate(tabs):
        form = {"name": f"tab {n}", "csrf_token": form_token(page), "form_nonce": form_nonce(page)}
        made = browser.post(f"/users/{account.username}/api-keys", form)
        assert made.status_code == 201
        found = NEW_KEY.search(made.text)
        assert found is not None
        shown.append(found.group(1))
    assert shown[0] != shown[1] and len(key_ids(admin, account.username)) == 2


def test_a_service_account_gets_no_key_from_the_ui_or_the_api(
    registry: Registry, admin: Admin, superuser: SignedIn
) -> None:
    """Its one key is the one its service's settings name: another would act in every space
    and could never be revoked."""
    page = superuser.get("/users/spacedock-reaper")
    assert page.status_code == 200 and 'name="form_nonce"' not in page.text
    form = {"name": "x", "csrf_token": form_token(page.text), "form_nonce": "n-1"}
    refused = superuser.post("/users/spacedock-reaper/api-keys", form)
    assert refused.status_code == 409 and NEW_KEY.search(refused.text) is None
    admin.call("POST", "/users/spacedock-reaper/api-keys", 409, json={"name": "x"})
    assert key_ids(admin, "spacedock-reaper") == []


def test_a_session_opened_with_an_api_key_changes_no_credentials(
    registry: Registry, admin: Admin
) -> None:
    account = admin.user("keyed")
    browser = sign_in(registry, account.key_basic)
    own = browser.get(f"/users/{account.username}")
    assert own.status_code == 200
    assert 'class="hint needs-password"' in own.text
    assert f'action="/users/{account.username}/api-keys"' not in own.text
    token = browser.csrf_token()
    for path, form in (
        (f"/users/{account.username}/api-keys", {"name": "more"}),
        (f"/users/{account.username}/api-keys/revoke", {"key_id": account.api_key_id}),
    ):
        assert browser.post(path, {**form, "csrf_token": token}).status_code == 403, path
    assert key_ids(admin, account.username) == [account.api_key_id]

    super_key = admin.call("POST", f"/users/{registry.username}/api-keys", 201, json={}).json()
    superuser = sign_in(registry, (registry.username, super_key["key"]))
    listed = superuser.get("/users")
    assert listed.status_code == 200 and 'action="/users"' not in listed.text
    made = superuser.post(
        "/users",
        {"username": "by-a-key", "password": PASSWORD, "csrf_token": superuser.csrf_token()},
    )
    assert made.status_code == 403 and not user_exists(admin, "by-a-key")


def test_a_space_admin_manages_members(registry: Registry, admin: Admin, space: str) -> None:
    space_admin = sign_in(registry, member(admin, space, "admin").basic)
    newcomer = admin.user("newcomer", with_key=False)
    token = space_admin.csrf_token(f"/spaces/{space}/members")
    members_api = f"/spaces/{space}/members"
    added = space_admin.post(
        members_api, {"username": newcomer.username, "role": "reader", "csrf_token": token}
    )
    assert added.status_code == 303 and added.headers["Location"] == members_api
    assert {"username": newcomer.username, "role": "reader"} in admin.call(
        "GET", members_api, 200
    ).json()["members"]
    space_admin.post(
        members_api, {"username": newcomer.username, "role": "writer", "csrf_token": token}
    )
    assert {"username": newcomer.username, "role": "writer"} in admin.call(
        "GET", members_api, 200
    ).json()["members"]
    unknown = space_admin.post(
        members_api, {"username": "nobody-at-all", "role": "reader", "csrf_token": token}
    )
    assert unknown.status_code == 404 and "user nobody-at-all does not exist" in unknown.text
    no_role = space_admin.post(
        members_api, {"username": newcomer.username, "role": "captain", "csrf_token": token}
    )
    assert no_role.status_code == 422
    removed = space_admin.post(
        f"{members_api}/remove", {"username": newcomer.username, "csrf_token": token}
    )
    assert removed.status_code == 303
    names = [m["username"] for m in admin.call("GET", members_api, 200).json()["members"]]
    assert newcomer.username not in names


def test_a_writer_cannot_see_or_change_members(
    registry: Registry, admin: Admin, space: str
) -> None:
    writer_account = member(admin, space, "writer")
    writer = sign_in(registry, writer_account.basic)
    assert writer.get(f"/spaces/{space}/members").status_code == 403
    token = writer.csrf_token()
    promoted = writer.post(
        f"/spaces/{space}/members",
        {"username": writer_account.username, "role": "admin", "csrf_token": token},
    )
    assert promoted.status_code == 403
    members = admin.call("GET", f"/spaces/{space}/members", 200).json()["members"]
    assert {"username": writer_account.username, "role": "writer"} in members
