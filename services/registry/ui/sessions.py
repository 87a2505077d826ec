"""Browser sessions: signing in creates one, each request resolves it, signing out ends it.

The cookie holds a random 256-bit id; the record (``shared.metadata.sessions``) is found by
its SHA-256. A session lasts at most ``absolute`` from sign-in and ends after ``idle``
without a request. Each request also checks the account behind it as the API checks a
credential (``AccessControl.grants``): a deleted user, a changed password or a revoked API key
ends the session, and roles are read afresh, so a demotion shows at the next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from services.registry.identity.access import PASSWORD_CREDENTIAL, AccessControl, Principal
from services.registry.identity.roles import Grants
from services.registry.ui.security import new_secret
from shared.metadata.connection import utcnow
from shared.metadata.sessions import SessionRecord, SessionRepository

ABSOLUTE_LIFETIME = dt.timedelta(hours=12)
IDLE_LIFETIME = dt.timedelta(hours=1)
# last_seen is written at most this often, so browsing is not a database write per page.
TOUCH_INTERVAL = dt.timedelta(minutes=1)
# The live sessions one account may hold (browsers, devices); the oldest goes first.
SESSIONS_PER_ACCOUNT = 10


@dataclass(frozen=True, slots=True)
class Lifetimes:
    absolute: dt.timedelta = ABSOLUTE_LIFETIME
    idle: dt.timedelta = IDLE_LIFETIME

    def expiry(self, absolute_expiry: dt.datetime, last_seen: dt.datetime) -> dt.datetime:
        """When a session seen last at ``last_seen`` is over."""
        return min(absolute_expiry, last_seen + self.idle)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session: the caller as the API's checks know callers, and its CSRF token."""

    principal: Principal
    csrf_token: str
    id_hash: str


def hash_session_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def credential_live(principal: Principal, grants: Grants | None) -> bool:
    """Whether the credential a session was opened with still stands: the account exists,
    its password has not changed since, or the API key is not revoked."""
    if grants is None:
        return False
    if principal.credential == PASSWORD_CREDENTIAL:
        return principal.epoch == grants.epoch
    return principal.credential.removeprefix("key:") in grants.api_keys


class BrowserSessions:
    def __init__(
        self, records: SessionRepository, access: AccessControl, lifetimes: Lifetimes
    ) -> None:
        self.records = records
        self.access = access
        self.lifetimes = lifetimes

    async def start(self, principal: Principal) -> str:
        """A new session for ``principal``; the id to put in the cookie."""
        assert principal.username is not None
        await self.records.clear_expired(utcnow())
        session_id = new_secret()
        now = utcnow()
        absolute_expiry = now + self.lifetimes.absolute
        record = SessionRecord(
            id_hash=hash_session_id(session_id),
            username=principal.username,
            credential=principal.credential,
            epoch=principal.epoch,
            csrf_token=new_secret(),
            created_at=now,
            last_seen=now,
            absolute_expiry=absolute_expiry,
            expires_at=self.lifetimes.expiry(absolute_expiry, now),
        )
        await self.records.add(record)
        # Signing in again and again (a script, a stolen API key) cannot pile up sessions: the
        # oldest of an account's go, as a new browser would sign another one out.
        await self.records.keep_newest(principal.username, SESSIONS_PER_ACCOUNT)
        return session_id

    async def resolve(self, session_id: str | None) -> SignedIn | None:
        """The live session the cookie names, or None (no cookie, unknown, over, or the
        account or credential behind it gone); a session found over is deleted."""
        if not session_id:
            return None
        id_hash = hash_session_id(session_id)
        record = await self.records.get(id_hash)
        if record is None:
            return None
        now = utcnow()
        signed_in = _signed_in(record)
        grants = await self.access.grants(record.username)
        if record.expires_at <= now or not credential_live(signed_in.principal, grants):
            await self.records.delete(id_hash)
            return None
        if now - record.last_seen >= TOUCH_INTERVAL:
            await self.records.touch(
                id_hash, now, self.lifetimes.expiry(record.absolute_expiry, now)
            )
        return signed_in

    async def end(self, session: SignedIn) -> None:
        await self.records.delete(session.id_hash)

    async def first_use_of_form(self, session: SignedIn, nonce: str) -> bool:
        """Whether ``session`` sends the one-time form ``nonce`` for the first time (on any
        instance: it is noted in the session's document)."""
        return await self.records.first_use_of_form(session.id_hash, nonce)


def _signed_in(record: SessionRecord) -> SignedIn:
    principal = Principal(record.username, record.credential, record.epoch)
    return SignedIn(principal, record.csrf_token, record.id_hash)
