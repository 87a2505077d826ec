"""A client that renews its token only on a 401, as containerd's resolver does: it starts
with a pull-only token and must get through a chunked upload with a status check, a
cross-repository mount and a manifest delete by asking for the scopes each 401 names."""

from __future__ import annotations

import re
import uuid
from typing import Any

import requests

from tests.support.accounts import Admin
from tests.support.oci import Client, digest_of
from tests.support.processes import Registry

CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RenewOn401:
    """Bearer requests; on a 401 it asks ``realm`` for the challenge's scopes and retries
    once. It never reacts to a 403."""

    def __init__(self, registry: Registry, auth: tuple[str, str], scope: str) -> None:
        self.registry = registry
        self.auth = auth
        self.challenges: list[dict[str, str]] = []
        self.token = self._token(f"{registry.url}/auth/token", "spacedock", scope.split())

    def _token(self, realm: str, service: str, scopes: list[str]) -> str:
        params = [("service", service), *(("scope", s) for s in scopes)]
        response = requests.get(realm, params=params, auth=self.auth, timeout=10)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.registry.url}{path}"
        response = self._send(method, url, **kwargs)
        if response.status_code == 401:
            fields = dict(CHALLENGE.findall(response.headers["WWW-Authenticate"]))
            self.challenges.append(fields)
            self.token = self._token(fields["realm"], fields["service"], fields["scope"].split())
            response = self._send(method, url, **kwargs)
        return response

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {self.token}"}
        return requests.request(method, url, headers=headers, timeout=30, **kwargs)


def test_a_chunked_upload_with_a_status_check_renews_on_401(registry: Registry, repo: str) -> None:
    client = RenewOn401(registry, registry.auth, f"repository:{repo}:pull")
    started = client.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    assert client.challenges[-1]["error"] == "insufficient_scope"
    assert client.challenges[-1]["scope"] == f"repository:{repo}:pull,push"
    blob = uuid.uuid4().bytes * 64
    location = started.headers["Location"]
    patched = client.request(
        "PATCH", location, data=blob[:512],
        headers={"Content-Type": "application/octet-stream", "Content-Range": "0-511"},
    )  # fmt: skip
    assert patched.status_code == 202, patched.text
    status = client.request("GET", patched.headers["Location"])
    assert status.status_code == 204 and status.headers["Range"] == "0-511"
    finished = client.request(
        "PUT", status.headers["Location"], params={"digest": digest_of(blob)}, data=blob[512:],
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    assert finished.status_code == 201, finished.text
    assert len(client.challenges) == 1  # one renewal was enough for the whole upload


def test_a_mount_from_another_repository_renews_to_a_201(
    registry: Registry, client: Client, repo: str
) -> None:
    source = f"{repo}-source"
    blob = uuid.uuid4().bytes * 32
    digest = client.push_blob(source, blob)
    renewing = RenewOn401(registry, registry.auth, f"repository:{repo}:pull,push")
    mounted = renewing.request(
        "POST", f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}
    )
    assert mounted.status_code == 201, mounted.text
    scopes = renewing.challenges[-1]["scope"].split()
    assert scopes == [f"repository:{repo}:pull,push", f"repository:{source}:pull"]
    assert renewing.request("HEAD", f"/v2/{repo}/blobs/{digest}").status_code == 200


def test_a_mount_the_role_cannot_read_is_a_plain_upload_not_a_challenge(
    registry: Registry, client: Client, repo: str
) -> None:
    admin = Admin(registry.url, registry.auth)
    private = admin.space("private")
    blob = uuid.uuid4().bytes * 32
    digest = client.push_blob(f"{private}/secret", blob)
    writer = admin.user("writer")
    admin.grant("spaces-1", writer, "writer")
    renewing = RenewOn401(registry, writer.basic, f"repository:{repo}:pull,push")
    response = renewing.request(
        "POST", f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": f"{private}/secret"}
    )
    assert response.status_code == 202 and renewing.challenges == []


def test_a_manifest_delete_renews_on_401_and_a_forbidden_one_stays_403(
    registry: Registry, client: Client, repo: str
) -> None:
    digest, _ = client.push_image(repo, "1.0", [b"layer"])
    renewing = RenewOn401(registry, registry.auth, f"repository:{repo}:pull")
    deleted = renewing.request("DELETE", f"/v2/{repo}/manifests/{digest}")
    assert deleted.status_code == 202, deleted.text
    assert renewing.challenges[-1]["scope"] == f"repository:{repo}:delete"
    admin = Admin(registry.url, registry.auth)
    writer = admin.user("writer")
    admin.grant("spaces-1", writer, "writer")
    other, _ = client.push_image(repo, "2.0", [b"other layer"])
    as_writer = RenewOn401(registry, writer.basic, f"repository:{repo}:pull")
    refused = as_writer.request("DELETE", f"/v2/{repo}/manifests/{other}")
    assert refused.status_code == 403  # the role forbids it: no new token would help
