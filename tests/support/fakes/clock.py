"""A clock that moves only when a test moves it (leases that lapse without waiting)."""

from __future__ import annotations

import datetime as dt


class FakeClock:
    def __init__(self, start: dt.datetime | None = None) -> None:
        self.moment = start or dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.moment

    def advance(self, by: dt.timedelta) -> None:
        self.moment += by
