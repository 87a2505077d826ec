"""Tokens, scopes, roles and API keys: the pure parts of identity."""

from __future__ import annotations

import base64
import json

import pytest

from services.registry.identity import api_keys
from services.registry.identity.roles import (
    Action,
    Grants,
    Role,
    ScopeInvalid,
    ScopeRequest,
    parse_scopes,
)
from services.registry.identity.tokens import CLOCK_SKEW_SECONDS, TokenInvalid, TokenSigner

KEY = b"k" * 32
ACCESS = [{"type": "repository", "name": "spaces-1/app", "actions": ["pull", "push"]}]


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_token_round_trips_its_claims() -> None:
    signer = TokenSigner(KEY, Clock())
    issued = signer.issue("alice", "key:abc", 3, ACCESS, 300)
    claims = signer.verify(issued.token)
    assert (claims.subject, claims.credential, claims.epoch) == ("alice", "key:abc", 3)
    assert claims.allows("repository", "spaces-1/app", "push")
    assert not claims.allows("repository", "spaces-1/app", "delete")
    assert not claims.allows("repository", "spaces-1/other", "pull")
    assert issued.expires_in == 300


def test_a_wildcard_action_allows_every_action_on_its_resource() -> None:
    signer = TokenSigner(KEY, Clock())
    access = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
    claims = signer.verify(signer.issue("alice", "password", 0, access, 60).token)
    assert claims.allows("registry", "catalog", "*")
    assert claims.allows("registry", "catalog", "list")


def test_expiry_and_not_before_allow_only_the_clock_skew() -> None:
    clock = Clock()
    signer = TokenSigner(KEY, clock)
    token = signer.issue("alice", "password", 0, ACCESS, 60).token
    clock.now += 60 + CLOCK_SKEW_SECONDS - 0.5
    signer.verify(token)
    clock.now += 1
    with pytest.raises(TokenInvalid, match="expired"):
        signer.verify(token)
    clock.now -= 60 + 2 * CLOCK_SKEW_SECONDS + 5  # a clock behind the issuer's
    with pytest.raises(TokenInvalid, match="not valid yet"):
        signer.verify(token)


def _segments(token: str) -> list[str]:
    return token.split(".")


def _encode(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, p, s: f"{h}.{p}.{s[:-2]}AA",
        lambda h, p, s: f"{h}.{_encode({'sub': 'admin'})}.{s}",
        lambda h, p, s: f"{_encode({'alg': 'none', 'typ': 'JWT'})}.{p}.",
        lambda h, p, s: f"{_encode({'alg': 'HS512', 'typ': 'JWT'})}.{p}.{s}",
        lambda h, p, s: f"{h}.{p}",
        lambda h, p, s: "....",
        lambda h, p, s: f"{h}.{p}.{s}.extra",
        lambda h, p, s: f"{h}.{p}.ü",
    ],
)
def test_tampered_tokens_are_invalid(tamper: object) -> None:
    signer = TokenSigner(KEY, Clock())
    header, payload, signature = _segments(signer.issue("a", "password", 0, ACCESS, 60).token)
    with pytest.raises(TokenInvalid):
        signer.verify(tamper(header, payload, signature))  # type: ignore[operator]


def test_another_key_does_not_verify() -> None:
    token = TokenSigner(KEY, Clock()).issue("a", "password", 0, ACCESS, 60).token
    with pytest.raises(TokenInvalid):
        TokenSigner(b"x" * 32, Clock()).verify(token)


def test_a_short_signing_key_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"short")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["repository:spaces-1/app:pull,push"], [("repository", "spaces-1/app", ("pull", "push"))]),
        (
            ["repository:a/b:pull repository:c/d:push", "registry:catalog:*"],
            [
                ("repository", "a/b", ("pull",)),
                ("repository", "c/d", ("push",)),
                ("registry", "catalog", ("*",)),
            ],
        ),
        (["repository(plugin):a/b:pull"], [("repository", "a/b", ("pull",))]),
        (["repository:host:5000/a/b:pull"], [("repository", "host:5000/a/b", ("pull",))]),
        (["repository:a/b:"], [("repository", "a/b", ())]),
        ([], []),
    ],
)
def test_scopes_parse(values: list[str], expected: list[tuple[str, str, tuple[str, ...]]]) -> None:
    assert parse_scopes(values) == [ScopeRequest(*item) for item in expected]


@pytest.mark.parametrize("value", ["nonsense", "repository:pull", ":a/b:pull", "repository::pull"])
def test_malformed_scopes_are_refused(value: str) -> None:
    with pytest.raises(ScopeInvalid):
        parse_scopes([value])


def test_roles_include_the_ones_below() -> None:
    assert Role.READER < Role.WRITER < Role.ADMIN
    assert [a.needs for a in Action] == [Role.READER, Role.WRITER, Role.ADMIN]
    assert Role.parse("Writer") is Role.WRITER
    assert Role.parse("owner") is None and Role.parse(3) is None


def test_grants_take_the_highest_of_own_and_global_roles() -> None:
    member = Grants("m", roles={"a": Role.ADMIN, "b": Role.READER})
    assert member.role_in("a") is Role.ADMIN and member.role_in("c") is None
    assert member.visible_spaces() == frozenset({"a", "b"})
    service = Grants("svc", global_role=Role.WRITER, roles={"a": Role.ADMIN, "b": Role.READER})
    assert service.role_in("a") is Role.ADMIN
    assert service.role_in("b") is Role.WRITER
    assert service.role_in("anything") is Role.WRITER
    assert service.visible_spaces() is None
    root = Grants("root", superuser=True)
    assert root.role_in("anything") is Role.ADMIN and root.visible_spaces() is None


def test_api_keys_round_trip_and_match_only_their_hash() -> None:
    key = api_keys.new_key()
    parsed = api_keys.parse_key(key.text)
    assert parsed == key
    assert api_keys.matches(parsed, key.secret_hash)
    assert not api_keys.matches(api_keys.new_key(), key.secret_hash)
    assert key.secret not in repr(key)


@pytest.mark.parametrize(
    "text",
    ["", "sdk_", "password", "sdk_0123456789abcdef", "sdk_XYZ3456789abcdef." + "a" * 43,
     "sdk_0123456789abcdef." + "a" * 42, "sdk_0123456789abcdef." + "a" * 43 + "\n"],
)  # fmt: skip
def test_other_text_is_not_a_key(text: str) -> None:
    assert api_keys.parse_key(text) is None


def test_a_build_credential_and_an_access_token_are_never_taken_for_each_other() -> None:
    signer = TokenSigner(KEY, Clock())
    credential = signer.issue("spacedock-builder", "key:b", 0, [], 60, space="t-1", use="build")
    claims = signer.verify(credential.token, use="build")
    assert claims.space == "t-1" and claims.subject == "spacedock-builder"
    with pytest.raises(TokenInvalid):
        signer.verify(credential.token)  # as a bearer token
    access = signer.issue("alice", "password", 0, ACCESS, 60)
    with pytest.raises(TokenInvalid):
        signer.verify(access.token, use="build")
    assert signer.verify(access.token).space is None


def test_a_confined_token_keeps_its_space() -> None:
    signer = TokenSigner(KEY, Clock())
    issued = signer.issue("spacedock-builder", "key:b", 0, ACCESS, 60, space="spaces-1")
    assert signer.verify(issued.token).space == "spaces-1"


def test_an_issued_token_states_the_scope_it_grants() -> None:
    """OAuth2's ``scope`` answer is what the token holds, not what was asked for."""
    access = [
        {"type": "repository", "name": "spaces-1/app", "actions": ["pull", "push"]},
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]
    issued = TokenSigner(KEY, Clock()).issue("a", "password", 0, access, 60)
    assert issued.scope == "repository:spaces-1/app:pull,push registry:catalog:*"
    assert TokenSigner(KEY, Clock()).issue("a", "password", 0, [], 60).scope == ""
