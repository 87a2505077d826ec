"""Retention (PRODUCT.md §9), as pure rules: the policy of a space, which deployment tags it
removes, what a kept manifest keeps with it, and the order manifests are removed in. The
reaper and on-demand runs apply them (``shared/retention_run.py``); the registry validates and
stores the policy."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # a manifest: (repository, digest)

DEFAULT_PATTERN = r"^.+-deployments-\d+$"
MAX_PATTERN_LENGTH = 500
MAX_COUNT = 1_000_000
# A century: the cutoff of a run (now - retain_days) stays a date (beyond 2,700 years it is none).
MAX_RETAIN_DAYS = 36_500


class PolicyInvalid(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    pattern: str = DEFAULT_PATTERN
    retain_days: int = 30
    keep_last: int = 10
    untagged_retain_hours: int = 24
    gc_grace_minutes: int = 60

    @property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def counts(self, tag: str) -> bool:
        """Whether ``tag`` is a deployment tag under this policy."""
        return self.compiled.search(tag) is not None

    def document(self) -> dict[str, Any]:
        return {
            "deployment_tags": {
                "pattern": self.pattern,
                "retain_days": self.retain_days,
                "keep_last": self.keep_last,
            },
            "untagged_manifests": {"retain_hours": self.untagged_retain_hours},
            "gc": {"grace_minutes": self.gc_grace_minutes},
        }

    @classmethod
    def parse(cls, body: Any) -> RetentionPolicy:
        """A policy from its JSON document; missing fields keep their defaults."""
        if not isinstance(body, dict):
            raise PolicyInvalid("the policy is a JSON object")
        _only(body, {"deployment_tags", "untagged_manifests", "gc"}, "policy")
        tags = _section(body, "deployment_tags", {"pattern", "retain_days", "keep_last"})
        untagged = _section(body, "untagged_manifests", {"retain_hours"})
        gc = _section(body, "gc", {"grace_minutes"})
        defaults = cls()
        pattern = tags.get("pattern", defaults.pattern)
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_LENGTH:
            raise PolicyInvalid(
                "deployment_tags.pattern must be a regular expression of at most "
                f"{MAX_PATTERN_LENGTH} characters"
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise PolicyInvalid(
                f"deployment_tags.pattern is not a regular expression: {exc}"
            ) from exc
        return cls(
            pattern=pattern,
            retain_days=_count(
                tags, "retain_days", defaults.retain_days, "deployment_tags", MAX_RETAIN_DAYS
            ),
            keep_last=_count(tags, "keep_last", defaults.keep_last, "deployment_tags"),
            untagged_retain_hours=_count(
                untagged, "retain_hours", defaults.untagged_retain_hours, "untagged_manifests"
            ),
            gc_grace_minutes=_count(gc, "grace_minutes", defaults.gc_grace_minutes, "gc"),
        )


def _only(body: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise PolicyInvalid(f"{where}: unknown fields {', '.join(unknown)}")


def _section(body: dict[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    section = body.get(name, {})
    if not isinstance(section, dict):
        raise PolicyInvalid(f"{name} must be an object")
    _only(section, allowed, name)
    return section


def _count(
    section: dict[str, Any], name: str, default: int, where: str, most: int = MAX_COUNT
) -> int:
    value = section.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
        raise PolicyInvalid(f"{where}.{name} must be a whole number from 0 to {most}")
    return value


@dataclass(frozen=True, slots=True)
class TagState:
    repository: str
    tag: str
    digest: str
    pushed_at: dt.datetime
    pinned: bool = False


def tags_to_remove(
    tags: Iterable[TagState], policy: RetentionPolicy, now: dt.datetime
) -> list[TagState]:
    """The deployment tags the policy removes: matching the pattern, older than
    ``retain_days``, outside the newest ``keep_last`` deployment tags of their repository,
    and not pinned. Other tags are never removed."""
    cutoff = now - dt.timedelta(days=policy.retain_days)
    pattern = policy.compiled  # once: a space may hold tens of thousands of tags
    by_repository: dict[str, list[TagState]] = defaultdict(list)
    for tag in tags:
        if pattern.search(tag.tag) is not None:
            by_repository[tag.repository].append(tag)
    removed: list[TagState] = []
    for candidates in by_repository.values():
        newest_first = sorted(candidates, key=lambda t: (t.pushed_at, t.tag), reverse=True)
        for tag in newest_first[policy.keep_last :]:
            if tag.pushed_at < cutoff and not tag.pinned:
                removed.append(tag)
    return sorted(removed, key=lambda t: (t.repository, t.tag))


def with_what_they_need(keep: set[Key], manifests: dict[Key, dict[str, Any]]) -> set[Key]:
    """Add what goes with kept manifests: an index's manifests, a referrer's subject, and
    the referrers (signatures, SBOMs) of a kept manifest."""
    referrers: dict[Key, list[Key]] = {}
    for (repository, digest), document in manifests.items():
        if document.get("subject"):
            referrers.setdefault((repository, document["subject"]), []).append((repository, digest))
    kept = set(keep)
    pending = list(kept)
    while pending:
        repository, digest = pending.pop()
        manifest = manifests.get((repository, digest))
        if manifest is None:
            continue
        needed = [(repository, child) for child in manifest.get("manifests") or []]
        if manifest.get("subject"):
            needed.append((repository, manifest["subject"]))
        needed += referrers.get((repository, digest), [])
        for key in needed:
            if key not in kept:
                kept.add(key)
                pending.append(key)
    return kept


def parents_first(going: set[Key], manifests: dict[Key, dict[str, Any]]) -> list[Key]:
    """``going`` in an order where an index comes before the manifests it lists and a
    referrer before its subject: a manifest is removed only once nothing that refers to it is
    left, so a parent that a push saved midway keeps its children."""
    children: dict[Key, list[Key]] = {}
    for key in going:
        document = manifests[key]
        listed = [(key[0], child) for child in document.get("manifests") or []]
        if document.get("subject"):
            listed.append((key[0], document["subject"]))
        children[key] = sorted(child for child in listed if child in going)
    ordered: list[Key] = []
    placed: set[Key] = set()

    def place(key: Key) -> None:
        if key in placed:
            return
        placed.add(key)
        for child in children[key]:
            place(child)
        ordered.append(key)  # after everything below it

    for key in sorted(going):
        place(key)
    return ordered[::-1]
