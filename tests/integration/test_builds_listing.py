"""A space's builds over the management API: listed newest first, a page at a time, filtered
by status; what a bad listing or a bad request is answered; a repeated build id. And the store
underneath: builds spread over years page in order, and builds recorded before they were
listed get their place at the next start.

A registry of this module's own with no builder: a build asked for stays queued.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
import requests
from pymongo import AsyncMongoClient

from shared.builds.lifecycle import BuildStatus
from shared.metadata.builds import new_build
from shared.metadata.store import MetadataStore
from tests.support.processes import Registry, Service, start_registry


@pytest.fixture(scope="module")
def registry_alone(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[Registry]:
    registry = start_registry(
        tmp_path_factory.mktemp("builds-listing"),
        f"mongodb://127.0.0.1:{mongo_server.port}/listing_{uuid.uuid4().hex[:8]}",
    )
    yield registry
    registry.stop()


@pytest.fixture
def space(registry_alone: Registry) -> str:
    """A space of the test's own, so its listing holds only what the test asked for."""
    created = requests.post(
        f"{registry_alone.url}/api/v1/spaces",
        json={"name": f"Listing {uuid.uuid4().hex[:6]}"},
        auth=registry_alone.auth,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    space_id: str = created.json()["id"]
    return space_id


def body(build_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "build_id": build_id,
        "sdi": {"id": "shop-sdi", "version": "2.4.0"},
        "deployment": {"id": f"deployments-{build_id}", "environment": "Test"},
        "variables": {"Shop:Currency": "EUR"},
        **changes,
    }


def call(registry: Registry, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method, f"{registry.url}/api/v1{path}", auth=registry.auth, timeout=10, **kwargs
    )


def test_builds_are_listed_newest_first_a_page_at_a_time(
    registry_alone: Registry, space: str
) -> None:
    ids = [f"b{n}" for n in range(7)]
    for build_id in ids:
        answer = call(registry_alone, "POST", f"/spaces/{space}/builds", json=body(build_id))
        assert answer.status_code == 202, answer.text
    single = call(registry_alone, "GET", f"/spaces/{space}/builds/b6").json()

    listed: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = call(registry_alone, "GET", f"/spaces/{space}/builds", params=params)
        assert page.status_code == 200, page.text
        listed += page.json()["builds"]
        pages += 1
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [build["build_id"] for build in listed] == ids[::-1]
    assert listed[0] == single  # the object GET …/builds/{id} answers

    everything = call(registry_alone, "GET", f"/spaces/{space}/builds").json()
    assert len(everything["builds"]) == 7 and everything["next_cursor"] is None


def test_the_listing_is_filtered_by_status(registry_alone: Registry, space: str) -> None:
    for build_id in ("kept", "cancelled-one"):
        call(registry_alone, "POST", f"/spaces/{space}/builds", json=body(build_id))
    cancelled = call(registry_alone, "DELETE", f"/spaces/{space}/builds/cancelled-one")
    assert cancelled.json()["status"] == "cancelled"

    def listed(status: str) -> list[str]:
        answer = call(registry_alone, "GET", f"/spaces/{space}/builds", params={"status": status})
        assert answer.status_code == 200, answer.text
        return [build["build_id"] for build in answer.json()["builds"]]

    assert listed("queued") == ["kept"]
    assert listed("cancelled") == ["cancelled-one"]
    assert listed("succeeded") == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "done"}, "status must be one of queued, running, succeeded"),
        ({"status": ""}, "status must be one of"),
        ({"limit": "0"}, "limit must be an integer from 1 to 500"),
        ({"limit": "501"}, "limit must be an integer from 1 to 500"),
        ({"limit": "ten"}, "limit must be an integer"),
        ({"cursor": "not a cursor!"}, "invalid cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"1|x").decode()}, "invalid cursor"),
        ({"cursor": "\u00e9t\u00e9"}, "invalid cursor"),
    ],
)
def test_a_bad_listing_is_a_400_that_says_why(
    registry_alone: Registry, space: str, params: dict[str, str], message: str
) -> None:
    answer = call(registry_alone, "GET", f"/spaces/{space}/builds", params=params)
    assert answer.status_code == 400, answer.text
    assert message in answer.json()["error"]["message"]


def test_a_request_without_its_deployment_is_refused(registry_alone: Registry, space: str) -> None:
    request = body("no-deployment")
    request.pop("deployment")
    answer = call(registry_alone, "POST", f"/spaces/{space}/builds", json=request)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["message"].startswith("deployment is required")
    assert call(registry_alone, "GET", f"/spaces/{space}/builds/no-deployment").status_code == 404


def test_a_build_id_repeated_with_other_inputs_is_a_409(
    registry_alone: Registry, space: str
) -> None:
    url = f"/spaces/{space}/builds"
    first = call(registry_alone, "POST", url, json=body("deployments-31-shop"))
    assert first.status_code == 202, first.text
    again = call(registry_alone, "POST", url, json=body("deployments-31-shop"))
    assert (again.status_code, again.json()) == (202, first.json())

    changed = body("deployments-31-shop", variables={"Shop:Currency": "GBP"})
    refused = call(registry_alone, "POST", url, json=changed)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "BUILD_ID_TAKEN"
    assert "deployments-31-shop" in error["message"] and "other inputs" in error["message"]
    assert error["detail"] == {"build_id": "deployments-31-shop", "differing": ["variables"]}
    kept = call(registry_alone, "GET", f"{url}/deployments-31-shop").json()
    assert kept["request"]["variables"] == {"Shop:Currency": "EUR"}


@pytest_asyncio.fixture
async def store(mongo_url: str) -> AsyncIterator[MetadataStore]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    metadata = MetadataStore(client, client.get_default_database().name)
    await metadata.ensure_indexes()
    yield metadata
    await metadata.close()


async def test_builds_spread_over_years_page_in_order(store: MetadataStore) -> None:
    """Every window of time a page reads is crossed: a build of a minute ago, of yesterday,
    of last year, ten years back, and two stamped by a clock running ahead."""
    now = dt.datetime.now(dt.UTC)
    ages = [-dt.timedelta(minutes=3), -dt.timedelta(seconds=2), dt.timedelta(0)]
    ages += [dt.timedelta(seconds=s) for s in (5, 70, 4000, 90_000, 2_000_000, 20_000_000)]
    ages += [dt.timedelta(days=400), dt.timedelta(days=3650)]
    for n, age in enumerate(ages):
        doc = new_build("spaces-1", f"aged-{n:02d}", None)
        doc["created_at"] = now - age
        doc.pop("listing_key")  # given one by the upgrade below, from the creation time
        await store.db.builds.insert_one(doc)
    assert await store.builds.key_for_listing() == len(ages)
    assert await store.builds.key_for_listing() == 0

    for limit in (1, 2, 4, 50):
        listed: list[str] = []
        before = None
        while True:
            page = await store.builds.newest("spaces-1", status=None, before=before, limit=limit)
            listed += [build.build_id for build in page]
            if len(page) < limit:
                break
            before = page[-1].listing_key
        assert listed == [f"aged-{n:02d}" for n in range(len(ages))], limit
    queued = await store.builds.newest("spaces-1", status=BuildStatus.QUEUED, before=None, limit=3)
    assert [build.build_id for build in queued] == ["aged-00", "aged-01", "aged-02"]
    assert all(build.logs == () for build in queued)  # a listing leaves the log lines out


def test_a_space_goes_only_without_builds_under_way_and_takes_its_builds_with_it(
    registry_alone: Registry, space: str
) -> None:
    """A space made again under a deleted one's id must not inherit its builds (their
    requests, variables, logs): a space with a build queued or running stays, and one
    deleted takes its finished builds with it."""
    queued = call(registry_alone, "POST", f"/spaces/{space}/builds", json=body("first"))
    assert queued.status_code == 202, queued.text
    refused = call(registry_alone, "DELETE", f"/spaces/{space}")
    assert refused.status_code == 409
    assert "queued or running" in refused.json()["error"]["message"]
    cancelled = call(registry_alone, "DELETE", f"/spaces/{space}/builds/first")
    assert cancelled.status_code in (200, 202), cancelled.text
    assert call(registry_alone, "DELETE", f"/spaces/{space}").status_code == 204

    again = call(registry_alone, "POST", "/spaces", json={"id": space, "name": "Again"})
    assert again.status_code == 201, again.text
    listed = call(registry_alone, "GET", f"/spaces/{space}/builds").json()
    assert listed["builds"] == []
    assert call(registry_alone, "GET", f"/spaces/{space}/builds/first").status_code == 404
    # the old build id is free: a new request with other inputs is no 409
    reused = call(
        registry_alone, "POST", f"/spaces/{space}/builds", json=body("first", variables={})
    )
    assert reused.status_code == 202, reused.text
