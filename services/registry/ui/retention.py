"""A space's retention policy: read by its readers; changed, tried (dry run) and run by its
admins, as in the management API (``services.registry.management.retention``).

The form is turned into the API's JSON document and judged by ``RetentionPolicy.parse``, so
the page refuses what the API refuses, with the same message, and saves nothing then.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.registry.identity.roles import Role
from services.registry.keys import access_key, retention_key
from services.registry.management.guard import caller, space_with_role
from services.registry.retention import space_policy
from services.registry.ui.middleware import see_other
from services.registry.ui.render import page
from services.registry.ui.security import Form, text_field
from shared.metadata.spaces import SpaceRecord
from shared.retention import MAX_PATTERN_LENGTH, PolicyInvalid, RetentionPolicy

# A report lists at most this many tags and manifests; its counts and bytes stay exact.
ITEMS_SHOWN = 500
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")
_COUNT_FIELDS = ("keep_last", "retain_days", "untagged_retain_hours", "gc_grace_minutes")
# What a finished run left in the address (numbers only) for the page after it.
_RUN_SUMMARY = ("tags_removed", "manifests_removed", "bytes_freed")


@dataclass(frozen=True, slots=True)
class ReportView:
    """A run's report as the page shows it."""

    dry_run: bool
    tags: list[dict[str, str]]
    manifests: list[dict[str, str]]
    tags_count: int
    manifests_count: int
    blobs_removed: int
    bytes_freed: int


def policy_fields(policy: RetentionPolicy) -> dict[str, str]:
    """The form's values for ``policy``."""
    return {
        "pattern": policy.pattern,
        "keep_last": str(policy.keep_last),
        "retain_days": str(policy.retain_days),
        "untagged_retain_hours": str(policy.untagged_retain_hours),
        "gc_grace_minutes": str(policy.gc_grace_minutes),
    }


def posted_fields(form: Form) -> dict[str, str]:
    fields = {"pattern": text_field(form, "pattern", MAX_PATTERN_LENGTH + 1)}
    fields.update({name: text_field(form, name, 20) for name in _COUNT_FIELDS})
    return fields


def policy_document(fields: dict[str, str]) -> dict[str, Any]:
    """The API's JSON document for the form: a whole number typed in becomes a number, and
    anything else is passed on as the text it is, for the parser to refuse as the API does."""

    def count(name: str) -> int | str:
        value = fields[name].strip()
        return int(value) if _WHOLE_NUMBER.fullmatch(value) else value

    return {
        "deployment_tags": {
            "pattern": fields["pattern"],
            "retain_days": count("retain_days"),
            "keep_last": count("keep_last"),
        },
        "untagged_manifests": {"retain_hours": count("untagged_retain_hours")},
        "gc": {"grace_minutes": count("gc_grace_minutes")},
    }


def report_view(document: dict[str, Any]) -> ReportView:
    return ReportView(
        dry_run=bool(document["dry_run"]),
        tags=document["removed"][:ITEMS_SHOWN],
        manifests=document["manifests"][:ITEMS_SHOWN],
        tags_count=len(document["removed"]),
        manifests_count=int(document["manifests_removed"]),
        blobs_removed=int(document["blobs_removed"]),
        bytes_freed=int(document["bytes_freed"]),
    )


def run_summary(query: Mapping[str, str]) -> dict[str, int] | None:
    """What the last run removed, from the address it redirected to; None when there is
    none or it is not plain numbers."""
    values = [query.get(name, "") for name in _RUN_SUMMARY]
    if not all(value.isascii() and value.isdigit() and len(value) <= 20 for value in values):
        return None
    return dict(zip(_RUN_SUMMARY, map(int, values), strict=True))


async def retention_page(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.READER)
    fields = policy_fields(space_policy(space))
    return await _page(request, space, fields, ran=run_summary(request.query))


async def save_policy(request: web.Request) -> web.Response:
    """Store the posted policy, or show the form again with the API's refusal (422)."""
    space = await space_with_role(request, Role.ADMIN)
    fields = posted_fields(await request.post())
    try:
        policy = RetentionPolicy.parse(policy_document(fields))
    except PolicyInvalid as exc:
        return await _page(request, space, fields, error=str(exc), status=422)
    await request.app[retention_key].set_policy(space.id, policy)
    return see_other(_path(space))


async def dry_run(request: web.Request) -> web.Response:
    """What a run would remove now; nothing changes, so the answer is this page itself."""
    space = await space_with_role(request, Role.ADMIN)
    document = await request.app[retention_key].run(
        space, dry_run=True, actor=caller(request).username
    )
    fields = policy_fields(space_policy(space))
    return await _page(request, space, fields, report=report_view(document))


async def run_now(request: web.Request) -> web.Response:
    space = await space_with_role(request, Role.ADMIN)
    document = await request.app[retention_key].run(
        space, dry_run=False, actor=caller(request).username
    )
    summary = {
        "tags_removed": len(document["removed"]),
        "manifests_removed": document["manifests_removed"],
        "bytes_freed": document["bytes_freed"],
    }
    query = "&".join(f"{name}={int(value)}" for name, value in summary.items())
    return see_other(f"{_path(space)}?{query}")


async def _page(
    request: web.Request,
    space: SpaceRecord,
    fields: dict[str, str],
    *,
    error: str | None = None,
    report: ReportView | None = None,
    ran: dict[str, int] | None = None,
    status: int = 200,
) -> web.Response:
    role = await request.app[access_key].role_in(caller(request), space.id)
    return page(
        request,
        "retention.html",
        status=status,
        space=space,
        fields=fields,
        error=error,
        report=report,
        ran=ran,
        can_manage=role is not None and role >= Role.ADMIN,
        max_pattern_length=MAX_PATTERN_LENGTH,
    )


def _path(space: SpaceRecord) -> str:
    return f"/spaces/{space.id}/retention"


def add_routes(router: web.UrlDispatcher, space: str) -> None:
    """The retention pages under ``space``, the route of a space."""
    router.add_get(f"{space}/retention", retention_page)
    router.add_post(f"{space}/retention", save_policy)
    router.add_post(f"{space}/retention/dry-run", dry_run)
    router.add_post(f"{space}/retention/run", run_now)
