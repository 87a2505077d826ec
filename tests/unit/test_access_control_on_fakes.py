"""Access control (services/registry/identity/access.py) over in-memory accounts: which
credentials sign in, what each role in a space allows, anonymous pulls, revocation once the
cached grants are forgotten, and credentials confined to one space. The token format and the
role order themselves are tests/unit/test_identity.py's; the HTTP answers, per path,
tests/integration/test_access_matrix.py's."""

from __future__ import annotations

import base64

import pytest

from services.registry.identity import api_keys
from services.registry.identity.access import (
    ANONYMOUS,
    AccessControl,
    AuthenticationRequired,
    InsufficientScope,
    Principal,
    SpaceAccess,
    key_credential,
)
from services.registry.identity.passwords import hash_password
from services.registry.identity.roles import Action, ScopeRequest
from services.registry.identity.tokens import TokenSigner
from shared.oci import errors
from shared.oci.names import RepositoryName
from tests.support.fakes.metadata import InMemoryMetadata

HARBOUR = SpaceAccess("spaces-1", anonymous_pull=False)
OPEN = SpaceAccess("spaces-2", anonymous_pull=True)
SPACES = {space.id: space for space in (HARBOUR, OPEN)}
APP = RepositoryName.parse("spaces-1/app")
PUBLIC = RepositoryName.parse("spaces-2/public")
PASSWORD = "correct horse battery"
ROLES = {"rhea": "reader", "wade": "writer", "ada": "admin"}


def basic(username: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{secret}".encode()).decode()


async def space_access(space_id: str) -> SpaceAccess | None:
    return SPACES.get(space_id)


class Site:
    def __init__(self) -> None:
        self.metadata = InMemoryMetadata()
        self.accounts = self.metadata.accounts
        self.access = AccessControl(
            self.metadata.accounts,
            TokenSigner(b"s" * 32),
            public_url="https://registry.test",
            cache_ttl=300.0,
            token_ttl=300,
        )

    async def user(self, username: str, **roles: str) -> Principal:
        """A user with ``PASSWORD`` and a role in each space named, signed in with it."""
        await self.accounts.create_user(username, hash_password(PASSWORD))
        for space, role in roles.items():
            await self.accounts.set_membership(space.replace("_", "-"), username, role)
        return await self.access.authenticate(basic(username, PASSWORD))

    async def key(self, username: str) -> api_keys.ApiKey:
        key = api_keys.new_key()
        await self.accounts.create_api_key(key.id, username, "ci", key.secret_hash)
        return key


@pytest.fixture
def site() -> Site:
    return Site()


async def test_a_password_signs_in_and_a_wrong_one_or_an_unknown_user_does_not(
    site: Site,
) -> None:
    principal = await site.user("rhea")
    user = await site.accounts.get_user("rhea")
    assert user is not None
    assert (principal.username, principal.credential, principal.epoch) == (
        "rhea",
        "password",
        user["epoch"],
    )

    for username, secret in [("rhea", "wrong horse battery"), ("nobody", PASSWORD)]:
        with pytest.raises(AuthenticationRequired):
            await site.access.authenticate(basic(username, secret))


async def test_an_api_key_signs_in_only_as_its_owner(site: Site) -> None:
    await site.user("rhea")
    await site.user("wade")
    key = await site.key("rhea")

    principal = await site.access.authenticate(basic("rhea", key.text))

    assert (principal.username, principal.credential) == ("rhea", key_credential(key.id))
    with pytest.raises(AuthenticationRequired):
        await site.access.authenticate(basic("wade", key.text))
    forged = api_keys.ApiKey(key.id, api_keys.new_key().secret)
    with pytest.raises(AuthenticationRequired):
        await site.access.authenticate(basic("rhea", forged.text))


async def test_a_reader_pulls_but_neither_pushes_nor_deletes(site: Site) -> None:
    reader = await site.user("rhea", spaces_1="reader")

    await site.access.authorize(reader, APP, HARBOUR, Action.PULL)
    for action in (Action.PUSH, Action.DELETE):
        with pytest.raises(errors.Denied):
            await site.access.authorize(reader, APP, HARBOUR, action)


async def test_a_writer_pushes_but_does_not_delete(site: Site) -> None:
    writer = await site.user("wade", spaces_1="writer")

    for action in (Action.PULL, Action.PUSH):
        await site.access.authorize(writer, APP, HARBOUR, action)
    with pytest.raises(errors.Denied):
        await site.access.authorize(writer, APP, HARBOUR, Action.DELETE)


async def test_only_an_admin_deletes_and_manages_the_space(site: Site) -> None:
    principals = {name: await site.user(name, spaces_1=role) for name, role in ROLES.items()}
    manage = [ScopeRequest("space", HARBOUR.id, ("manage", "write", "read"))]

    await site.access.authorize(principals["ada"], APP, HARBOUR, Action.DELETE)
    granted = {
        name: (await site.access.issue_token(p, manage, space_access)).access
        for name, p in principals.items()
    }

    assert [a["actions"] for a in granted["ada"]] == [["read", "write", "manage"]]
    assert [a["actions"] for a in granted["wade"]] == [["read", "write"]]
    assert [a["actions"] for a in granted["rhea"]] == [["read"]]


async def test_a_role_in_one_space_grants_nothing_in_another(site: Site) -> None:
    admin = await site.user("ada", spaces_2="admin")
    stranger = await site.user("sam")

    for principal in (admin, stranger):
        with pytest.raises(errors.Denied):
            await site.access.authorize(principal, APP, HARBOUR, Action.PULL)
    assert await site.access.visible_spaces(admin) == frozenset({"spaces-2"})
    assert await site.access.visible_spaces(stranger) == frozenset()


async def test_anonymous_callers_pull_only_where_the_space_allows_and_are_asked_to_sign_in(
    site: Site,
) -> None:
    await site.access.authorize(ANONYMOUS, PUBLIC, OPEN, Action.PULL)

    with pytest.raises(AuthenticationRequired) as push:
        await site.access.authorize(ANONYMOUS, PUBLIC, OPEN, Action.PUSH)
    with pytest.raises(AuthenticationRequired) as pull:
        await site.access.authorize(ANONYMOUS, APP, HARBOUR, Action.PULL)

    assert push.value.scope == "repository:spaces-2/public:pull,push"
    assert pull.value.scope == "repository:spaces-1/app:pull"


async def test_a_space_that_does_not_exist_is_named_only_to_its_members(site: Site) -> None:
    gone = RepositoryName.parse("spaces-9/app")
    member = await site.user("ada", spaces_9="admin")
    stranger = await site.user("sam", spaces_1="admin")

    with pytest.raises(errors.NameUnknown):
        await site.access.authorize(member, gone, None, Action.PUSH)
    with pytest.raises(errors.Denied):
        await site.access.authorize(stranger, gone, None, Action.PUSH)


async def test_a_revoked_key_stops_working_once_the_grants_are_forgotten(site: Site) -> None:
    await site.user("rhea", spaces_1="reader")
    key = await site.key("rhea")
    header = basic("rhea", key.text)
    await site.access.authenticate(header)

    assert await site.accounts.delete_api_key("rhea", key.id)
    # Until then this instance answers from what it remembers (at most ``cache_ttl``).
    await site.access.authenticate(header)
    site.access.forget("rhea")

    with pytest.raises(AuthenticationRequired):
        await site.access.authenticate(header)


async def test_a_changed_password_stops_the_old_one_and_its_tokens(site: Site) -> None:
    reader = await site.user("rhea", spaces_1="reader")
    token = await site.access.issue_token(
        reader, [ScopeRequest("repository", APP.full, ("pull",))], space_access
    )

    await site.accounts.set_password("rhea", hash_password("a brand new password"))
    site.access.forget("rhea")

    with pytest.raises(AuthenticationRequired):
        await site.access.authenticate(basic("rhea", PASSWORD))
    with pytest.raises(AuthenticationRequired):
        await site.access.authenticate(f"Bearer {token.token}")
    await site.access.authenticate(basic("rhea", "a brand new password"))


async def test_a_removed_membership_stops_access_once_the_grants_are_forgotten(
    site: Site,
) -> None:
    writer = await site.user("wade", spaces_1="writer")
    await site.access.authorize(writer, APP, HARBOUR, Action.PUSH)

    await site.accounts.delete_membership("spaces-1", "wade")
    site.access.forget("wade")

    with pytest.raises(errors.Denied):
        await site.access.authorize(writer, APP, HARBOUR, Action.PULL)


async def test_a_token_grants_only_the_scopes_asked_for_that_the_role_allows(site: Site) -> None:
    reader = await site.user("rhea", spaces_1="reader")
    asked = [ScopeRequest("repository", APP.full, ("pull", "push", "delete"))]

    issued = await site.access.issue_token(reader, asked, space_access)
    bearer = await site.access.authenticate(f"Bearer {issued.token}")

    assert [a["actions"] for a in issued.access] == [["pull"]]
    await site.access.authorize(bearer, APP, HARBOUR, Action.PULL)
    with pytest.raises(errors.Denied):
        await site.access.authorize(bearer, APP, HARBOUR, Action.PUSH)
    with pytest.raises(InsufficientScope):
        await site.access.authorize(
            bearer, RepositoryName.parse("spaces-1/other"), HARBOUR, Action.PULL
        )


async def test_a_build_credential_and_its_tokens_are_confined_to_their_space(
    site: Site,
) -> None:
    admin = await site.user("ada", spaces_1="admin", spaces_2="admin")
    issued = await site.access.issue_build_credential(admin, HARBOUR.id, 600)

    build = await site.access.authenticate(basic("ada", issued.token))
    everything = [ScopeRequest("repository", name.full, ("*",)) for name in (APP, PUBLIC)]
    token = await site.access.issue_token(build, everything, space_access)
    bearer = await site.access.authenticate(f"Bearer {token.token}")

    for principal in (build, bearer):
        assert principal.space == HARBOUR.id
        # At most a writer in its own space, whatever the account's role there.
        await site.access.authorize(principal, APP, HARBOUR, Action.PUSH)
        with pytest.raises(errors.Denied):
            await site.access.authorize(principal, APP, HARBOUR, Action.DELETE)
        # Elsewhere, only what anybody may do: pull from a space open to anonymous pulls.
        with pytest.raises(errors.Denied):
            await site.access.authorize(principal, PUBLIC, OPEN, Action.PUSH)
        assert await site.access.visible_spaces(principal) == frozenset({HARBOUR.id})
    assert {(a["name"], tuple(a["actions"])) for a in token.access} == {
        (APP.full, ("pull", "push")),
        (PUBLIC.full, ("pull",)),
    }


async def test_a_build_credential_dies_with_the_password_it_was_issued_under(site: Site) -> None:
    writer = await site.user("wade", spaces_1="writer")
    issued = await site.access.issue_build_credential(writer, HARBOUR.id, 600)

    await site.accounts.set_password("wade", hash_password("rotated password"))
    site.access.forget("wade")

    with pytest.raises(AuthenticationRequired):
        await site.access.authenticate(basic("wade", issued.token))
