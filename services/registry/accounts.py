"""The accounts model: users, their API keys and their roles in spaces.

Every change to who may do what ends this instance's cached grants of the account at once
(``AccessControl.forget``); other instances follow within the cache TTL. A key's secret is
returned once, when it is created; only its SHA-256 is kept.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from services.registry.bootstrap import ADMIN
from services.registry.identity import api_keys
from services.registry.identity.access import AccessControl
from services.registry.identity.passwords import MAX_LENGTH, MIN_LENGTH, hash_password
from services.registry.identity.roles import Role
from services.registry.management.errors import Conflict, Invalid, NotFound
from shared.metadata.accounts import Account
from shared.metadata.connection import Document
from shared.metadata.ports import Metadata

MAX_KEYS_PER_USER = 100


def checked_password(value: object) -> str:
    if not isinstance(value, str) or not MIN_LENGTH <= len(value) <= MAX_LENGTH:
        raise Invalid(f"password must be a string of {MIN_LENGTH} to {MAX_LENGTH} characters")
    return value


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new API key: its stored record and the key itself, which is never shown again."""

    record: Document
    text: str


class Accounts:
    def __init__(self, metadata: Metadata, access: AccessControl) -> None:
        self.accounts = metadata.accounts
        self.access = access

    # users ------------------------------------------------------------------------------------

    async def users(self) -> list[Document]:
        return await self.accounts.list_users()

    async def user(self, username: str) -> Document:
        doc = await self.accounts.get_user(username)
        if doc is None:
            raise NotFound(f"user {username} does not exist")
        return doc

    async def account(self, username: str) -> Account:
        """The user with its roles by space."""
        account = await self.accounts.get_account(username)
        if account is None:
            raise NotFound(f"user {username} does not exist")
        return account

    async def create_user(self, username: str, password: str, *, superuser: bool) -> Document:
        password_hash = await asyncio.to_thread(hash_password, password)
        if not await self.accounts.create_user(username, password_hash, superuser=superuser):
            raise Conflict(f"user {username} already exists")
        return await self.user(username)

    async def change_password(self, username: str, password: object) -> Document:
        """Set a new password; every token and session of the old one ends with it.

        ``password`` is the value as sent: a service account has no password to change, and
        says so (409) before the value is judged."""
        if (await self.user(username)).get("service"):
            raise Conflict(f"{username} is a service account: it signs in with API keys only")
        password_hash = await asyncio.to_thread(hash_password, checked_password(password))
        if not await self.accounts.set_password(username, password_hash):
            raise NotFound(f"user {username} does not exist")
        self.access.forget(username)
        return await self.user(username)

    async def delete_user(self, username: str, *, by: str | None) -> None:
        """Delete a user and its keys; not the caller ``by`` itself, a service account or
        the built-in superuser, any of which would lock someone or something out."""
        doc = await self.user(username)
        if username == by:
            raise Conflict("you cannot delete your own account")
        if doc.get("service"):
            raise Conflict(f"{username} is a service account")
        if username == ADMIN:
            raise Conflict(f"{ADMIN} is the built-in superuser; it cannot be deleted")
        await self.accounts.delete_user(username)
        self.access.forget(username)

    # API keys ---------------------------------------------------------------------------------

    async def api_keys(self, username: str) -> list[Document]:
        await self.user(username)
        return await self.accounts.list_api_keys(username)

    async def create_api_key(self, username: str, name: str) -> CreatedKey:
        if (await self.user(username)).get("service"):
            # A service account holds only the key its service's settings name: one made here
            # would act in every space, and could never be revoked (see revoke_api_key).
            raise Conflict(
                f"{username} is a service account: its key comes from its service's settings"
            )
        if await self.accounts.count_api_keys(username) >= MAX_KEYS_PER_USER:
            raise Conflict(f"a user has at most {MAX_KEYS_PER_USER} API keys; delete one first")
        key = api_keys.new_key()
        record = await self.accounts.create_api_key(key.id, username, name, key.secret_hash)
        self.access.forget(username)
        return CreatedKey(record, key.text)

    async def revoke_api_key(self, username: str, key_id: str) -> None:
        """The key stops working at once here and within the cache TTL elsewhere."""
        if (await self.user(username)).get("service"):
            # Its key is the service's configuration (SPACEDOCK_BUILDER_KEY, ...): revoked
            # here, builds or retention would stop until a restart brought it back.
            raise Conflict(
                f"{username} is a service account: its key comes from its service's settings; "
                "rotate it there (the registry registers the new one at start)"
            )
        if not await self.accounts.delete_api_key(username, key_id):
            raise NotFound(f"API key {key_id[:40]} does not exist")
        self.access.forget(username)

    # memberships ------------------------------------------------------------------------------

    async def members(self, space_id: str) -> list[Document]:
        return await self.accounts.list_memberships(space_id)

    async def set_member(self, space_id: str, username: str, role: Role) -> bool:
        """Give ``username`` ``role`` in the space; True when it had no role there before."""
        if await self.accounts.get_user(username) is None:
            raise NotFound(f"user {username} does not exist")
        created = await self.accounts.set_membership(space_id, username, role.label)
        self.access.forget(username)
        return created

    async def remove_member(self, space_id: str, username: str) -> None:
        if not await self.accounts.delete_membership(space_id, username):
            raise NotFound(f"{username} is not a member of {space_id}")
        self.access.forget(username)
