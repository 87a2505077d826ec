"""The web UI over plain HTTP, as a browser without JavaScript uses it: signing in through the
form (with its token) and a session that gets pages and posts forms."""

from __future__ import annotations

import re
from dataclasses import dataclass

import requests

from tests.support.processes import Registry

SESSION_COOKIE = "spacedock_session"


@dataclass
class SignedIn:
    """A signed-in browser, as far as HTTP goes: its session cookie, and the token a page's
    forms carry."""

    http: requests.Session
    url: str

    @property
    def cookie(self) -> str:
        return str(self.http.cookies[SESSION_COOKIE])

    def get(self, path: str, **params: str) -> requests.Response:
        return self.http.get(f"{self.url}{path}", params=params, allow_redirects=False, timeout=30)

    def post(self, path: str, data: dict[str, str], **headers: str) -> requests.Response:
        return self.http.post(
            f"{self.url}{path}", data=data, headers=headers, allow_redirects=False, timeout=30
        )

    def csrf_token(self, path: str = "/") -> str:
        return form_token(self.get(path).text)


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html
    return match.group(1)


def open_sign_in(url: str, next_path: str | None = None) -> tuple[requests.Session, str]:
    http = requests.Session()
    params = {} if next_path is None else {"next": next_path}
    form = http.get(f"{url}/sign-in", params=params, timeout=30)
    assert form.status_code == 200
    return http, form_token(form.text)


def sign_in_response(
    url: str, username: str, password: str, next_path: str = "/"
) -> tuple[requests.Session, requests.Response]:
    http, token = open_sign_in(url)
    response = http.post(
        f"{url}/sign-in",
        data={"username": username, "password": password, "next": next_path, "csrf_token": token},
        allow_redirects=False,
        timeout=30,
    )
    return http, response


def sign_in(registry: Registry, auth: tuple[str, str]) -> SignedIn:
    http, response = sign_in_response(registry.url, *auth)
    assert response.status_code == 303, response.text
    return SignedIn(http, registry.url)
