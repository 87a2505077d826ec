"""The web UI's builds pages over HTTP, against a real registry with no builder: builds asked
for through the API stay queued, and how they run is written into the database, as a builder
would write it. The log endpoint the build page follows, who may read and cancel, and what
the listing and a build's page show."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from pymongo import MongoClient

from shared.metadata.builds import MAX_LOG_LINES
from shared.metadata.store import MetadataStore
from tests.support.accounts import Account, Admin
from tests.support.processes import Registry, Service, start_registry
from tests.support.ui_http import form_token, sign_in

HOSTILE = "<script>alert('build')</script>"
DIGEST = "sha256:" + "b1" * 32


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, mongo_server: Service) -> Iterator[Registry]:
    process = start_registry(
        tmp_path_factory.mktemp("ui-builds"),
        f"mongodb://127.0.0.1:{mongo_server.port}/ui_builds_{uuid.uuid4().hex[:8]}",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def admin(registry: Registry) -> Admin:
    return Admin(registry.url, registry.auth)


@pytest.fixture
def builds(registry: Registry) -> Iterator[Any]:
    """The ``builds`` collection, written past the registry as a builder writes it."""
    client: MongoClient[dict[str, Any]] = MongoClient(registry.env["SPACEDOCK_MONGO_URL"])
    yield client.get_default_database().builds
    client.close()


def start_build(admin: Admin, space: str, environment: str = "Staging") -> str:
    """A build asked for through the API: with no builder, it stays queued."""
    body = {
        "build_id": f"lighthouse-{uuid.uuid4().hex[:8]}",
        "sdi": {"id": "lighthouse-sdi", "version": "2.4.0"},
        "image": {"repository": "harbour/lighthouse", "tag": "2.4.0-deployments-7"},
        "deployment": {"id": "deployments-7", "environment": environment},
    }
    created = admin.call("POST", f"/spaces/{space}/builds", 202, json=body)
    return str(created.json()["build_id"])


def log_path(space: str, build_id: str) -> str:
    return f"/spaces/{space}/builds/{build_id}/log"


@dataclass
class Crew:
    space: str
    reader: Account
    writer: Account
    stranger: Account  # a role in another space only


@pytest.fixture(scope="module")
def crew(admin: Admin) -> Crew:
    space = admin.space("dock")
    reader, writer, stranger = admin.user("deckhand"), admin.user("rigger"), admin.user("visitor")
    admin.grant(space, reader, "reader")
    admin.grant(space, writer, "writer")
    admin.grant(admin.space("elsewhere"), stranger, "admin")
    return Crew(space, reader, writer, stranger)


def test_the_log_endpoint_gives_the_lines_after_those_the_page_has(
    registry: Registry, admin: Admin, crew: Crew, builds: Any
) -> None:
    build_id = start_build(admin, crew.space)
    reader = sign_in(registry, crew.reader.basic)
    queued = reader.get(log_path(crew.space, build_id), after="0")
    assert queued.status_code == 200
    assert queued.headers["Content-Type"].startswith("application/json")
    assert queued.headers["Cache-Control"] == "no-store"
    assert queued.json()["status"] == "queued" and queued.json()["final"] is False
    assert queued.json()["lines"] == [] and queued.json()["next"] == 0

    key = f"{crew.space}/{build_id}"
    lines = ["[  0.010s] fetched lighthouse-sdi 2.4.0", f"[  0.020s] {HOSTILE}", "[  0.300s] done"]
    builds.update_one({"_id": key}, {"$set": {"status": "running", "logs": lines}})
    running = reader.get(log_path(crew.space, build_id), after="1").json()
    assert running["status"] == "running" and running["final"] is False
    assert running["lines"] == lines[1:] and running["next"] == 3
    assert running["reference"] is None and running["manifest"] is None

    reference = f"{registry.host}/{crew.space}/harbour/lighthouse:2.4.0-deployments-7@{DIGEST}"
    now = dt.datetime.now(dt.UTC)
    builds.update_one(
        {"_id": key},
        {
            "$set": {
                "status": "succeeded",
                "started_at": now - dt.timedelta(seconds=3),
                "finished_at": now,
                "result": {"reference": reference, "digest": DIGEST},
            }
        },
    )
    ended = reader.get(log_path(crew.space, build_id), after="3").json()
    assert ended["status"] == "succeeded" and ended["final"] is True
    assert ended["lines"] == [] and ended["next"] == 3
    assert ended["reference"] == reference
    assert ended["manifest"] == (
        f"/spaces/{crew.space}/repositories/harbour/lighthouse/manifests/{DIGEST}"
    )
    assert ended["duration"] == "3.0 s"
    past_the_end = reader.get(log_path(crew.space, build_id), after="40").json()
    assert past_the_end["lines"] == [] and past_the_end["next"] == 3


def test_a_log_longer_than_what_is_kept_is_followed_to_its_end(
    registry: Registry, admin: Admin, crew: Crew
) -> None:
    """The store keeps a log's last MAX_LOG_LINES lines and counts them all: a page that has
    shown 2,050 lines gets the ones after those, one that fell further behind what is kept."""
    build_id = start_build(admin, crew.space)
    total = MAX_LOG_LINES + 100

    async def log_lines() -> None:
        store = MetadataStore.connect(registry.env["SPACEDOCK_MONGO_URL"])
        try:
            for start in range(0, total, 700):
                lines = [f"line {n}" for n in range(start, min(total, start + 700))]
                await store.builds.append_logs(crew.space, build_id, lines)
        finally:
            await store.close()

    asyncio.run(log_lines())
    reader = sign_in(registry, crew.reader.basic)
    caught_up = reader.get(log_path(crew.space, build_id), after=str(total - 50)).json()
    assert caught_up["lines"] == [f"line {n}" for n in range(total - 50, total)]
    assert caught_up["next"] == total
    behind = reader.get(log_path(crew.space, build_id), after="10").json()
    assert behind["lines"][0] == f"line {total - MAX_LOG_LINES}" and behind["next"] == total


@pytest.mark.parametrize("after", ["-1", "two", "1.5", "1e3", "٣", "1" * 13, ""])
def test_a_bad_after_is_refused_as_json(
    registry: Registry, admin: Admin, crew: Crew, after: str
) -> None:
    build_id = start_build(admin, crew.space)
    answer = sign_in(registry, crew.reader.basic).get(log_path(crew.space, build_id), after=after)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BAD_REQUEST"
    assert "after" in answer.json()["error"]["message"]


def test_the_log_is_for_members_only(registry: Registry, admin: Admin, crew: Crew) -> None:
    build_id = start_build(admin, crew.space)
    path = log_path(crew.space, build_id)
    stranger = sign_in(registry, crew.stranger.basic).get(path)
    assert stranger.status_code == 404
    assert stranger.json()["error"]["code"] == "NOT_FOUND"
    nobody = requests.get(f"{registry.url}{path}", allow_redirects=False, timeout=30)
    assert nobody.status_code == 303
    assert nobody.headers["Location"].startswith("/sign-in?next=")
    # A credential for the API is not a session: the UI's paths take only the cookie.
    basic = requests.get(
        f"{registry.url}{path}", auth=registry.auth, allow_redirects=False, timeout=30
    )
    assert basic.status_code == 303


def test_another_spaces_build_id_is_not_found(registry: Registry, admin: Admin, crew: Crew) -> None:
    other = admin.space("other")
    build_id = start_build(admin, other)
    superuser = sign_in(registry, registry.auth)  # a role in both spaces
    assert superuser.get(log_path(other, build_id)).status_code == 200
    assert superuser.get(log_path(crew.space, build_id)).status_code == 404
    page = superuser.get(f"/spaces/{crew.space}/builds/{build_id}")
    assert page.status_code == 404
    assert page.headers["Content-Type"].startswith("text/html")
    assert superuser.get(f"/spaces/{crew.space}/builds/..%2F{build_id}").status_code == 404


def test_a_reader_sees_a_build_but_no_cancel(registry: Registry, admin: Admin, crew: Crew) -> None:
    build_id = start_build(admin, crew.space, environment=HOSTILE)
    page = sign_in(registry, crew.reader.basic).get(f"/spaces/{crew.space}/builds/{build_id}")
    assert page.status_code == 200
    assert 'id="build-status" class="status status-queued">queued<' in page.text
    assert "lighthouse-sdi 2.4.0" in page.text
    assert f"{crew.space}/harbour/lighthouse:2.4.0-deployments-7" in page.text
    assert "deployments-7 (&lt;script&gt;alert(&#39;build&#39;)&lt;/script&gt;)" in page.text
    assert HOSTILE not in page.text
    assert "/cancel" not in page.text
    assert '<script src="/ui/static/build-log.js" defer></script>' in page.text


def test_a_writer_cancels_a_queued_build_from_its_page(
    registry: Registry, admin: Admin, crew: Crew
) -> None:
    build_id = start_build(admin, crew.space)
    writer = sign_in(registry, crew.writer.basic)
    path = f"/spaces/{crew.space}/builds/{build_id}"
    page = writer.get(path)
    assert f'action="{path}/cancel"' in page.text
    assert writer.post(f"{path}/cancel", {}).status_code == 403  # no CSRF token
    assert admin.call("GET", f"/spaces/{crew.space}/builds/{build_id}").json()["status"] == "queued"

    cancelled = writer.post(f"{path}/cancel", {"csrf_token": form_token(page.text)})
    assert cancelled.status_code == 303 and cancelled.headers["Location"] == path
    shown = writer.get(path)
    assert 'class="status status-cancelled">cancelled<' in shown.text
    assert "/cancel" not in shown.text  # nothing left to cancel
    assert "build-log.js" not in shown.text  # nothing left to follow
    again = writer.post(f"{path}/cancel", {"csrf_token": form_token(page.text)})
    assert again.status_code == 409  # the API's answer, as a page


def test_a_reader_cannot_cancel_by_posting(registry: Registry, admin: Admin, crew: Crew) -> None:
    build_id = start_build(admin, crew.space)
    reader = sign_in(registry, crew.reader.basic)
    path = f"/spaces/{crew.space}/builds/{build_id}"
    refused = reader.post(f"{path}/cancel", {"csrf_token": form_token(reader.get(path).text)})
    assert refused.status_code == 403
    assert admin.call("GET", f"/spaces/{crew.space}/builds/{build_id}").json()["status"] == "queued"


def test_the_listing_filters_by_status_and_pages(registry: Registry, admin: Admin) -> None:
    space = admin.space("fleet")
    started = [start_build(admin, space) for _ in range(52)]
    browser = sign_in(registry, registry.auth)
    admin.call("DELETE", f"/spaces/{space}/builds/{started[0]}", 202)

    def listed(html: str) -> list[str]:
        return re.findall(r'<tr class="build" data-build-id="([^"]+)"', html)

    # Builds asked for in the same millisecond sort by id: the API's order is the one to match.
    newest = admin.call("GET", f"/spaces/{space}/builds", 200, params={"limit": "52"}).json()
    in_order = [build["build_id"] for build in newest["builds"]]
    assert sorted(in_order) == sorted(started)
    first = browser.get(f"/spaces/{space}/builds")
    assert first.status_code == 200
    assert listed(first.text) == in_order[:50]
    next_link = re.search(r'<a class="next" href="([^"]+)"', first.text)
    assert next_link is not None
    second = browser.get(next_link.group(1).replace("&amp;", "&"))
    assert listed(second.text) == in_order[50:]
    assert 'class="next"' not in second.text

    cancelled = browser.get(f"/spaces/{space}/builds", status="cancelled")
    assert listed(cancelled.text) == [started[0]]
    assert '<option value="cancelled" selected>' in cancelled.text
    unknown = browser.get(f"/spaces/{space}/builds", status="sunk", after="not-a-place")
    assert listed(unknown.text) == in_order[:50]  # neither filter nor place: the newest


def test_the_builds_pages_are_linked_from_a_spaces_pages(registry: Registry, admin: Admin) -> None:
    space = admin.space("harbour")
    page = sign_in(registry, registry.auth).get(f"/spaces/{space}")
    assert f'href="/spaces/{space}/builds"' in page.text
