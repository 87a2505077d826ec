"""``spacedock feed``: a space's repositories and versions as a deployment server sees them."""

from __future__ import annotations

import argparse
from typing import Any

from spacedock.verbs.client import path, repository_segments
from spacedock.verbs.command import Commands, Session, add_group, add_verb

PAGE = 500  # the most the API gives in one page


def register(commands: Commands) -> None:
    feed = add_group(commands, "feed", "the feed view: repositories and versions")
    repositories = add_verb(
        feed, "repositories", _repositories, "every repository of a space (all pages)"
    )
    repositories.add_argument("space", help="the space id, e.g. spaces-1")
    repositories.add_argument("-q", "--query", help="case-insensitive part of the name")
    versions = add_verb(feed, "versions", _versions, "a repository's versions, newest first")
    versions.add_argument("space", help="the space id, e.g. spaces-1")
    versions.add_argument("repository", help="the name inside the space, e.g. mywebapp")
    versions.add_argument(
        "--no-prerelease", action="store_true", help="leave out versions such as 1.2.0-beta"
    )


def _repositories(session: Session, args: argparse.Namespace) -> Any:
    repositories: list[Any] = []
    cursor = None
    while True:
        query = {"limit": str(PAGE), **({"q": args.query} if args.query else {})}
        if cursor:
            query["cursor"] = cursor
        where = path("spaces", args.space, "repositories")
        page = session.api.call("GET", where, query=query)
        repositories += page["repositories"]
        cursor = page["next_cursor"]
        if not cursor:
            return {"repositories": repositories}


def _versions(session: Session, args: argparse.Namespace) -> Any:
    query = {"prerelease": "false"} if args.no_prerelease else {}
    where = path(
        "spaces", args.space, "repositories", *repository_segments(args.repository), "versions"
    )
    return session.api.call("GET", where, query=query)
