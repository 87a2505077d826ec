"""The retention and administration pages in a real browser (Chromium): a dry run listing
what would go, the policy form refusing what the API refuses, a reader without controls, and
an administrator creating a user, its API key (shown once) and its role in a space."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.support.accounts import PASSWORD, Account, Admin
from tests.support.oci import Client
from tests.support.processes import Registry

if TYPE_CHECKING:  # imported by pytest as the plugin below, not before it
    from tests.support.browser import BrowserPage

pytest_plugins = ("tests.support.browser",)

REPOSITORY = "services/tide"
# Pushed oldest first: with keep_last 1 and retain_days 0 the two older ones would go.
DEPLOYMENT_TAGS = ("4.0.1-deployments-11", "4.0.2-deployments-12", "4.0.3-deployments-13")
RELEASE_TAG = "4.0.3"


@dataclass
class Dock:
    """A space holding deployment tags of one image, with a reader."""

    space: str
    reader: Account
    admin: Admin

    @property
    def retention_page(self) -> str:
        return f"/spaces/{self.space}/retention"


@pytest.fixture(scope="module")
def dock(ui_registry: Registry) -> Dock:
    admin = Admin(ui_registry.url, ui_registry.auth)
    space = admin.space("dock")
    reader = admin.user("watcher")
    admin.grant(space, reader, "reader")
    client = Client.for_registry(ui_registry.url, ui_registry.auth)
    for build, tag in enumerate(DEPLOYMENT_TAGS):
        client.push_image(f"{space}/{REPOSITORY}", tag, [f"tide build {build}".encode()])
    client.push_image(f"{space}/{REPOSITORY}", RELEASE_TAG, [b"tide release"])
    return Dock(space, reader, admin)


def signed_in_at(browser: BrowserPage, path: str, account: tuple[str, str]) -> None:
    browser.goto(path)
    browser.page.get_by_label("Username").fill(account[0])
    browser.page.get_by_label("Password").fill(account[1])
    browser.page.get_by_role("button", name="Sign in").click()
    browser.page.wait_for_url(f"**{path}")


def policy(dock: Dock) -> dict[str, object]:
    return dict(dock.admin.call("GET", f"/spaces/{dock.space}/retention", 200).json())


def test_a_dry_run_lists_what_would_go(
    browser_page: BrowserPage, dock: Dock, ui_registry: Registry
) -> None:
    signed_in_at(browser_page, dock.retention_page, ui_registry.auth)
    page = browser_page.page
    page.get_by_label("Keep last").fill("1")
    page.get_by_label("Retain days").fill("0")
    page.get_by_role("button", name="Save policy").click()
    page.wait_for_url(f"**{dock.retention_page}")
    expect(page.get_by_label("Keep last")).to_have_value("1")
    assert policy(dock)["deployment_tags"] == {
        "pattern": r"^.+-deployments-\d+$",
        "retain_days": 0,
        "keep_last": 1,
    }

    page.get_by_role("button", name="Dry run").click()
    rows = page.locator("tr.going-tag")
    expect(rows).to_have_count(2)
    assert [rows.nth(i).get_attribute("data-tag") for i in range(2)] == list(DEPLOYMENT_TAGS[:2])
    expect(rows.first).to_contain_text(f"{dock.space}/{REPOSITORY}")
    expect(page.locator(".report .bytes")).to_have_text(
        re.compile(r"^\d+(\.\d)? \w?B \(\d+ bytes\)$")
    )
    client = Client.for_registry(ui_registry.url, ui_registry.auth)
    listed = client.request("GET", f"/v2/{dock.space}/{REPOSITORY}/tags/list").json()["tags"]
    assert set(DEPLOYMENT_TAGS) <= set(listed)  # a dry run removes nothing


def test_the_policy_form_refuses_what_the_api_refuses(
    browser_page: BrowserPage, dock: Dock, ui_registry: Registry
) -> None:
    before = policy(dock)
    refused = dock.admin.call(
        "PUT", f"/spaces/{dock.space}/retention", 422, json={"gc": {"grace_minutes": 1.5}}
    )
    signed_in_at(browser_page, dock.retention_page, ui_registry.auth)
    page = browser_page.page
    page.get_by_label("Garbage collection: grace minutes").fill("1.5")
    page.get_by_role("button", name="Save policy").click()
    expect(page.get_by_role("alert")).to_have_text(refused.json()["error"]["message"])
    expect(page.get_by_label("Garbage collection: grace minutes")).to_have_value("1.5")
    assert policy(dock) == before
    browser_page.goto(dock.retention_page)  # nothing was saved: the stored value is back
    expect(page.get_by_label("Garbage collection: grace minutes")).to_have_value(
        str(before["gc"]["grace_minutes"])  # type: ignore[index]
    )


def test_a_reader_sees_the_policy_without_controls(browser_page: BrowserPage, dock: Dock) -> None:
    signed_in_at(browser_page, dock.retention_page, dock.reader.basic)
    page = browser_page.page
    expect(page.locator("dl.policy")).to_contain_text(r"^.+-deployments-\d+$")
    expect(page.locator("main form")).to_have_count(0)
    expect(page.get_by_role("button", name="Dry run")).to_have_count(0)
    expect(page.get_by_role("button", name="Run")).to_have_count(0)
    expect(page.get_by_role("textbox")).to_have_count(0)


def test_an_admin_creates_a_user_a_key_shown_once_and_a_role(
    browser_page: BrowserPage, dock: Dock, ui_registry: Registry
) -> None:
    username = f"pilot-{uuid.uuid4().hex[:6]}"
    signed_in_at(browser_page, "/users", ui_registry.auth)
    page = browser_page.page
    page.get_by_label("New username").fill(username)
    page.get_by_label("New password").fill(PASSWORD)
    page.get_by_role("button", name="Create user").click()
    page.wait_for_url(f"**/users/{username}")
    expect(page.locator("h1")).to_have_text(username)

    page.get_by_label("Key name").fill("deploy pipeline")
    page.get_by_role("button", name="Create API key").click()
    shown = page.locator(".new-key-text")
    expect(shown).to_be_visible()
    key = shown.inner_text().strip()
    assert key and key not in page.url
    expect(page.locator("tr.api-key")).to_contain_text("deploy pipeline")
    with_key = Admin(ui_registry.url, (username, key)).call("GET", f"/users/{username}")
    assert with_key.status_code == 200  # the key shown is a working key of the new user

    page.reload()  # repeats the POST: no second key, and the first is not shown again
    expect(page.locator(".new-key-text")).to_have_count(0)
    expect(page.locator(".error")).to_contain_text("sent already")
    assert key not in page.content()
    keys = Admin(ui_registry.url, ui_registry.auth).call("GET", f"/users/{username}/api-keys")
    assert len(keys.json()["api_keys"]) == 1

    browser_page.goto(f"/spaces/{dock.space}/members")
    page.get_by_label("Member username").fill(username)
    page.get_by_label("Member role").select_option("reader")
    page.get_by_role("button", name="Add member").click()
    page.wait_for_url(f"**/spaces/{dock.space}/members")
    row = page.locator(f'tr.member[data-username="{username}"]')
    expect(row.get_by_label(f"Role of {username}")).to_have_value("reader")
    members = dock.admin.call("GET", f"/spaces/{dock.space}/members", 200).json()["members"]
    assert {"username": username, "role": "reader"} in members


def test_a_non_admin_is_refused_the_users_page_as_by_the_api(
    browser_page: BrowserPage, dock: Dock, ui_registry: Registry
) -> None:
    api = Admin(ui_registry.url, dock.reader.basic).call("GET", "/users")
    signed_in_at(browser_page, "/", dock.reader.basic)
    response = browser_page.page.goto(f"{ui_registry.url}/users")
    assert response is not None and response.status == api.status_code == 403
    expect(browser_page.page.locator("h1")).to_have_text("Not allowed")
    response = browser_page.page.goto(f"{ui_registry.url}/spaces/{dock.space}/members")
    assert response is not None and response.status == 403
