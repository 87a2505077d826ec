"""Reaper runs: which reaper runs retention for a space, and when it is due again.

``reaper_runs`` ``{_id: space, last_run_at, lease_until, owner, due_at}``: a run is claimed
atomically (a lease), so several reapers never run one space at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.metadata.connection import (
    EPOCH,
    Document,
    Session,
    Transaction,
    earlier,
    update_if,
    utcnow,
)

_NEVER_RUN = {"last_run_at": EPOCH, "lease_until": EPOCH, "owner": None}


class RunRepository:
    def __init__(self, db: AsyncDatabase[Document], transaction: Transaction[Any]) -> None:
        self.db = db
        self._transaction = transaction

    async def claim(
        self,
        space_id: str,
        owner: str,
        every: dt.timedelta,
        debounce: dt.timedelta,
        lease: dt.timedelta,
    ) -> dt.datetime | None:
        """Whether ``owner`` may run retention for the space now, as the moment it claimed
        it (None: not now). It may when no other reaper is running it and either its last run
        is ``every`` ago, or a deployment tag arrived since that run and it is ``debounce``
        ago."""
        # index: _id_
        await self.db.reaper_runs.update_one(
            {"_id": space_id}, {"$setOnInsert": {**_NEVER_RUN, "due_at": EPOCH}}, upsert=True
        )

        async def claim(session: Session) -> dt.datetime | None:
            now = utcnow()

            def due(doc: Document) -> bool:
                last = doc.get("last_run_at")
                due_at = doc.get("due_at")
                tagged_since = isinstance(due_at, dt.datetime) and earlier(last, due_at)
                return earlier(doc.get("lease_until"), now) and (
                    earlier(last, now - every) or (tagged_since and earlier(last, now - debounce))
                )

            claimed = await update_if(
                self.db.reaper_runs,
                space_id,
                due,
                {"$set": {"owner": owner, "lease_until": now + lease}},
                session,
            )
            return None if claimed is None else now

        started: dt.datetime | None = await self._transaction(claim)
        return started

    async def finish(self, space_id: str, owner: str, started: dt.datetime) -> None:
        """The run that started at ``started`` is over: a tag that arrived during it makes
        the space due again."""

        async def finish(session: Session) -> None:
            await update_if(
                self.db.reaper_runs,
                space_id,
                lambda doc: doc.get("owner") == owner,
                {"$set": {"last_run_at": started, "lease_until": utcnow()}},
                session,
            )

        await self._transaction(finish)

    async def mark_due(self, space_id: str) -> None:
        """A deployment tag arrived: the space's retention should run soon."""
        # index: _id_
        await self.db.reaper_runs.update_one(
            {"_id": space_id},
            {"$max": {"due_at": utcnow()}, "$setOnInsert": _NEVER_RUN},
            upsert=True,
        )
