"""Retention policies and which deployment tags they remove (PRODUCT.md §9)."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.retention import (
    PolicyInvalid,
    RetentionPolicy,
    TagState,
    parents_first,
    tags_to_remove,
    with_what_they_need,
)

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


def test_defaults_round_trip() -> None:
    policy = RetentionPolicy()
    assert policy.document() == {
        "deployment_tags": {"pattern": r"^.+-deployments-\d+$", "retain_days": 30, "keep_last": 10},
        "untagged_manifests": {"retain_hours": 24},
        "gc": {"grace_minutes": 60},
    }
    assert RetentionPolicy.parse(policy.document()) == policy
    assert RetentionPolicy.parse({}) == policy
    partial = RetentionPolicy.parse({"deployment_tags": {"keep_last": 2}})
    assert partial.keep_last == 2 and partial.retain_days == 30


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"extra": 1},
        {"deployment_tags": {"pattern": "("}},
        {"deployment_tags": {"pattern": ""}},
        {"deployment_tags": {"keep_last": -1}},
        {"deployment_tags": {"retain_days": 1.5}},
        {"deployment_tags": {"retain_days": True}},
        # past a century the run's cutoff (now - retain_days) leaves the calendar
        {"deployment_tags": {"retain_days": 1_000_000}},
        {"deployment_tags": {"unknown": 1}},
        {"gc": {"grace_minutes": "60"}},
        {"untagged_manifests": []},
    ],
)
def test_invalid_policies(body: object) -> None:
    with pytest.raises(PolicyInvalid):
        RetentionPolicy.parse(body)


def test_the_longest_retention_still_weighs_tags() -> None:
    """A century of days is allowed, and a run with it keeps every tag (no date overflow)."""
    policy = RetentionPolicy.parse({"deployment_tags": {"retain_days": 36_500, "keep_last": 0}})
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    tag = TagState("spaces-1/app", "1.0.0-deployments-1", "sha256:" + "a" * 64, now)
    assert tags_to_remove([tag], policy, now) == []


def test_keep_last_and_retain_days_together_and_pins() -> None:
    """Removed only when old enough AND outside the newest keep_last AND not pinned; other
    tags are never removed."""
    policy = RetentionPolicy(retain_days=30, keep_last=2)
    tags = [
        TagState("spaces-1/web", "1.0.0-deployments-1", "sha256:a", days_ago(90)),
        TagState("spaces-1/web", "1.0.0-deployments-2", "sha256:b", days_ago(60), pinned=True),
        TagState("spaces-1/web", "1.0.0-deployments-3", "sha256:c", days_ago(45)),
        TagState("spaces-1/web", "1.0.0-deployments-4", "sha256:d", days_ago(40)),  # 2nd newest
        TagState("spaces-1/web", "1.0.0-deployments-5", "sha256:e", days_ago(35)),  # newest
        TagState("spaces-1/web", "1.0.0", "sha256:f", days_ago(400)),  # not a deployment tag
        TagState("spaces-1/web", "latest", "sha256:e", days_ago(400)),
        TagState("spaces-1/api", "2.0-deployments-9", "sha256:g", days_ago(10)),  # too young
        TagState("spaces-1/api", "2.0-deployments-8", "sha256:h", days_ago(31)),
        TagState("spaces-1/api", "2.0-deployments-7", "sha256:i", days_ago(32)),
    ]
    removed = [(t.repository, t.tag) for t in tags_to_remove(tags, policy, NOW)]
    assert removed == [
        ("spaces-1/api", "2.0-deployments-7"),
        ("spaces-1/web", "1.0.0-deployments-1"),
        ("spaces-1/web", "1.0.0-deployments-3"),
    ]


def test_keep_last_counts_per_repository_and_zero_keeps_none() -> None:
    tags = [
        TagState(f"spaces-1/r{n}", "x-deployments-1", "sha256:a", days_ago(100)) for n in range(3)
    ]
    assert tags_to_remove(tags, RetentionPolicy(keep_last=1), NOW) == []
    assert len(tags_to_remove(tags, RetentionPolicy(keep_last=0), NOW)) == 3


def _manifest(children: tuple[str, ...] = (), subject: str | None = None) -> dict[str, object]:
    return {"manifests": list(children), "subject": subject}


def test_a_kept_index_keeps_its_manifests_and_a_kept_image_its_referrers() -> None:
    manifests = {
        ("r", "index"): _manifest(("amd64", "arm64")),
        ("r", "amd64"): _manifest(),
        ("r", "arm64"): _manifest(),
        ("r", "sbom"): _manifest(subject="amd64"),
        ("r", "signature-of-sbom"): _manifest(subject="sbom"),
        ("r", "lonely"): _manifest(),
        ("other", "amd64"): _manifest(),
    }
    kept = with_what_they_need({("r", "index")}, manifests)
    assert kept == {
        ("r", "index"),
        ("r", "amd64"),
        ("r", "arm64"),
        ("r", "sbom"),
        ("r", "signature-of-sbom"),
    }
    # A kept referrer keeps its subject (and what else refers to that subject).
    assert with_what_they_need({("r", "signature-of-sbom")}, manifests) == {
        ("r", "signature-of-sbom"),
        ("r", "sbom"),
        ("r", "amd64"),
    }


def test_parents_are_removed_before_what_they_refer_to() -> None:
    manifests = {
        ("r", "a-child"): _manifest(),
        ("r", "b-index"): _manifest(("a-child", "c-child")),
        ("r", "c-child"): _manifest(),
        ("r", "a-referrer"): _manifest(subject="b-index"),
        ("r", "z-alone"): _manifest(),
    }
    order = parents_first(set(manifests), manifests)
    assert sorted(order) == sorted(manifests)
    position = {key: n for n, key in enumerate(order)}
    assert position[("r", "a-referrer")] < position[("r", "b-index")]
    assert position[("r", "b-index")] < position[("r", "a-child")]
    assert position[("r", "b-index")] < position[("r", "c-child")]
    # Only what is going is ordered; a parent that stays is not listed.
    assert parents_first({("r", "a-child")}, manifests) == [("r", "a-child")]
