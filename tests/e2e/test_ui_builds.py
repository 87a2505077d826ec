"""The builds pages in a real browser (Chromium): a build's page follows its log live until
the build succeeds, log text stays text, and cancelling is offered to writers only.

The stack is a registry and a builder on a RabbitMQ virtual host of their own. The builder is
stopped once its queue exists, so a build asked for waits, queued, until a test starts a
builder: the page is open before anything runs, and a build can be cancelled before it
starts."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from playwright.sync_api import expect

from services.builder.main import QUEUE
from tests.support.accounts import Account, Admin
from tests.support.amqp import fresh_vhost
from tests.support.builds import push_base_image, upload_package, zip_of
from tests.support.oci import Client
from tests.support.processes import Registry, Service, start_build_stack, start_builder

if TYPE_CHECKING:  # imported by pytest as the plugin below, not before it
    from tests.support.browser import BrowserPage

pytest_plugins = ("tests.support.browser",)

HOSTILE_PATTERN = "<script>alert('log')</script>"
SDI_VERSION = "3.0.1"
BUILD_SECONDS = 120_000  # in milliseconds, for Playwright: from a builder's start to the end
LOG_SCRIPT = "/ui/static/build-log.js"


@dataclass
class Stack:
    registry: Registry
    workdir: Path
    space: str
    sdi: str
    writer: Account
    reader: Account

    def start_build(self) -> str:
        """A build asked for through the API, as a pipeline would."""
        body = {
            "build_id": f"beacon-{uuid.uuid4().hex[:8]}",
            "sdi": {"id": self.sdi, "version": SDI_VERSION},
            "deployment": {"id": "deployments-12", "environment": "Harbour"},
        }
        created = requests.post(
            f"{self.registry.url}/api/v1/spaces/{self.space}/builds",
            json=body,
            auth=self.writer.basic,
            timeout=30,
        )
        assert created.status_code == 202, created.text
        return str(created.json()["build_id"])

    def status_of(self, build_id: str) -> str:
        answer = requests.get(
            f"{self.registry.url}/api/v1/spaces/{self.space}/builds/{build_id}",
            auth=self.registry.auth,
            timeout=30,
        )
        return str(answer.json()["status"])

    def page_of(self, build_id: str) -> str:
        return f"/spaces/{self.space}/builds/{build_id}"


def wait_for_consumer(amqp_url: str, within: float = 60) -> None:
    """Until a builder consumes its queue: the queue and its binding exist from then on, and
    requests sent while no builder runs wait there."""
    vhost = amqp_url.rsplit("/", 1)[1]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "consumers"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        if any(line.split() == [QUEUE, "1"] for line in listed.splitlines()):
            return
        time.sleep(0.3)
    raise AssertionError(f"no builder consumed {QUEUE} in {vhost}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, mongo_server: Service) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("ui-builds")
    with fresh_vhost() as amqp_url:
        registry, builder = start_build_stack(workdir, mongo_server.port, amqp_url)
        try:
            wait_for_consumer(amqp_url)
            builder.stop()
            yield _prepared(registry, workdir)
        finally:
            builder.stop()
            registry.stop()


def _prepared(registry: Registry, workdir: Path) -> Stack:
    """A space with a base image, an SDI whose build logs a line holding markup, and a
    writer and a reader in it."""
    admin = Admin(registry.url, registry.auth)
    space = admin.space("beacons")
    writer, reader = admin.user("keeper"), admin.user("watcher")
    admin.grant(space, writer, "writer")
    admin.grant(space, reader, "reader")
    push_base_image(Client.for_registry(registry.url, registry.auth), f"{space}/base", "1.0")
    sdi = f"beacon-sdi-{uuid.uuid4().hex[:6]}"
    files = {
        "Dockerfile": f"FROM {registry.host}/{space}/base:1.0\nCOPY signal.txt /\n",
        "signal.txt": "shining on #{Octopus.Environment.Name}",
        # A pattern matching nothing is named in the log: markup, as a tenant may write it.
        "sdi.yaml": f'features:\n  substitute_in_files: [signal.txt, "{HOSTILE_PATTERN}"]\n',
    }
    upload_package(registry, space, f"{sdi}.{SDI_VERSION}.zip", zip_of(files))
    return Stack(registry, workdir, space, sdi, writer, reader)


@pytest.fixture(scope="module")
def ui_registry(stack: Stack) -> Registry:
    """The browser's registry (``tests.support.browser``): the one with a builder."""
    return stack.registry


def signed_in_at(browser: BrowserPage, path: str, account: tuple[str, str]) -> None:
    browser.goto(path)
    browser.page.get_by_label("Username").fill(account[0])
    browser.page.get_by_label("Password").fill(account[1])
    browser.page.get_by_role("button", name="Sign in").click()
    browser.page.wait_for_url(f"**{path}")


def test_a_builds_page_follows_its_log_until_it_succeeds(
    browser_page: BrowserPage, stack: Stack
) -> None:
    build_id = stack.start_build()
    signed_in_at(browser_page, stack.page_of(build_id), stack.writer.basic)
    page = browser_page.page
    status = page.locator("#build-status")
    log_lines = page.locator("#build-log li")
    expect(status).to_have_text("queued")
    expect(log_lines).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    page.evaluate("() => { window.openedOnce = true; }")  # gone if the page reloads

    builder = start_builder(stack.workdir / f"builder-{build_id}", stack.registry)
    try:
        expect(status).to_have_text("succeeded", timeout=BUILD_SECONDS)
    finally:
        builder.stop()
    assert page.evaluate("() => window.openedOnce") is True
    expect(status).to_have_class("status status-succeeded")
    expect(log_lines.filter(has_text="pushed ")).to_have_count(1)
    expect(log_lines.filter(has_text="substituted variables in signal.txt")).to_have_count(1)
    markup = log_lines.filter(has_text="no files match")
    expect(markup).to_contain_text(f'no files match "{HOSTILE_PATTERN}"')
    assert page.locator(f"main script:not([src='{LOG_SCRIPT}'])").count() == 0
    assert browser_page.dialogs == []

    # What the end brought, without a reload: the pushed image, and nothing left to cancel.
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    pushed = page.locator("#build-reference a")
    expect(pushed).to_contain_text(
        f"{stack.space}/{stack.sdi}:{SDI_VERSION}-deployments-12@sha256:"
    )
    expect(page.locator("#build-finished")).not_to_have_text("not yet")
    expect(page.locator("#build-error")).to_have_text("")
    lines_followed = log_lines.count()
    pushed.click()
    page.wait_for_url("**/manifests/sha256:*")
    expect(page.locator("tr.layer")).to_have_count(2)  # the base's layer and signal.txt's

    # The same build's page, loaded once it has ended, shows the whole log and no script.
    browser_page.goto(stack.page_of(build_id))
    expect(page.locator("#build-log li")).to_have_count(lines_followed)
    assert page.locator("script").count() == 0


def test_a_writer_cancels_a_build_that_has_not_started(
    browser_page: BrowserPage, stack: Stack
) -> None:
    build_id = stack.start_build()
    signed_in_at(browser_page, stack.page_of(build_id), stack.writer.basic)
    page = browser_page.page
    expect(page.locator("#build-status")).to_have_text("queued")
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#build-status")).to_have_text("cancelled")
    assert browser_page.path == stack.page_of(build_id)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.locator("#build-error")).to_contain_text("cancelled before it started")
    assert stack.status_of(build_id) == "cancelled"


def test_a_reader_follows_a_build_but_sees_no_cancel(
    browser_page: BrowserPage, stack: Stack
) -> None:
    build_id = stack.start_build()
    signed_in_at(browser_page, stack.page_of(build_id), stack.reader.basic)
    page = browser_page.page
    expect(page.locator("#build-status")).to_have_text("queued")
    expect(page.locator("#build-log-note")).to_have_text("Following the log while the build runs.")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    # The page keeps asking while the build waits; a second answer changes nothing shown.
    with page.expect_response(lambda r: "/log?after=0" in r.url) as answered:
        pass
    assert answered.value.ok
    expect(page.locator("#build-status")).to_have_text("queued")


def test_the_listing_shows_builds_newest_first_and_filters(
    browser_page: BrowserPage, stack: Stack
) -> None:
    older, newer = stack.start_build(), stack.start_build()
    requests.delete(
        f"{stack.registry.url}/api/v1/spaces/{stack.space}/builds/{older}",
        auth=stack.writer.basic,
        timeout=30,
    ).raise_for_status()
    signed_in_at(browser_page, f"/spaces/{stack.space}", stack.reader.basic)
    page = browser_page.page
    page.locator("header").get_by_role("link", name="Builds").click()
    page.wait_for_url(f"**/spaces/{stack.space}/builds")
    ids = page.locator("tr.build").evaluate_all("rows => rows.map(row => row.dataset.buildId)")
    assert ids.index(newer) < ids.index(older)
    row = page.locator(f'tr[data-build-id="{newer}"]')
    expect(row.locator(".status")).to_have_text("queued")
    expect(row).to_contain_text(f"{stack.sdi} {SDI_VERSION}")
    expect(row).to_contain_text("deployments-12 (Harbour)")

    page.get_by_label("Status").select_option("cancelled")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/builds?status=cancelled")
    cancelled = page.locator("tr.build").evaluate_all("rows => rows.map(r => r.dataset.buildId)")
    assert older in cancelled and newer not in cancelled
    page.get_by_role("link", name=older).click()
    page.wait_for_url(f"**{stack.page_of(older)}")
    expect(page.locator("#build-status")).to_have_text("cancelled")
