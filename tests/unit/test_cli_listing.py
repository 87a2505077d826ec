"""``builds list`` pages: it follows ``next_cursor`` until ``--limit`` builds are in hand or
the last page came, asking each page for no more than it still needs."""

from __future__ import annotations

import io
from typing import Any

import pytest

from spacedock.cli import build_parser
from spacedock.verbs.client import Api
from spacedock.verbs.command import Session

BUILDS = [{"build_id": f"build-{n}"} for n in range(9, 0, -1)]  # newest first


def paged_session(monkeypatch: pytest.MonkeyPatch, asked: list[dict[str, str]]) -> Session:
    """A session whose API serves BUILDS three a page at most, recording each query."""
    api = Api("http://registry.invalid", "admin", "secret")

    def call(method: str, where: str, body: Any = None, query: Any = None) -> Any:
        assert (method, where) == ("GET", "/spaces/spaces-1/builds")
        asked.append(dict(query))
        start = int(query.get("cursor", "0"))
        end = start + min(3, int(query["limit"]))
        return {
            "builds": BUILDS[start:end],
            "next_cursor": str(end) if end < len(BUILDS) else None,
        }

    monkeypatch.setattr(api, "call", call)
    return Session(api, {}, io.StringIO(), io.StringIO(), None, stderr_is_terminal=False)


@pytest.mark.parametrize(("limit", "pages"), [("2", 1), ("7", 3), ("50", 3)])
def test_pages_are_followed_up_to_the_limit(
    monkeypatch: pytest.MonkeyPatch, limit: str, pages: int
) -> None:
    asked: list[dict[str, str]] = []
    session = paged_session(monkeypatch, asked)
    args = build_parser().parse_args(
        ["builds", "list", "spaces-1", "--limit", limit, "--status", "failed"]
    )
    listed = args.run(session, args)
    assert listed["builds"] == BUILDS[: int(limit)]
    assert len(asked) == pages
    assert all(query["status"] == "failed" for query in asked)
    assert int(asked[-1]["limit"]) == min(int(limit), 50) - 3 * (pages - 1)
