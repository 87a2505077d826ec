"""A space's builds, one build with its log, and cancelling one.

Readers see builds; cancelling takes a writer, as in the management API
(``services.registry.management.builds``), and the page offers it only to them and only
while the build can still stop. A build's page follows its log while it runs: the page's
script (``static/build-log.js``) asks ``…/log?after=N`` for the lines after the ``N`` it has,
with the build's status, until the status is final. That endpoint answers JSON, errors
included, since a script reads it, not a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import access_key, builds_key
from services.registry.management.builds import LISTING_KEY_RE
from services.registry.management.errors import ApiError, api_error_body
from services.registry.management.guard import caller, space_with_role
from services.registry.ui.middleware import see_other
from services.registry.ui.render import moment, page
from shared.builds.lifecycle import UNFINISHED, BuildStatus
from shared.metadata.builds import BuildRecord

BUILDS = "/spaces/{space}/builds"
BUILDS_PER_PAGE = 50
STATUSES = tuple(status.value for status in BuildStatus)


@dataclass(frozen=True, slots=True)
class BuildView:
    """A build as its pages show it: the request and result documents read into text once,
    tolerating what an older or refused build lacks (a refused request recorded none)."""

    build: BuildRecord
    sdi: str | None
    deployment: str | None
    requested_image: str | None  # <space>/<repository>:<tag>, as asked for
    repository: str | None  # inside the space: where the pushed manifest's page is
    reference: str | None  # what was pushed: <host>/<repository>:<tag>@<digest>
    digest: str | None
    error: str | None  # "<code>: <message>"

    @property
    def status(self) -> str:
        return self.build.status.value

    @property
    def final(self) -> bool:
        return self.build.status.finished

    @property
    def image(self) -> str | None:
        """What a row of the listing names: the pushed reference, else the request's."""
        return self.reference or self.requested_image

    @property
    def manifest_path(self) -> str | None:
        """The page of the pushed manifest (a repository name and a digest need no
        escaping in a path: their characters are checked where they are made)."""
        if self.repository is None or self.digest is None:
            return None
        return f"/spaces/{self.build.space}/repositories/{self.repository}/manifests/{self.digest}"

    @property
    def duration(self) -> str | None:
        started, finished = self.build.started_at, self.build.finished_at
        if started is None or finished is None:
            return None
        return f"{(finished - started).total_seconds():.1f} s"


def build_view(build: BuildRecord) -> BuildView:
    request, result = build.request or {}, build.result or {}
    sdi = _object(request, "sdi")
    deployment = _object(request, "deployment")
    image = _object(request, "image")
    sdi_text = _joined(_text(sdi, "id"), _text(sdi, "version"))
    environment = _text(deployment, "environment")
    deployment_text = _text(deployment, "id")
    if deployment_text and environment:
        deployment_text = f"{deployment_text} ({environment})"
    repository, tag = _text(image, "repository"), _text(image, "tag")
    requested = f"{build.space}/{repository}:{tag}" if repository and tag else None
    error = build.error or {}
    code, message = _text(error, "code"), _text(error, "message")
    return BuildView(
        build=build,
        sdi=sdi_text or None,
        deployment=deployment_text,
        requested_image=requested,
        repository=repository,
        reference=_text(result, "reference"),
        digest=_text(result, "digest"),
        error=f"{code}: {message}" if code and message else (message or code),
    )


async def builds_page(request: web.Request) -> web.Response:
    """The space's builds newest first (those with ``status`` when given), a page at a time
    (``after``: the place of the last build of the page before)."""
    space = await space_with_role(request, Role.READER)
    status = _status_filter(request.query.get("status"))
    after = request.query.get("after") or None
    if after is not None and not LISTING_KEY_RE.fullmatch(after):
        after = None  # not a place this page gave: start from the newest
    listed = await request.app[builds_key].page(
        space.id, status=status, after=after, limit=BUILDS_PER_PAGE
    )
    return page(
        request,
        "builds.html",
        space=space,
        statuses=STATUSES,
        shown_status=None if status is None else status.value,
        builds=[build_view(build) for build in listed.builds],
        next_after=listed.next_before,
    )


async def build_page(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.READER)
    build = await request.app[builds_key].get(space.id, request.match_info["build_id"])
    role = await request.app[access_key].role_in(caller(request), space.id)
    may_cancel = role is not None and role >= Role.WRITER
    return page(
        request,
        "build.html",
        space=space,
        view=build_view(build),
        can_cancel=may_cancel and build.status in UNFINISHED and not build.cancel_requested,
        log_capped=build.log_lines > len(build.logs),
    )


async def build_log(request: web.Request) -> web.Response:
    """``{status, final, lines, next, ...}``: the log lines after the first ``after``, and
    what the page shows once the build has ended. JSON errors, for the page's script."""
    try:
        after = _after(request.query.get("after", "0"))
        space = await space_with_role(request, Role.READER)
        build = await request.app[builds_key].get(space.id, request.match_info["build_id"])
    except ApiError as exc:
        return web.json_response(
            api_error_body(exc.code, exc.message), status=exc.status, headers=_NO_STORE
        )
    return web.json_response(log_json(build_view(build), after), headers=_NO_STORE)


def log_json(view: BuildView, after: int) -> dict[str, Any]:
    """``after`` counts every line the page has shown; the log keeps only its last
    ``MAX_LOG_LINES``, so a page that fell behind further than that gets what is kept."""
    build = view.build
    first_kept = build.log_lines - len(build.logs)
    lines = list(build.logs[max(0, after - first_kept) :])
    return {
        "status": view.status,
        "final": view.final,
        "lines": lines,
        "next": build.log_lines,
        "finished_at": _moment(view.build.finished_at),
        "duration": view.duration,
        "reference": view.reference,
        "manifest": view.manifest_path,
        "error": view.error,
    }


async def cancel(request: web.Request) -> web.Response:
    """A queued build is cancelled at once; a running one when its builder next checks in
    (the page shows it as cancelling until then)."""
    space = await space_with_role(request, Role.WRITER)
    build_id = request.match_info["build_id"]
    await request.app[builds_key].cancel(space.id, build_id)
    return see_other(f"/spaces/{space.id}/builds/{build_id}")


_NO_STORE = {"Cache-Control": "no-store"}
# A count of log lines has no more digits than this (no log holds 10^12 lines).
MAX_AFTER_DIGITS = 12


def _after(raw: str) -> int:
    """How many log lines the page already has: a whole number."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_AFTER_DIGITS:
        raise ApiError("after must be a whole number of lines")
    return int(raw)


def _status_filter(raw: str | None) -> BuildStatus | None:
    """The status to list; none (every build) when absent or not a status."""
    return BuildStatus(raw) if raw in STATUSES else None


def _object(document: dict[str, Any], name: str) -> dict[str, Any]:
    value = document.get(name)
    return value if isinstance(value, dict) else {}


def _text(document: dict[str, Any], name: str) -> str | None:
    value = document.get(name)
    return value if isinstance(value, str) and value else None


def _joined(*parts: str | None) -> str:
    return " ".join(part for part in parts if part)


def _moment(when: dt.datetime | None) -> str | None:
    return None if when is None else moment(when)


def add_routes(router: web.UrlDispatcher) -> None:
    """The builds pages, under the space's page (``/spaces/{space}``)."""
    router.add_get(BUILDS, builds_page)
    router.add_get(f"{BUILDS}/{{build_id}}", build_page)
    router.add_get(f"{BUILDS}/{{build_id}}/log", build_log)
    router.add_post(f"{BUILDS}/{{build_id}}/cancel", cancel)
