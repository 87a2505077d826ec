"""The web UI's sessions and gate over HTTP, against a real registry and its database: what
is stored, when a session ends, where a sign-in may lead, which changes are refused, and
that the registry's other paths are left as they were."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pymongo import MongoClient

from services.registry.ui.repositories import VERSIONS_SHOWN
from services.registry.ui.sessions import SESSIONS_PER_ACCOUNT
from tests.support.accounts import Account, Admin
from tests.support.oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, Client, canonical
from tests.support.processes import BUILDER_KEY, Registry, Service, start_registry
from tests.support.ui_http import (
    SESSION_COOKIE,
    form_token,
    open_sign_in,
    sign_in,
    sign_in_response,
)

EVIL = "https://evil.example"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mongo_server: Service) -> Iterator[Registry]:
    process = start_registry(
        tmp_path_factory.mktemp("ui-sessions"),
        f"mongodb://127.0.0.1:{mongo_server.port}/ui_sessions_{uuid.uuid4().hex[:8]}",
        extra_env={"SPACEDOCK_BUILDER_KEY": BUILDER_KEY},
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(registry: Registry) -> Admin:
    return Admin(registry.url, registry.auth)


@pytest.fixture
def sessions(registry: Registry) -> Iterator[Any]:
    """The ``ui_sessions`` collection, read past the registry."""
    client: MongoClient[dict[str, Any]] = MongoClient(registry.env["SPACEDOCK_MONGO_URL"])
    yield client.get_default_database().ui_sessions
    client.close()


def signed_out(response: requests.Response) -> bool:
    return response.status_code == 303 and response.headers["Location"].startswith("/sign-in")


def member(admin: Admin, role: str) -> tuple[str, Account]:
    space = admin.space("ui")
    account = admin.user("ui")
    admin.grant(space, account, role)
    return space, account


def test_the_session_id_is_kept_only_as_its_hash(
    registry: Registry, admin: Admin, sessions: Any
) -> None:
    _, account = member(admin, "reader")
    browser = sign_in(registry, account.basic)
    cookie = browser.cookie
    assert len(cookie) >= 43  # 256 random bits, URL-safe base64
    stored = sessions.find_one({"_id": hashlib.sha256(cookie.encode()).hexdigest()})
    assert stored is not None and stored["username"] == account.username
    assert cookie not in repr(stored)
    assert account.password not in repr(stored)
    lifetime = stored["absolute_expiry"] - stored["created_at"]
    assert lifetime == dt.timedelta(hours=12)
    assert stored["expires_at"] - stored["last_seen"] == dt.timedelta(hours=1)


def test_an_expired_session_is_refused_and_cleared(
    registry: Registry, admin: Admin, sessions: Any
) -> None:
    _, account = member(admin, "reader")
    browser = sign_in(registry, account.basic)
    assert browser.get("/").status_code == 200
    id_hash = hashlib.sha256(browser.cookie.encode()).hexdigest()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    sessions.update_one({"_id": id_hash}, {"$set": {"expires_at": past}})
    assert signed_out(browser.get("/"))
    assert sessions.find_one({"_id": id_hash}) is None


def test_a_request_after_a_while_extends_the_idle_expiry(
    registry: Registry, admin: Admin, sessions: Any
) -> None:
    _, account = member(admin, "reader")
    browser = sign_in(registry, account.basic)
    id_hash = hashlib.sha256(browser.cookie.encode()).hexdigest()
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    sessions.update_one(
        {"_id": id_hash},
        {"$set": {"last_seen": earlier, "expires_at": earlier + dt.timedelta(hours=1)}},
    )
    assert browser.get("/").status_code == 200
    stored = sessions.find_one({"_id": id_hash})
    assert stored["last_seen"] > earlier.replace(tzinfo=None) + dt.timedelta(minutes=29)
    assert stored["expires_at"] - stored["last_seen"] == dt.timedelta(hours=1)


def test_a_deleted_user_is_signed_out_at_the_next_request(registry: Registry, admin: Admin) -> None:
    _, account = member(admin, "reader")
    browser = sign_in(registry, account.basic)
    assert browser.get("/").status_code == 200
    admin.call("DELETE", f"/users/{account.username}", 204)
    assert signed_out(browser.get("/"))


def test_a_changed_password_ends_the_session(registry: Registry, admin: Admin) -> None:
    _, account = member(admin, "reader")
    browser = sign_in(registry, account.basic)
    admin.call("PATCH", f"/users/{account.username}", 200, json={"password": "a-new-secret-1"})
    assert signed_out(browser.get("/"))


def test_a_revoked_api_key_ends_its_session(registry: Registry, admin: Admin) -> None:
    _, account = member(admin, "reader")
    browser = sign_in(registry, account.key_basic)
    assert browser.get("/").status_code == 200
    admin.call("DELETE", f"/users/{account.username}/api-keys/{account.api_key_id}", 204)
    assert signed_out(browser.get("/"))


def test_a_member_who_loses_the_role_loses_the_space(registry: Registry, admin: Admin) -> None:
    space, account = member(admin, "reader")
    browser = sign_in(registry, account.basic)
    assert browser.get(f"/spaces/{space}").status_code == 200
    admin.call("DELETE", f"/spaces/{space}/members/{account.username}", 204)
    gone = browser.get(f"/spaces/{space}")
    missing = browser.get("/spaces/no-such-space")
    assert gone.status_code == missing.status_code == 404
    assert gone.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "asked",
    [
        "//evil.example/path",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "spaces/relative",
    ],
)
def test_a_sign_in_never_leads_off_the_site(registry: Registry, asked: str) -> None:
    _, response = sign_in_response(registry.url, *registry.auth, next_path=asked)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_a_sign_in_leads_to_the_page_asked_for(registry: Registry, admin: Admin) -> None:
    space, account = member(admin, "reader")
    asked = f"/spaces/{space}?q=lamp"
    redirect = requests.get(f"{registry.url}{asked}", allow_redirects=False, timeout=30).headers[
        "Location"
    ]
    assert redirect == f"/sign-in?next=%2Fspaces%2F{space}%3Fq%3Dlamp"
    _, response = sign_in_response(registry.url, *account.basic, next_path=asked)
    assert response.headers["Location"] == asked


def test_a_wrong_password_opens_no_session(registry: Registry, admin: Admin) -> None:
    _, account = member(admin, "reader")
    http, response = sign_in_response(registry.url, account.username, "wrong-password")
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert SESSION_COOKIE not in http.cookies


def test_the_sign_in_form_needs_its_token(registry: Registry) -> None:
    http, _ = open_sign_in(registry.url)
    response = http.post(
        f"{registry.url}/sign-in",
        data={"username": registry.username, "password": registry.password},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in http.cookies


def test_a_build_credential_opens_no_session(registry: Registry, admin: Admin) -> None:
    space, _ = member(admin, "reader")
    minted = requests.post(
        f"{registry.url}/api/v1/spaces/{space}/build-credentials",
        json={"ttl_seconds": 60},
        auth=("spacedock-builder", BUILDER_KEY),
        timeout=30,
    )
    assert minted.status_code == 201, minted.text
    issued = minted.json()
    _, response = sign_in_response(registry.url, issued["username"], issued["password"])
    assert response.status_code == 401


def test_changes_from_another_origin_are_refused(registry: Registry, admin: Admin) -> None:
    space = admin.space("ui")
    client = Client.for_registry(registry.url, registry.auth)
    client.push_image(f"{space}/lamp", "1.0.0", [b"glass"])
    browser = sign_in(registry, registry.auth)
    form = {"repository": "lamp", "tag": "1.0.0", "csrf_token": browser.csrf_token()}
    assert browser.post(f"/spaces/{space}/pin", form, Origin=EVIL).status_code == 403
    assert browser.post(f"/spaces/{space}/pin", form, Origin="null").status_code == 403
    pin_api = f"/spaces/{space}/repositories/lamp/tags/1.0.0/pin"
    assert admin.call("DELETE", pin_api).status_code == 404  # nothing was pinned
    same_site = browser.post(f"/spaces/{space}/pin", form, Origin=registry.url)
    assert same_site.status_code == 303
    assert same_site.headers["Location"] == f"/spaces/{space}/repositories/lamp"
    assert admin.call("DELETE", pin_api).status_code == 204

    http, token = open_sign_in(registry.url)
    foreign_sign_in = http.post(
        f"{registry.url}/sign-in",
        data={"username": registry.username, "password": registry.password, "csrf_token": token},
        headers={"Origin": EVIL},
        allow_redirects=False,
        timeout=30,
    )
    assert foreign_sign_in.status_code == 403


def test_a_reader_cannot_pin_even_with_a_valid_form(registry: Registry, admin: Admin) -> None:
    space, account = member(admin, "reader")
    Client.for_registry(registry.url, registry.auth).push_image(f"{space}/lamp", "2.0.0", [b"x"])
    browser = sign_in(registry, account.basic)
    form = {"repository": "lamp", "tag": "2.0.0", "csrf_token": browser.csrf_token()}
    assert browser.post(f"/spaces/{space}/pin", form).status_code == 403
    assert (
        admin.call("DELETE", f"/spaces/{space}/repositories/lamp/tags/2.0.0/pin").status_code == 404
    )


def test_sign_out_needs_the_token_and_ends_the_session(registry: Registry) -> None:
    browser = sign_in(registry, registry.auth)
    assert browser.post("/sign-out", {}).status_code == 403
    assert browser.get("/").status_code == 200
    old_cookie = browser.cookie
    assert browser.post("/sign-out", {"csrf_token": browser.csrf_token()}).status_code == 303
    replay = requests.get(
        f"{registry.url}/", cookies={SESSION_COOKIE: old_cookie}, allow_redirects=False, timeout=30
    )
    assert signed_out(replay)


def test_credentials_stay_out_of_the_log(registry: Registry, admin: Admin) -> None:
    _, account = member(admin, "reader")
    sign_in(registry, account.basic)
    sign_in(registry, account.key_basic)
    log = Path(registry.service.log_path).read_text(errors="replace")
    assert "/sign-in" in log  # the requests were logged
    assert account.password not in log
    assert account.api_key not in log


def test_an_index_shows_its_platforms(registry: Registry, admin: Admin) -> None:
    space = admin.space("ui")
    client = Client.for_registry(registry.url, registry.auth)
    children = []
    for arch in ("amd64", "arm64"):
        config = canonical({"architecture": arch, "os": "linux"})
        digest, body = client.push_image(f"{space}/beacon", None, [arch.encode()], config=config)
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(body),
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    index = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children})
    assert client.put_manifest(f"{space}/beacon", "1.0.0", index, OCI_INDEX).status_code == 201
    index_digest = "sha256:" + hashlib.sha256(index).hexdigest()
    browser = sign_in(registry, registry.auth)
    page = browser.get(f"/spaces/{space}/repositories/beacon/manifests/{index_digest}")
    assert page.status_code == 200
    assert "linux/amd64" in page.text and "linux/arm64" in page.text
    for child in children:
        assert f'/spaces/{space}/repositories/beacon/manifests/{child["digest"]}"' in page.text
    unknown = browser.get(f"/spaces/{space}/repositories/beacon/manifests/sha256:{'0' * 64}")
    assert unknown.status_code == 404
    assert browser.get(f"/spaces/{space}/repositories/no/such/repository").status_code == 404


def test_the_registry_and_api_paths_are_left_alone(registry: Registry) -> None:
    v2 = requests.get(f"{registry.url}/v2/", timeout=30)
    assert v2.status_code == 401 and "errors" in v2.json()
    assert "Content-Security-Policy" not in v2.headers
    api = requests.get(f"{registry.url}/api/v1/spaces", timeout=30)
    assert api.status_code == 401 and "error" in api.json()
    assert requests.get(f"{registry.url}/healthz", timeout=30).status_code == 200
    static = requests.get(f"{registry.url}/ui/static/ui.css", timeout=30)
    assert static.status_code == 200 and static.headers["Content-Type"].startswith("text/css")
    for outside in ("/ui/static/%2e%2e/__init__.py", "/ui/static/..%2f__init__.py"):
        escape = requests.get(f"{registry.url}{outside}", allow_redirects=False, timeout=30)
        assert escape.status_code in (403, 404), outside
        assert "def setup" not in escape.text


def test_the_cookie_is_secure_behind_https(tmp_path: Path, mongo_server: Service) -> None:
    process = start_registry(
        tmp_path,
        f"mongodb://127.0.0.1:{mongo_server.port}/ui_https_{uuid.uuid4().hex[:8]}",
        extra_env={"SPACEDOCK_PUBLIC_URL": "https://registry.example.test"},
    )
    try:
        # The sign-in cookie is Secure too, so it is sent by hand over this plain connection.
        token = form_token(requests.get(f"{process.url}/sign-in", timeout=30).text)
        response = requests.post(
            f"{process.url}/sign-in",
            data={"username": process.username, "password": process.password, "csrf_token": token},
            headers={"Cookie": f"spacedock_sign_in={token}"},
            allow_redirects=False,
            timeout=30,
        )
        assert response.status_code == 303
        cookie = next(c for c in response.raw.headers.getlist("Set-Cookie") if SESSION_COOKIE in c)
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"secure", "httponly", "samesite"} <= attributes
        assert "SameSite=Strict" in cookie
    finally:
        process.stop()


def test_the_builders_key_opens_no_session(registry: Registry) -> None:
    """A service account's key works on the API; a browser session is for people."""
    http, response = sign_in_response(registry.url, "spacedock-builder", BUILDER_KEY)
    assert response.status_code == 401
    assert SESSION_COOKIE not in http.cookies


def test_an_account_keeps_only_its_newest_sessions(
    registry: Registry, admin: Admin, sessions: Any
) -> None:
    _, account = member(admin, "reader")
    first = sign_in(registry, account.basic)
    later = [sign_in(registry, account.basic) for _ in range(SESSIONS_PER_ACCOUNT)]
    assert sessions.count_documents({"username": account.username}) == SESSIONS_PER_ACCOUNT
    assert signed_out(first.get("/"))  # the oldest went
    assert all(s.get("/").status_code == 200 for s in later)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"\xff\xfe=\xff"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--",
        ),
    ],
)
def test_a_body_that_is_no_form_is_a_400(
    registry: Registry, admin: Admin, content_type: str, body: bytes
) -> None:
    headers = {"Content-Type": content_type}
    anonymous = requests.post(f"{registry.url}/sign-in", data=body, headers=headers, timeout=30)
    assert anonymous.status_code == 400
    space, account = member(admin, "writer")
    signed_in = sign_in(registry, account.basic)
    refused = signed_in.http.post(
        f"{registry.url}/spaces/{space}/pin", data=body, headers=headers, timeout=30
    )
    assert refused.status_code == 400
    assert "text/html" in refused.headers["Content-Type"]


def test_a_page_asked_for_in_another_script_is_reached_percent_encoded(registry: Registry) -> None:
    _, response = sign_in_response(registry.url, *registry.auth, next_path="/spaces/ünï")
    assert response.headers["Location"] == "/spaces/%C3%BCn%C3%AF"


def test_a_config_is_read_only_when_its_stored_size_is_the_one_declared(
    registry: Registry,
) -> None:
    """The manifest's word on its config's size is the pusher's: a config larger than it
    says is not read (it could be any size), one that matches is shown."""
    client = Client.for_registry(registry.url, registry.auth)
    repository = f"{Admin(registry.url, registry.auth).space('ui')}/teller"
    config = canonical(
        {"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/bin/teller"]}}
    )
    config_digest = client.push_blob(repository, config)
    layer = b"layer of the teller"
    layer_digest = client.push_blob(repository, layer)
    pages = {}
    for declared in (len(config), 10):
        manifest = canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": declared},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
            }
        )
        assert client.put_manifest(repository, f"v{declared}", manifest).status_code == 201
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        name = repository.split("/", 1)[1]
        space = repository.split("/", 1)[0]
        pages[declared] = sign_in(registry, registry.auth).get(
            f"/spaces/{space}/repositories/{name}/manifests/{digest}"
        )
    assert pages[len(config)].status_code == 200 and "/bin/teller" in pages[len(config)].text
    assert pages[10].status_code == 200 and "/bin/teller" not in pages[10].text


def test_a_long_repository_is_read_a_page_of_versions_at_a_time(registry: Registry) -> None:
    """Past the first page, "Older versions" goes on where it stopped, down to the oldest."""
    client = Client.for_registry(registry.url, registry.auth)
    space = Admin(registry.url, registry.auth).space("ui")
    _, body = client.push_image(f"{space}/ledger", "1.0.0", [b"ledger"])
    total = VERSIONS_SHOWN + 5
    for n in range(1, total):
        assert client.put_manifest(f"{space}/ledger", f"1.0.{n}", body).status_code == 201
    browser = sign_in(registry, registry.auth)
    first = browser.get(f"/spaces/{space}/repositories/ledger")
    tags = re.findall(r'<span class="tag">([^<]+)</span>', first.text)
    older = re.search(r'class="older" href="\?([^"]+)"', first.text)
    assert older is not None
    second = browser.get(f"/spaces/{space}/repositories/ledger?{html.unescape(older.group(1))}")
    tags += re.findall(r'<span class="tag">([^<]+)</span>', second.text)
    assert 'class="older"' not in second.text
    assert tags == [f"1.0.{n}" for n in range(total - 1, -1, -1)]
