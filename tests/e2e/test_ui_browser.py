"""The web UI in a real browser (Chromium): signing in, reading a repository's versions and
an image, pinning, and the page's safety (escaping, CSRF, cookies, CSP, sign-out)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
import requests
from playwright.sync_api import Response, expect

from tests.support.accounts import Account, Admin
from tests.support.oci import OCI_EMPTY, OCI_MANIFEST, Client, canonical
from tests.support.processes import Registry

if TYPE_CHECKING:  # imported by pytest as the plugin below, not before it
    from tests.support.browser import BrowserPage

pytest_plugins = ("tests.support.browser",)

HOSTILE_LABEL = "<script>alert('label')</script>"
SBOM_TYPE = "application/vnd.example.sbom+json"
# Pushed in this order; the feed reads them as Octopus versions, newest first.
PACKAGE = "lamp-oil"
PUSHED_TAGS = ("1.2.0", "1.10.0", "1.9.3", "1.10.0-deployments-4")
OCTOPUS_ORDER = ["1.10.0", "1.10.0-deployments-4", "1.9.3", "1.2.0"]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Shelf:
    """A space holding one image, tagged several times, with a referrer, and a reader."""

    space: str
    repository: str  # without the space
    digest: str
    sbom_digest: str
    reader: Account
    admin: Admin

    @property
    def repository_page(self) -> str:
        return f"/spaces/{self.space}/repositories/{self.repository}"

    @property
    def manifest_page(self) -> str:
        return f"{self.repository_page}/manifests/{self.digest}"


@pytest.fixture(scope="module")
def shelf(ui_registry: Registry) -> Shelf:
    admin = Admin(ui_registry.url, ui_registry.auth)
    space = admin.space("ui")
    reader = admin.user("reader")
    admin.grant(space, reader, "reader")
    repository = "tools/lantern"
    full = f"{space}/{repository}"
    client = Client.for_registry(ui_registry.url, ui_registry.auth)
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Entrypoint": ["/bin/lantern"],
                "Cmd": ["--glow"],
                "Env": ["LANTERN_MODE=bright"],
                "Labels": {"org.example.note": HOSTILE_LABEL},
                "User": "lamplighter",
                "ExposedPorts": {"8080/tcp": {}},
            },
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    )
    digest = ""
    for tag in PUSHED_TAGS:
        digest, body = client.push_image(full, tag, [b"wick layer", b"oil layer"], config=config)
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}
    sbom_digest, _ = client.push_image(
        full,
        None,
        [b'{"packages":[]}'],
        config=b"{}",
        config_media_type=OCI_EMPTY,
        artifactType=SBOM_TYPE,
        subject=subject,
    )
    # A package is a repository under "packages/" (services.registry.packages).
    client.push_image(f"{space}/packages/{PACKAGE}", "3.1.0", [b"oil"])
    return Shelf(space, repository, digest, sbom_digest, reader, admin)


def sign_in(browser: BrowserPage, username: str, password: str) -> None:
    browser.page.get_by_label("Username").fill(username)
    browser.page.get_by_label("Password").fill(password)
    browser.page.get_by_role("button", name="Sign in").click()


def signed_in_at(browser: BrowserPage, path: str, account: tuple[str, str]) -> None:
    browser.goto(path)
    sign_in(browser, *account)
    browser.page.wait_for_url(f"**{path}")


def tags_on_page(browser: BrowserPage) -> list[str]:
    rows = browser.page.locator("tr.version")
    return [str(rows.nth(i).get_attribute("data-tag")) for i in range(rows.count())]


def test_sign_in_from_a_deep_link_lands_there(
    browser_page: BrowserPage, shelf: Shelf, ui_registry: Registry
) -> None:
    browser_page.goto(shelf.repository_page)
    assert browser_page.path.startswith("/sign-in?next=")
    sign_in(browser_page, *ui_registry.auth)
    browser_page.page.wait_for_url(f"**{shelf.repository_page}")
    expect(browser_page.page.locator("h1")).to_have_text(shelf.repository)


def test_wrong_password_shows_an_error_and_opens_no_session(
    browser_page: BrowserPage, ui_registry: Registry
) -> None:
    browser_page.goto("/")
    sign_in(browser_page, ui_registry.username, "not-the-password")
    expect(browser_page.page.get_by_role("alert")).to_have_text("Wrong username or password.")
    cookies = {c["name"] for c in browser_page.page.context.cookies()}
    assert "spacedock_session" not in cookies
    browser_page.goto("/")
    assert browser_page.path.startswith("/sign-in")


def test_an_api_key_signs_in_as_the_password(browser_page: BrowserPage, shelf: Shelf) -> None:
    signed_in_at(browser_page, "/", shelf.reader.key_basic)
    row = browser_page.page.locator("tr", has_text=shelf.space)
    expect(row.locator(".role")).to_have_text("reader")


def test_versions_are_listed_newest_first_in_octopus_order(
    browser_page: BrowserPage, shelf: Shelf, ui_registry: Registry
) -> None:
    signed_in_at(browser_page, f"/spaces/{shelf.space}", ui_registry.auth)
    package = browser_page.page.locator("tr", has_text=PACKAGE)
    expect(package.locator(".tag")).to_have_text("3.1.0")
    browser_page.page.get_by_label("Search").fill("lant")
    browser_page.page.get_by_role("button", name="Search").click()
    browser_page.page.wait_for_url("**?q=lant")
    listed = browser_page.page.locator("ul.repositories li")
    expect(listed).to_have_text([shelf.repository])  # not packages/lamp-oil
    browser_page.page.get_by_role("link", name=shelf.repository).click()
    browser_page.page.wait_for_url(f"**{shelf.repository_page}")
    assert tags_on_page(browser_page) == OCTOPUS_ORDER
    deployment = browser_page.page.locator('tr[data-tag="1.10.0-deployments-4"]')
    expect(deployment.locator(".badge.deployment")).to_be_visible()
    plain = browser_page.page.locator('tr[data-tag="1.9.3"]')
    expect(plain.locator(".badge.deployment")).to_have_count(0)
    expect(plain.locator("a.digest")).to_have_attribute("title", shelf.digest)


def test_an_image_shows_its_layers_config_and_referrers(
    browser_page: BrowserPage, shelf: Shelf, ui_registry: Registry
) -> None:
    signed_in_at(browser_page, shelf.repository_page, ui_registry.auth)
    browser_page.page.locator('tr[data-tag="1.2.0"] a.digest').click()
    browser_page.page.wait_for_url(f"**{shelf.manifest_page}")
    page = browser_page.page
    expect(page.locator("tr.layer")).to_have_count(2)
    expect(page.locator("tr.layer").first).to_contain_text("10 B")  # b"wick layer"
    expect(page.locator("dl.config")).to_contain_text("/bin/lantern")
    expect(page.locator("dl.config")).to_contain_text("lamplighter")
    expect(page.locator("dl.config")).to_contain_text("8080/tcp")
    expect(page.locator("ul.env")).to_contain_text("LANTERN_MODE=bright")
    expect(page.locator("h3.artifact-type")).to_have_text(SBOM_TYPE)
    expect(page.locator("ul.referrers")).to_contain_text(shelf.sbom_digest)
    host = ui_registry.host
    expect(page.locator("pre.command")).to_have_text(
        f"docker pull {host}/{shelf.space}/{shelf.repository}@{shelf.digest}"
    )


def test_a_script_label_renders_as_text(
    browser_page: BrowserPage, shelf: Shelf, ui_registry: Registry
) -> None:
    signed_in_at(browser_page, shelf.manifest_page, ui_registry.auth)
    label = browser_page.page.locator("table.labels td")
    expect(label).to_have_text(HOSTILE_LABEL)
    assert browser_page.page.locator("main script").count() == 0
    assert browser_page.dialogs == []


def test_pinning_a_tag_from_the_page(
    browser_page: BrowserPage, shelf: Shelf, ui_registry: Registry
) -> None:
    signed_in_at(browser_page, shelf.repository_page, ui_registry.auth)
    row = browser_page.page.locator('tr[data-tag="1.9.3"]')
    row.get_by_role("button", name="Pin").click()
    expect(row.locator(".badge.pinned")).to_have_text("pinned")
    expect(row.get_by_role("button", name="Unpin")).to_be_visible()
    pins = requests.put(
        f"{ui_registry.url}/api/v1/spaces/{shelf.space}/repositories/{shelf.repository}"
        "/tags/1.9.3/pin",
        auth=ui_registry.auth,
        timeout=30,
    )
    assert pins.status_code == 200  # already pinned: the API finds the page's pin

    row.get_by_role("button", name="Unpin").click()
    expect(row.locator(".pinned")).to_have_text("no")


def test_a_reader_sees_no_pin_controls(browser_page: BrowserPage, shelf: Shelf) -> None:
    signed_in_at(browser_page, shelf.repository_page, shelf.reader.basic)
    assert tags_on_page(browser_page) == OCTOPUS_ORDER
    expect(browser_page.page.get_by_role("button", name="Pin")).to_have_count(0)
    expect(browser_page.page.get_by_role("button", name="Unpin")).to_have_count(0)


def test_a_post_without_the_csrf_token_is_refused(
    browser_page: BrowserPage, shelf: Shelf, ui_registry: Registry
) -> None:
    signed_in_at(browser_page, shelf.repository_page, ui_registry.auth)
    refused = browser_page.page.request.post(
        f"{ui_registry.url}/spaces/{shelf.space}/pin",
        form={"repository": shelf.repository, "tag": "1.2.0"},
        max_redirects=0,
    )
    assert refused.status == 403
    browser_page.page.reload()
    row = browser_page.page.locator('tr[data-tag="1.2.0"]')
    expect(row.locator(".pinned")).to_have_text("no")
    pins = requests.delete(
        f"{ui_registry.url}/api/v1/spaces/{shelf.space}/repositories/{shelf.repository}"
        "/tags/1.2.0/pin",
        auth=ui_registry.auth,
        timeout=30,
    )
    assert pins.status_code == 404  # nothing was pinned


def test_the_session_cookie_is_http_only_and_strict(
    browser_page: BrowserPage, ui_registry: Registry
) -> None:
    signed_in_at(browser_page, "/", ui_registry.auth)
    (cookie,) = [c for c in browser_page.page.context.cookies() if c["name"] == "spacedock_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    assert cookie["secure"] is False  # the public URL is http here
    assert len(cookie["value"]) >= 43  # 256 random bits
    stored = browser_page.page.evaluate(
        "() => JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}])"
    )
    assert stored == '["",{},{}]'


def test_every_page_carries_the_content_security_policy(
    browser_page: BrowserPage, shelf: Shelf, ui_registry: Registry
) -> None:
    responses: list[Response] = []
    browser_page.page.on("response", lambda response: responses.append(response))
    signed_in_at(browser_page, "/", ui_registry.auth)
    for path in (f"/spaces/{shelf.space}", shelf.repository_page, shelf.manifest_page):
        browser_page.goto(path)
    seen = {re.sub(r"\?.*", "", r.url.removeprefix(ui_registry.url)): r for r in responses}
    pages = ("/sign-in", "/", f"/spaces/{shelf.space}", shelf.manifest_page)
    for path in (*pages, "/ui/static/ui.css"):
        headers = seen[path].headers
        assert headers["content-security-policy"] == CSP, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
    assert seen["/"].headers["cache-control"] == "no-store"


def test_an_unknown_space_is_an_html_404(browser_page: BrowserPage, ui_registry: Registry) -> None:
    signed_in_at(browser_page, "/", ui_registry.auth)
    response = browser_page.page.goto(f"{ui_registry.url}/spaces/no-such-space")
    assert response is not None and response.status == 404
    expect(browser_page.page.locator("h1")).to_have_text("Not found")


def test_sign_out_ends_the_session(browser_page: BrowserPage, ui_registry: Registry) -> None:
    signed_in_at(browser_page, "/", ui_registry.auth)
    context = browser_page.page.context
    (old,) = [c for c in context.cookies() if c["name"] == "spacedock_session"]
    browser_page.page.get_by_role("button", name="Sign out").click()
    browser_page.page.wait_for_url("**/sign-in")
    # A copy of the cookie, kept from before.
    context.add_cookies([{"name": old["name"], "value": old["value"], "url": ui_registry.url}])
    browser_page.goto("/")
    assert browser_page.path.startswith("/sign-in")
