"""The management API: spaces, the feed view (repositories and versions), errors, OpenAPI."""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests

from tests.support.oci import Client
from tests.support.processes import Registry


def api(client: Client, method: str, path: str, **kwargs: Any) -> requests.Response:
    return client.request(method, f"/api/v1{path}", **kwargs)


def new_space(client: Client, **fields: Any) -> dict[str, Any]:
    response = api(client, "POST", "/spaces", json={"name": "Team", **fields})
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/api/v1/spaces/{response.json()['id']}"
    body: dict[str, Any] = response.json()
    return body


def test_space_lifecycle(client: Client) -> None:
    """A space is created, read, listed, renamed, used for pushes, and deleted once empty."""
    space_id = f"team-{uuid.uuid4().hex[:8]}"
    created = new_space(client, id=space_id, anonymous_pull=True)
    assert created["id"] == space_id and created["anonymous_pull"] is True
    assert api(client, "GET", f"/spaces/{space_id}").json()["name"] == "Team"
    assert space_id in [s["id"] for s in api(client, "GET", "/spaces").json()["spaces"]]

    renamed = api(client, "PATCH", f"/spaces/{space_id}", json={"name": "Team B"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Team B"

    client.push_image(f"{space_id}/app", "1.0", [b"layer"])  # usable at once
    busy = api(client, "DELETE", f"/spaces/{space_id}")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "CONFLICT"
    assert client.request("DELETE", f"/v2/{space_id}/app/manifests/1.0").status_code == 202


def test_empty_space_is_deleted_and_unusable(client: Client) -> None:
    """Deleting an empty space removes it; pushes to it are then NAME_UNKNOWN."""
    space_id = new_space(client)["id"]
    assert client.request("POST", f"/v2/{space_id}/app/blobs/uploads/").status_code == 202
    assert api(client, "DELETE", f"/spaces/{space_id}").status_code == 204
    assert api(client, "GET", f"/spaces/{space_id}").status_code == 404
    gone = client.request("POST", f"/v2/{space_id}/app/blobs/uploads/")
    assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_generated_ids_are_the_next_free_number(client: Client) -> None:
    """Without an id, spaces get the next free spaces-N."""
    first, second = new_space(client)["id"], new_space(client)["id"]
    assert re.fullmatch(r"spaces-\d+", first) and re.fullmatch(r"spaces-\d+", second)
    assert int(second.split("-")[1]) == int(first.split("-")[1]) + 1


def test_space_input_errors(client: Client) -> None:
    """Bad bodies and ids get 400/409/422 JSON errors and create nothing."""
    before = api(client, "GET", "/spaces").json()["spaces"]
    cases = [
        ({"name": "x", "id": "spaces-1"}, 409),
        ({"name": "x", "id": "Bad_Id"}, 422),
        ({"name": ""}, 422),
        ({"name": "x", "anonymous_pull": "yes"}, 422),
        ({"name": "x", "owner": "me"}, 422),
    ]
    for body, status in cases:
        response = api(client, "POST", "/spaces", json=body)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()["error"]) >= {"code", "message"}
    not_json = api(client, "POST", "/spaces", data=b"{nope")
    assert not_json.status_code == 400
    assert api(client, "GET", "/spaces").json()["spaces"] == before
    assert api(client, "DELETE", "/spaces/spaces-1").status_code == 409
    missing = api(client, "PATCH", "/spaces/no-such-space", json={"name": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"


def test_credentials_are_required(registry: Registry) -> None:
    """The API needs the same credentials as the registry; its description is public."""
    response = requests.get(f"{registry.url}/api/v1/spaces", timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHORIZED"
    assert "WWW-Authenticate" in response.headers
    assert requests.get(f"{registry.url}/api/v1/openapi.json", timeout=10).status_code == 200


def test_repositories_are_searched_and_paged(client: Client) -> None:
    """The feed view finds repositories by part of their name and pages with a cursor."""
    space_id = new_space(client)["id"]
    for name in ("web/frontend", "web/backend", "worker", "db"):
        client.push_image(f"{space_id}/{name}", "1.0", [b"x"])
    everything = api(client, "GET", f"/spaces/{space_id}/repositories").json()
    assert [r["name"] for r in everything["repositories"]] == [
        "db",
        "web/backend",
        "web/frontend",
        "worker",
    ]
    assert everything["next_cursor"] is None
    found = api(client, "GET", f"/spaces/{space_id}/repositories", params={"q": "WEB"}).json()
    assert [r["full_name"] for r in found["repositories"]] == [
        f"{space_id}/web/backend",
        f"{space_id}/web/frontend",
    ]

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api(client, "GET", f"/spaces/{space_id}/repositories", params=params).json()
        seen += [r["name"] for r in page["repositories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["name"] for r in everything["repositories"]]
    bad = api(client, "GET", f"/spaces/{space_id}/repositories", params={"limit": 0})
    assert bad.status_code == 400
    assert api(client, "GET", "/spaces/nope/repositories").status_code == 404


def test_versions_newest_first_in_octopus_order(client: Client) -> None:
    """Tags come back as versions, newest first, with digest, size and push time; the
    prerelease filter hides prerelease tags. The Docker tag ``latest`` is no prerelease, as the
    deployment server reads it, yet it sorts below every numbered version."""
    space_id = new_space(client)["id"]
    repo = f"{space_id}/mywebapp"
    layer = b"x" * 1000
    digest, body = client.push_image(repo, "1.2.0", [layer])
    for tag in ("latest", "1.2.0-beta", "1.2.0-deployments-9", "1.2.0-deployments-75", "1.10.0"):
        assert client.put_manifest(repo, tag, body).status_code == 201
    response = api(client, "GET", f"/spaces/{space_id}/repositories/mywebapp/versions")
    assert response.status_code == 200
    versions = response.json()["versions"]
    assert [v["tag"] for v in versions] == [
        "1.10.0",
        "1.2.0",
        "1.2.0-deployments-75",
        "1.2.0-deployments-9",
        "1.2.0-beta",
        "latest",
    ]
    top = versions[0]
    assert top["digest"] == digest and top["prerelease"] is False and top["pushed_at"]
    assert top["size"] >= len(body) + len(layer)
    assert [v["prerelease"] for v in versions] == [False, False, True, True, True, False]

    def releases(**params: str) -> list[str]:
        answer = api(
            client,
            "GET",
            f"/spaces/{space_id}/repositories/mywebapp/versions",
            params={"prerelease": "false", **params},
        )
        return [v["tag"] for v in answer.json()["versions"]]

    assert releases(limit="1") == ["1.10.0"]
    assert releases() == ["1.10.0", "1.2.0", "latest"]

    # Page by page, following next_cursor, the same versions in the same order.
    paged: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        answer = api(
            client, "GET", f"/spaces/{space_id}/repositories/mywebapp/versions", params=params
        ).json()
        paged += [v["tag"] for v in answer["versions"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert paged == [v["tag"] for v in versions]
    for bad_cursor in ("%%%", "x" * 5000, "_w"):
        refused = api(
            client,
            "GET",
            f"/spaces/{space_id}/repositories/mywebapp/versions",
            params={"cursor": bad_cursor},
        )
        assert refused.status_code == 400, bad_cursor


def test_versions_of_nested_and_missing_repositories(client: Client) -> None:
    """Repository paths may contain slashes; an unknown one is 404."""
    space_id = new_space(client)["id"]
    client.push_image(f"{space_id}/packages/app", "2.0.0", [b"pkg"])
    nested = api(client, "GET", f"/spaces/{space_id}/repositories/packages/app/versions")
    assert [v["tag"] for v in nested.json()["versions"]] == ["2.0.0"]
    missing = api(client, "GET", f"/spaces/{space_id}/repositories/nothing/versions")
    assert missing.status_code == 404
    bad = api(
        client, "GET", f"/spaces/{space_id}/repositories/x/versions", params={"prerelease": "maybe"}
    )
    assert bad.status_code == 400


def test_documented_routes_answer(registry: Registry) -> None:
    """Every operation in the served OpenAPI document answers rather than 404/405 (the unit
    suite checks the document against the router)."""
    document = requests.get(f"{registry.url}/api/v1/openapi.json", timeout=10).json()
    auth = registry.auth
    for path, item in document["paths"].items():
        for method in ("get", "post", "put", "patch", "delete"):
            if method not in item:
                continue
            concrete = re.sub(r"{\w+}", "x", path.replace("{space}", "nope"))
            url = registry.url + concrete
            response = requests.request(method, url, auth=auth, json={}, timeout=10)
            assert response.status_code != 405, (method, path)
            unknown_route = response.status_code == 404 and "does not exist" not in response.text
            assert not unknown_route, (method, path, response.text)


def test_unsupported_methods_list_the_allowed_ones(registry: Registry) -> None:
    """A 405, from the management API or the OCI API, says in Allow what the path takes."""
    for method, path, allowed in (
        ("TRACE", "/api/v1/spaces", {"GET", "POST"}),
        ("PUT", "/api/v1/spaces/spaces-1/retention/run", {"POST"}),
        ("POST", "/v2/", {"GET", "HEAD"}),
    ):
        response = requests.request(method, registry.url + path, auth=registry.auth, timeout=10)
        assert response.status_code == 405, (method, path, response.text)
        assert set(response.headers["Allow"].split(",")) == allowed, (method, path)
