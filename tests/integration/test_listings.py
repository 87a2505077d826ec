"""Tag lists and the catalog: lexical order, n/last pagination, Link headers (end-8)."""

from __future__ import annotations

import uuid

from tests.support.oci import Client, error_codes


def test_tags_are_listed_in_lexical_order_with_pagination(client: Client, repo: str) -> None:
    """n/last page through tags in lexical order; a full page carries a next Link."""
    _, body = client.push_image(repo, "b", [b"l"])
    for tag in ("a", "C", "1.10.0", "1.2.0"):
        assert client.put_manifest(repo, tag, body).status_code == 201
    everything = client.request("GET", f"/v2/{repo}/tags/list").json()
    assert everything == {"name": repo, "tags": ["1.10.0", "1.2.0", "C", "a", "b"]}

    first = client.request("GET", f"/v2/{repo}/tags/list", params={"n": 2})
    assert first.json()["tags"] == ["1.10.0", "1.2.0"]
    assert first.headers["Link"] == f'</v2/{repo}/tags/list?n=2&last=1.2.0>; rel="next"'
    second = client.request("GET", f"/v2/{repo}/tags/list", params={"n": 2, "last": "1.2.0"})
    assert second.json()["tags"] == ["C", "a"]
    last = client.request("GET", f"/v2/{repo}/tags/list", params={"n": 2, "last": "a"})
    assert last.json()["tags"] == ["b"]
    assert "Link" not in last.headers
    empty = client.request("GET", f"/v2/{repo}/tags/list", params={"n": 0})
    assert empty.json()["tags"] == [] and "Link" not in empty.headers


def test_tags_of_unknown_repository(client: Client) -> None:
    """Listing tags of a repository that does not exist is NAME_UNKNOWN."""
    response = client.request("GET", f"/v2/spaces-1/never-{uuid.uuid4().hex[:6]}/tags/list")
    assert response.status_code == 404
    assert error_codes(response) == ["NAME_UNKNOWN"]


def test_bad_page_size_is_a_client_error(client: Client, repo: str) -> None:
    """A non-numeric n is refused with 400."""
    client.push_image(repo, "t", [b"l"])
    response = client.request("GET", f"/v2/{repo}/tags/list", params={"n": "many"})
    assert response.status_code == 400


def test_catalog_pages_through_repositories(client: Client) -> None:
    """_catalog lists repositories in lexical order and pages with n/last and Link."""
    prefix = f"spaces-1/cat-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}/{suffix}" for suffix in ("b", "a", "c")]
    for name in names:
        client.push_image(name, "t", [b"l"])
    seen: list[str] = []
    params: dict[str, str | int] = {"n": 2}
    while True:
        response = client.request("GET", "/v2/_catalog", params=params)
        assert response.status_code == 200
        page = response.json()["repositories"]
        assert page == sorted(page) and len(page) <= 2
        seen += page
        if "Link" not in response.headers:
            break
        params = {"n": 2, "last": page[-1]}
    assert [n for n in seen if n.startswith(prefix)] == sorted(names)
    assert seen == sorted(seen)
