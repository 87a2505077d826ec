"""Docker tags as Octopus versions: parsing and the deployment server's order."""

from __future__ import annotations

import random

import pytest

from shared.versions import parse_version, try_parse_version

# The order the deployment server gives its feeds (builder-and-retention-anchors §1.6).
DOCUMENTED_ORDER = [
    "latest",
    "myfeature",
    "1.2.0-beta",
    "1.2.0-deployments-9",
    "1.2.0-deployments-75",
    "1.2.0-deployments-100",
    "1.2.0",
    "1.2.0.1",
    "1.10.0",
]


def test_documented_order_is_reproduced_from_any_shuffle() -> None:
    """Sorting the documented tags in any order gives the documented order."""
    shuffled = DOCUMENTED_ORDER[:]
    for seed in range(20):
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled, key=parse_version) == DOCUMENTED_ORDER


@pytest.mark.parametrize(
    ("tag", "numbers", "prerelease", "metadata"),
    [
        ("1.2.0-deployments-75", (1, 2, 0, 0), "deployments-75", ""),
        ("1", (1, 0, 0, 0), "", ""),
        ("v2.3", (2, 3, 0, 0), "", ""),
        ("V2.3.4.5", (2, 3, 4, 5), "", ""),
        ("latest", (0, 0, 0, 0), "latest", ""),
        ("1.2.3+build.7", (1, 2, 3, 0), "", "build.7"),
        ("1.2.3-rc.1+sha.abc", (1, 2, 3, 0), "rc.1", "sha.abc"),
        ("1.2.3-hotfix", (1, 2, 3, 0), "hotfix", ""),
        # `_` is a word character, so no number ends before it: as on the deployment server.
        ("1.2.3_hotfix", (1, 2, 0, 0), "3_hotfix", ""),
        ("2024.11.22", (2024, 11, 22, 0), "", ""),
        ("1.2.3.4.5", (1, 2, 3, 4), "5", ""),
    ],
)
def test_parsed_fields(
    tag: str, numbers: tuple[int, int, int, int], prerelease: str, metadata: str
) -> None:
    """Numbers default to zero, the prerelease follows one separator, metadata follows +."""
    version = parse_version(tag)
    assert (version.major, version.minor, version.patch, version.revision) == numbers
    assert version.prerelease == prerelease
    assert version.metadata == metadata
    assert version.is_prerelease == (prerelease != "")
    assert version.original == tag


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.2.0-zzz", "1.2.0"),  # any prerelease is below the release
        ("1.9.9", "1.10.0"),  # numbers compare as numbers
        ("1.2.0-deployments-9", "1.2.0-deployments-10"),
        ("1.2.0-1", "1.2.0-alpha"),  # numeric labels come before words
        ("1.2.0-alpha", "1.2.0-alpha.1"),  # a shorter label list comes first
        ("1.2.0-alpha.2", "1.2.0-alpha.10"),
        ("1.2.0-Alpha", "1.2.0-beta"),  # words compare case-insensitively
        ("latest", "0.0.1"),  # no numbers: all prerelease of 0.0.0.0
        ("1.0.0-rc.99999999999", "1.0.0-rc.a0"),  # too large to be a number: a word
    ],
)
def test_order(lower: str, higher: str) -> None:
    """Each pair sorts in the stated order, both ways round."""
    assert parse_version(lower) < parse_version(higher)
    assert parse_version(higher) > parse_version(lower)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("1.2.0", "v1.2"),  # the prefix and missing numbers do not count
        ("1.2.0+build.1", "1.2.0+build.2"),  # nor does metadata
        ("1.2.0-BETA", "1.2.0-beta"),  # nor case in labels
        ("1.2.0-beta_1", "1.2.0-beta.1"),  # nor which separator
        ("1.2.0-deployments-075", "1.2.0-deployments-75"),
    ],
)
def test_equal_versions(left: str, right: str) -> None:
    """Tags that differ only in what the rules ignore are equal, with equal hashes."""
    assert parse_version(left) == parse_version(right)
    assert hash(parse_version(left)) == hash(parse_version(right))
    assert len({parse_version(left), parse_version(right)}) == 1


@pytest.mark.parametrize("tag", ["", "   ", "99999999999.0", "1.2.3-a!b", "1.2.3+meta data"])
def test_unparseable_tags(tag: str) -> None:
    """Empty tags, 32-bit overflows and characters outside the grammar are not versions."""
    with pytest.raises(ValueError):
        parse_version(tag)
    assert try_parse_version(tag) is None


def test_versions_are_not_equal_to_other_types() -> None:
    """Comparing a version with a string is inequality, not an error."""
    assert parse_version("1.0") != "1.0"
