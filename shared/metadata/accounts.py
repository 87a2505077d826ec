"""Accounts: users (people and service accounts), memberships of spaces, API keys, and the
key that signs registry tokens.

- ``users``       ``{_id: username, password_hash, superuser, service, global_role, epoch,
                  created_at}``; ``epoch`` grows with every password change
- ``memberships`` ``{_id: "<space>/<username>", space, username, role, created_at}``
- ``api_keys``    ``{_id: key id, username, name, hash, created_at}``: ``hash`` is the SHA-256
                  of the secret; the secret itself is never stored
- ``secrets``     ``{_id: "token-signing-key", key}``
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from bson import Binary
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from shared.metadata.connection import Document, Session, Transaction, delete_if

SIGNING_KEY_ID = "token-signing-key"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class Account:
    """A user with what access decisions need: roles by space and live API key ids."""

    user: Document
    memberships: dict[str, str] = field(default_factory=dict)
    api_keys: frozenset[str] = frozenset()


class AccountStore:
    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.db = db
        self._transaction = transaction

    async def ensure_indexes(self) -> None:
        await self.db.memberships.create_index([("username", ASCENDING)])
        await self.db.memberships.create_index([("space", ASCENDING), ("username", ASCENDING)])
        await self.db.api_keys.create_index([("username", ASCENDING)])

    async def signing_key(self) -> bytes:
        """The token signing key every instance shares, created by the first to ask."""
        await self.db.secrets.update_one(
            {"_id": SIGNING_KEY_ID},
            {"$setOnInsert": {"key": Binary(secrets.token_bytes(32)), "created_at": _now()}},
            upsert=True,
        )
        doc = await self.db.secrets.find_one({"_id": SIGNING_KEY_ID})
        assert doc is not None
        return bytes(doc["key"])

    # users ----------------------------------------------------------------------------------

    async def get_user(self, username: str) -> Document | None:
        return await self.db.users.find_one({"_id": username})

    async def get_account(self, username: str) -> Account | None:
        user = await self.get_user(username)
        if user is None:
            return None
        memberships = {
            doc["space"]: doc["role"]
            async for doc in self.db.memberships.find({"username": username})
        }
        keys = frozenset(
            [doc["_id"] async for doc in self.db.api_keys.find({"username": username}, {"_id": 1})]
        )
        return Account(user, memberships, keys)

    async def list_users(self) -> list[Document]:
        return [doc async for doc in self.db.users.find({}).sort("_id", ASCENDING)]

    async def create_user(
        self,
        username: str,
        password_hash: str | None,
        *,
        superuser: bool = False,
        service: str | None = None,
        global_role: str | None = None,
    ) -> bool:
        """Insert the user unless it exists; True when this call created it."""
        fields: Document = {
            "superuser": superuser,
            # Random, not 0: tokens of a deleted user never fit a new one of the same name.
            "epoch": secrets.randbelow(2**62),
            "created_at": _now(),
        }
        if password_hash is not None:
            fields["password_hash"] = password_hash
        if service is not None:
            fields["service"] = service
        if global_role is not None:
            fields["global_role"] = global_role
        result = await self.db.users.update_one(
            {"_id": username}, {"$setOnInsert": fields}, upsert=True
        )
        return result.upserted_id is not None

    async def set_password(self, username: str, password_hash: str) -> bool:
        """Replace the password; every token and cached check of the old one stops working."""
        result = await self.db.users.update_one(
            {"_id": username}, {"$set": {"password_hash": password_hash}, "$inc": {"epoch": 1}}
        )
        return result.matched_count == 1

    async def make_superuser(self, username: str) -> None:
        await self.db.users.update_one({"_id": username}, {"$set": {"superuser": True}})

    async def delete_user(self, username: str) -> bool:
        """Remove the user with its keys and memberships, all or nothing: a user created
        later under the same name must not inherit any of them."""

        async def delete(session: AsyncClientSession) -> bool:
            result = await self.db.users.delete_one({"_id": username}, session=session)
            await self.db.api_keys.delete_many({"username": username}, session=session)
            await self.db.memberships.delete_many({"username": username}, session=session)
            return result.deleted_count == 1

        return bool(await self._transaction(delete))

    # memberships ----------------------------------------------------------------------------

    async def set_membership(self, space: str, username: str, role: str) -> bool:
        """Give ``username`` ``role`` in ``space``; True when the membership is new."""
        before = await self.db.memberships.find_one_and_update(
            {"_id": f"{space}/{username}"},
            {
                "$set": {"role": role, "space": space, "username": username},
                "$setOnInsert": {"created_at": _now()},
            },
            upsert=True,
            return_document=ReturnDocument.BEFORE,
        )
        return before is None

    async def delete_membership(self, space: str, username: str) -> bool:
        result = await self.db.memberships.delete_one({"_id": f"{space}/{username}"})
        return result.deleted_count == 1

    async def list_memberships(self, space: str) -> list[Document]:
        cursor = self.db.memberships.find({"space": space}).sort("username", ASCENDING)
        return [doc async for doc in cursor]

    # API keys -------------------------------------------------------------------------------

    async def create_api_key(
        self, key_id: str, username: str, name: str, secret_hash: str
    ) -> Document:
        doc = {
            "_id": key_id,
            "username": username,
            "name": name,
            "hash": secret_hash,
            "created_at": _now(),
        }
        await self.db.api_keys.insert_one(doc)
        return doc

    async def put_api_key(self, key_id: str, username: str, name: str, secret_hash: str) -> None:
        """Create or replace a key of a known id (a service account's key from config)."""
        await self.db.api_keys.update_one(
            {"_id": key_id},
            {
                "$set": {"username": username, "name": name, "hash": secret_hash},
                "$setOnInsert": {"created_at": _now()},
            },
            upsert=True,
        )

    async def revoke_other_keys(self, username: str, key_id: str) -> int:
        """Delete every key of ``username`` but ``key_id``; how many went."""
        # index: api_keys username_1
        others = [
            doc["_id"]
            async for doc in self.db.api_keys.find({"username": username}, {"_id": 1})
            if doc["_id"] != key_id
        ]
        if not others:
            return 0
        # index: _id_
        result = await self.db.api_keys.delete_many({"_id": {"$in": others}})
        return result.deleted_count

    async def get_api_key(self, key_id: str) -> Document | None:
        return await self.db.api_keys.find_one({"_id": key_id})

    async def list_api_keys(self, username: str) -> list[Document]:
        cursor = self.db.api_keys.find({"username": username}, {"hash": 0})
        return [doc async for doc in cursor.sort("created_at", ASCENDING)]

    async def count_api_keys(self, username: str) -> int:
        return await self.db.api_keys.count_documents({"username": username})

    async def delete_api_key(self, username: str, key_id: str) -> bool:
        """Revoke ``username``'s key ``key_id``; False when it has no such key (another user's
        id included). Found by _id alone, its owner checked here: a filter naming both made
        the embedded server scan every key."""

        async def delete(session: Session) -> bool:
            return await delete_if(
                self.db.api_keys, key_id, lambda doc: doc.get("username") == username, session
            )

        return bool(await self._transaction(delete))
