"""``RunRepository`` in memory: the reaper's claims of a space's run."""

from __future__ import annotations

import datetime as dt

from shared.metadata.connection import EPOCH, Document
from tests.support.fakes.metadata.documents import Clock


class InMemoryRuns:
    """``RunRepository``: a space's run is claimed when its lease lapsed and it is due (its
    last run ``every`` ago, or a deployment tag since that run and ``debounce`` ago)."""

    def __init__(self, now: Clock) -> None:
        self.runs: dict[str, Document] = {}
        self._now = now

    async def claim(
        self,
        space_id: str,
        owner: str,
        every: dt.timedelta,
        debounce: dt.timedelta,
        lease: dt.timedelta,
    ) -> dt.datetime | None:
        run = self.runs.setdefault(
            space_id, {"last_run_at": EPOCH, "lease_until": EPOCH, "owner": None, "due_at": EPOCH}
        )
        now = self._now()
        last = run["last_run_at"]
        tagged_since = run["due_at"] > last
        due = last < now - every or (tagged_since and last < now - debounce)
        if run["lease_until"] >= now or not due:
            return None
        run.update(owner=owner, lease_until=now + lease)
        return now

    async def finish(self, space_id: str, owner: str, started: dt.datetime) -> None:
        run = self.runs.get(space_id)
        if run is not None and run["owner"] == owner:
            run.update(last_run_at=started, lease_until=self._now())

    async def mark_due(self, space_id: str) -> None:
        run = self.runs.setdefault(
            space_id, {"last_run_at": EPOCH, "lease_until": EPOCH, "owner": None, "due_at": EPOCH}
        )
        run["due_at"] = max(run["due_at"], self._now())
