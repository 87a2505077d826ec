"""``order_key`` writes a version's order as a string: comparing two keys byte by byte (as
MongoDB compares strings) gives the order of the versions, and equal versions have equal keys."""

from __future__ import annotations

import itertools
import random

import pytest

from shared.versions import OctopusVersion, order_key, try_parse_docker_tag

KNOWN = [
    "latest",
    "0.0.0-0",
    "1.0a1",
    "1.2.0-a",
    "1.2.0-A",
    "1.2.0-a..b",
    "1.2.0-a.1",
    "1.2.0-a.b",
    "1.2.0-a-1-x",
    "1.2.0-ab",
    "1.2.0-beta",
    "1.2.0-9",
    "1.2.0-99999999999",
    "1.2.0-deployments",
    "1.2.0-deployments-9",
    "1.2.0-deployments-9-b",
    "1.2.0-deployments-075",
    "1.2.0-deployments-75",
    "1.2.0",
    "v1.2",
    "1.2.0+build.5",
    "1.2.3.4",
    "1.10.0",
    "2",
    "2147483647",
    "x_y",
]


def _versions() -> list[OctopusVersion]:
    rng = random.Random(7)
    texts = list(KNOWN)
    for _ in range(400):
        numbers = ".".join(
            str(rng.choice([0, 1, 2, 10, 99, 255, 256])) for _ in range(rng.randint(1, 4))
        )
        labels = ["a", "b", "A", "ab", "0", "1", "10", "deployments", "x1", "1x", ""]
        if rng.random() < 0.6:
            numbers += "-" + "-".join(rng.choice(labels) for _ in range(rng.randint(1, 3)))
        texts.append(numbers)
    versions = [try_parse_docker_tag(text) for text in texts]
    return [version for version in versions if version is not None]


def test_keys_order_as_versions_do() -> None:
    versions = _versions()
    for a, b in itertools.combinations(versions, 2):
        key_a, key_b = order_key(a).encode(), order_key(b).encode()
        assert (key_a < key_b) == (a < b), (a.original, b.original)
        assert (key_a == key_b) == (a == b), (a.original, b.original)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("latest", "1.2.0-beta"),
        ("1.2.0-beta", "1.2.0-deployments-9"),
        ("1.2.0-deployments-9", "1.2.0-deployments-75"),
        ("1.2.0-deployments-75", "1.2.0"),
        ("1.2.0", "1.10.0"),
        ("1.2.0-a", "1.2.0-a.1"),  # a shorter list of labels first
        ("1.2.0-a", "1.2.0-ab"),  # a shorter word first
    ],
)
def test_documented_order(lower: str, higher: str) -> None:
    low, high = try_parse_docker_tag(lower), try_parse_docker_tag(higher)
    assert low is not None and high is not None
    assert order_key(low) < order_key(high)


def test_equal_versions_have_equal_keys() -> None:
    same = [try_parse_docker_tag(text) for text in ("1.2.0", "v1.2", "1.2.0+meta", "V1.2.0.0")]
    assert len({order_key(version) for version in same if version is not None}) == 1
