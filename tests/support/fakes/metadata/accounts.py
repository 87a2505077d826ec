"""``AccountStore`` in memory."""

from __future__ import annotations

import copy

from pymongo.errors import DuplicateKeyError

from shared.metadata.accounts import Account
from shared.metadata.connection import Document
from tests.support.fakes.metadata.documents import Clock, Collections


class InMemoryAccounts:
    """``AccountStore``: users, memberships by ``<space>/<username>``, API keys by id; a
    password change moves the user's epoch, and a user goes with their keys and memberships."""

    def __init__(self, data: Collections, now: Clock) -> None:
        self._data = data
        self._now = now
        self._epochs = 0

    async def get_user(self, username: str) -> Document | None:
        return copy.deepcopy(self._data.users.get(username))

    async def get_account(self, username: str) -> Account | None:
        user = await self.get_user(username)
        if user is None:
            return None
        memberships = {
            m["space"]: m["role"]
            for m in self._data.memberships.values()
            if m["username"] == username
        }
        keys = frozenset(k for k, doc in self._data.api_keys.items() if doc["username"] == username)
        return Account(user, memberships, keys)

    async def list_users(self) -> list[Document]:
        return [copy.deepcopy(user) for _, user in sorted(self._data.users.items())]

    async def create_user(
        self,
        username: str,
        password_hash: str | None,
        *,
        superuser: bool = False,
        service: str | None = None,
        global_role: str | None = None,
    ) -> bool:
        if username in self._data.users:
            return False
        # Distinct per user, as the real random epochs are: a token of a deleted user never
        # fits a new one of the same name.
        self._epochs += 1_000
        user: Document = {
            "_id": username,
            "superuser": superuser,
            "epoch": self._epochs,
            "created_at": self._now(),
        }
        if password_hash is not None:
            user["password_hash"] = password_hash
        if service is not None:
            user["service"] = service
        if global_role is not None:
            user["global_role"] = global_role
        self._data.users[username] = user
        return True

    async def set_password(self, username: str, password_hash: str) -> bool:
        user = self._data.users.get(username)
        if user is None:
            return False
        user["password_hash"] = password_hash
        user["epoch"] = user["epoch"] + 1
        return True

    async def delete_user(self, username: str) -> bool:
        found = self._data.users.pop(username, None) is not None
        for keys in (self._data.api_keys, self._data.memberships):
            for key in [k for k, doc in keys.items() if doc["username"] == username]:
                del keys[key]
        return found

    async def set_membership(self, space: str, username: str, role: str) -> bool:
        key = f"{space}/{username}"
        before = self._data.memberships.get(key)
        self._data.memberships[key] = {
            "_id": key,
            "space": space,
            "username": username,
            "role": role,
            "created_at": self._now() if before is None else before["created_at"],
        }
        return before is None

    async def delete_membership(self, space: str, username: str) -> bool:
        return self._data.memberships.pop(f"{space}/{username}", None) is not None

    async def list_memberships(self, space: str) -> list[Document]:
        members = [m for m in self._data.memberships.values() if m["space"] == space]
        return copy.deepcopy(sorted(members, key=lambda m: str(m["username"])))

    async def create_api_key(
        self, key_id: str, username: str, name: str, secret_hash: str
    ) -> Document:
        if key_id in self._data.api_keys:
            raise DuplicateKeyError(key_id)  # as the real insert does
        doc = {
            "_id": key_id,
            "username": username,
            "name": name,
            "hash": secret_hash,
            "created_at": self._now(),
        }
        self._data.api_keys[key_id] = doc
        return copy.deepcopy(doc)

    async def get_api_key(self, key_id: str) -> Document | None:
        return copy.deepcopy(self._data.api_keys.get(key_id))

    async def list_api_keys(self, username: str) -> list[Document]:
        """Without their hashes, oldest first."""
        keys = [
            {field: value for field, value in doc.items() if field != "hash"}
            for doc in self._data.api_keys.values()
            if doc["username"] == username
        ]
        return copy.deepcopy(sorted(keys, key=lambda doc: doc["created_at"]))

    async def count_api_keys(self, username: str) -> int:
        return sum(doc["username"] == username for doc in self._data.api_keys.values())

    async def delete_api_key(self, username: str, key_id: str) -> bool:
        doc = self._data.api_keys.get(key_id)
        if doc is None or doc["username"] != username:
            return False
        del self._data.api_keys[key_id]
        return True
