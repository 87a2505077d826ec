"""Spaces, users, roles, API keys and tokens set up through the management API, as an
administrator would."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.support.oci import Client

PASSWORD = "correct-horse-battery"


@dataclass
class Account:
    username: str
    password: str = field(default=PASSWORD, repr=False)
    api_key: str = field(default="", repr=False)
    api_key_id: str = ""

    @property
    def basic(self) -> tuple[str, str]:
        return (self.username, self.password)

    @property
    def key_basic(self) -> tuple[str, str]:
        return (self.username, self.api_key)


class Admin:
    """The management API with a superuser's credentials."""

    def __init__(self, url: str, auth: tuple[str, str]) -> None:
        self.url = url
        self.auth = auth

    def call(
        self, method: str, path: str, expect: int | None = None, **kwargs: Any
    ) -> requests.Response:
        response = requests.request(
            method, f"{self.url}/api/v1{path}", auth=self.auth, timeout=30, **kwargs
        )
        if expect is not None:
            assert response.status_code == expect, (method, path, response.text)
        return response

    def space(self, prefix: str = "team", **fields: Any) -> str:
        space_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.call("POST", "/spaces", 201, json={"id": space_id, "name": space_id, **fields})
        return space_id

    def user(self, prefix: str = "user", *, with_key: bool = True) -> Account:
        account = Account(f"{prefix}-{uuid.uuid4().hex[:8]}")
        self.call("POST", "/users", 201, json={"username": account.username, "password": PASSWORD})
        if with_key:
            created = self.call("POST", f"/users/{account.username}/api-keys", 201, json={})
            account.api_key, account.api_key_id = created.json()["key"], created.json()["id"]
        return account

    def grant(self, space: str, account: Account, role: str) -> None:
        response = self.call(
            "PUT", f"/spaces/{space}/members/{account.username}", json={"role": role}
        )
        assert response.status_code in (200, 201), response.text


def token(url: str, auth: tuple[str, str] | None, *scopes: str, **params: str) -> str:
    response = requests.get(
        f"{url}/auth/token",
        params=[("service", "spacedock"), *(("scope", s) for s in scopes), *params.items()],
        auth=auth,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def bearer_client(url: str, access_token: str) -> Client:
    client = Client.for_registry(url, None)
    client.session.headers["Authorization"] = f"Bearer {access_token}"
    return client


def granted(access_token: str) -> list[dict[str, Any]]:
    """The ``access`` claim of a token (the payload is plain base64url JSON)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return list(claims["access"])
