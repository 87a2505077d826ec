"""A real browser for the web UI's tests: Debian's Chromium driven by Playwright.

A plugin (``pytest_plugins = ("tests.support.browser",)``): it gives ``ui_registry``, a
registry of its own, and ``browser_page``, a fresh browser context's page per test. Any
console error or uncaught page error fails the test, and a failing test leaves a screenshot
of its page under the session's temporary directory (the path is printed).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Error,
    Page,
    Playwright,
    Response,
    sync_playwright,
)

from tests.support.processes import Registry, Service, start_registry

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 15_000


@dataclass
class BrowserPage:
    """A page, what its console reported, and the dialogs it tried to open."""

    page: Page
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    # Pages the browser navigated to: their status is the test's to check, so Chromium's
    # console line for a 4xx page ("Failed to load resource") is not an error here.
    documents: set[str] = field(default_factory=set)

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.base_url}{path}")

    @property
    def path(self) -> str:
        return self.page.url.removeprefix(self.base_url)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Per module: Playwright's sync API holds an event loop in this thread while it runs,
    which the asyncio tests that follow in the same session must not find there."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package", pytrace=False)
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui-screenshots")


@pytest.fixture(scope="session")
def ui_registry(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[Registry]:
    """A registry on its own database, for the UI's tests."""
    process = start_registry(
        tmp_path_factory.mktemp("ui-registry"),
        f"mongodb://127.0.0.1:{mongo_server.port}/ui_{uuid.uuid4().hex[:8]}",
    )
    yield process
    process.stop()


@pytest.fixture
def browser_page(
    request: pytest.FixtureRequest, chromium: Browser, ui_registry: Registry, screenshots: Path
) -> Iterator[BrowserPage]:
    context = chromium.new_context(base_url=ui_registry.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = BrowserPage(page, ui_registry.url)
    page.on("response", lambda response: _record_document(watched, response))
    page.on("console", lambda message: _record_console(watched, message))
    page.on("pageerror", lambda error: watched.console_errors.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: _refuse_dialog(watched, dialog))
    failed_before = request.session.testsfailed
    yield watched
    # The call's report is counted before teardown runs: a rise means this test failed.
    if request.session.testsfailed > failed_before or watched.console_errors:
        shot = screenshots / f"{request.node.name}.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the failing page: {shot}")
        except Error as exc:
            print(f"\nno screenshot ({exc})")
    context.close()
    if watched.console_errors:
        pytest.fail(f"browser console errors: {watched.console_errors}", pytrace=False)


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def _record_document(watched: BrowserPage, response: Response) -> None:
    if response.request.resource_type == "document":
        watched.documents.add(response.url)


def _record_console(watched: BrowserPage, message: ConsoleMessage) -> None:
    if message.type != "error":
        return
    url = message.location.get("url", "")
    if message.text.startswith("Failed to load resource") and url in watched.documents:
        return
    watched.console_errors.append(f"{message.text} ({url})")


def _refuse_dialog(watched: BrowserPage, dialog: Dialog) -> None:
    watched.dialogs.append(dialog.message)
    dialog.dismiss()
