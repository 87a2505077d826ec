"""The web UI's pure rules: where a sign-in may lead, the CSRF and origin checks, session
expiry and liveness, and how sizes read."""

from __future__ import annotations

import datetime as dt

import pytest

from services.registry.identity.access import PASSWORD_CREDENTIAL, Principal, key_credential
from services.registry.identity.roles import Grants
from services.registry.ui.middleware import is_ui_path
from services.registry.ui.render import human_size
from services.registry.ui.security import (
    csrf_matches,
    new_secret,
    origin_allowed,
    origin_of,
    safe_next,
)
from services.registry.ui.sessions import Lifetimes, credential_live, hash_session_id

OWN = frozenset({"https://registry.example.test", "http://127.0.0.1:5000"})


@pytest.mark.parametrize(
    "asked",
    [
        "/",
        "/spaces/team-a",
        "/spaces/team-a/repositories/tools/lantern?q=x&after=y",
        "/spaces/team-a/repositories/tools/lantern/manifests/sha256:abc#layers",
    ],
)
def test_a_path_on_the_site_is_where_a_sign_in_leads(asked: str) -> None:
    assert safe_next(asked) == asked


@pytest.mark.parametrize(
    "asked",
    [
        None,
        "",
        "//evil.example",
        "//evil.example/spaces",
        "https://evil.example/",
        "http:/evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\\\evil.example",
        "\\/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/ /evil.example",
        "/\x7f/evil.example",
        "spaces/relative",
        "/" + "a" * 3000,
    ],
)
def test_anything_else_leads_home(asked: str | None) -> None:
    assert safe_next(asked) == "/"


def test_the_csrf_token_must_match_exactly() -> None:
    token = new_secret()
    assert csrf_matches(token, token)
    assert not csrf_matches(token, token[:-1])
    assert not csrf_matches(token, token + "x")
    assert not csrf_matches(token, None)
    assert not csrf_matches(token, "")
    assert not csrf_matches("", "")  # no session token: nothing can match it


def test_secrets_are_256_random_bits() -> None:
    tokens = {new_secret() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) == 43 for token in tokens)  # 32 bytes, URL-safe base64


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # a same-origin form from a browser that leaves Origin off
        ("https://registry.example.test", True),
        ("HTTPS://Registry.Example.Test", True),
        ("http://127.0.0.1:5000", True),
        ("https://evil.example", False),
        ("https://registry.example.test.evil.example", False),
        ("http://registry.example.test", False),  # another scheme is another origin
        ("null", False),
        ("", False),
    ],
)
def test_only_the_registrys_own_origin_may_post(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, OWN) is allowed


def test_the_origin_of_a_public_url_is_as_browsers_write_it() -> None:
    assert origin_of("https://Registry.Example.Test/base/") == "https://registry.example.test"
    assert origin_of("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_the_ui_owns_only_its_own_paths() -> None:
    for path in ("/", "/sign-in", "/sign-out", "/spaces/a", "/ui/static/ui.css"):
        assert is_ui_path(path), path
    for path in ("/v2/", "/api/v1/spaces", "/auth/token", "/metrics", "/healthz", "/readyz"):
        assert not is_ui_path(path), path


def test_a_session_ends_at_the_earlier_of_idle_and_absolute_expiry() -> None:
    lifetimes = Lifetimes(absolute=dt.timedelta(hours=12), idle=dt.timedelta(hours=1))
    start = dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)
    absolute = start + dt.timedelta(hours=12)
    assert lifetimes.expiry(absolute, start) == start + dt.timedelta(hours=1)
    late = start + dt.timedelta(hours=11, minutes=30)
    assert lifetimes.expiry(absolute, late) == absolute


def test_the_session_id_is_stored_as_its_sha256() -> None:
    assert hash_session_id("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_a_session_lives_only_while_its_credential_does() -> None:
    grants = Grants(username="ada", epoch=3, api_keys=frozenset({"k1"}))
    assert credential_live(Principal("ada", PASSWORD_CREDENTIAL, 3), grants)
    assert not credential_live(Principal("ada", PASSWORD_CREDENTIAL, 2), grants)  # new password
    assert credential_live(Principal("ada", key_credential("k1")), grants)
    assert not credential_live(Principal("ada", key_credential("k2")), grants)  # revoked key
    assert not credential_live(Principal("ada", PASSWORD_CREDENTIAL, 3), None)  # user deleted


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (5 * 1024**3, "5.0 GiB"),
        (3 * 1024**5, "3072.0 TiB"),
    ],
)
def test_sizes_read_as_people_read_them(size: int, shown: str) -> None:
    assert human_size(size) == shown
