"""Docker tags and version strings as Octopus versions: reading and the server's order."""

from __future__ import annotations

import random
import time

import pytest

from shared.versions import (
    parse_docker_tag,
    parse_version,
    try_parse_docker_tag,
    try_parse_version,
)

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


Numbers = tuple[int, int, int, int]


def _read(text: str) -> tuple[Numbers, str, str, str, str]:
    version = parse_version(text)
    numbers = (version.major, version.minor, version.patch, version.revision)
    return (
        numbers,
        version.prerelease,
        version.prerelease_prefix,
        version.prerelease_counter,
        version.metadata,
    )


@pytest.mark.parametrize(
    ("text", "numbers", "prerelease", "prefix", "counter", "metadata"),
    [
        pytest.param("7.3.11", (7, 3, 11, 0), "", "", "", "", id="three-numbers"),
        pytest.param("3.14.15.92", (3, 14, 15, 92), "", "", "", "", id="four-numbers"),
        pytest.param("6", (6, 0, 0, 0), "", "", "", "", id="one-number"),
        pytest.param("07.08.009", (7, 8, 9, 0), "", "", "", "", id="leading-zeros"),
        pytest.param("2024.11.22", (2024, 11, 22, 0), "", "", "", "", id="date-like"),
        pytest.param(
            "123456789.87654321.55555555",
            (123456789, 87654321, 55555555, 0),
            "",
            "",
            "",
            "",
            id="large-numbers",
        ),
        pytest.param(
            "1.2.0-deployments-75",
            (1, 2, 0, 0),
            "deployments-75",
            "deployments",
            "75",
            "",
            id="deployment-tag",
        ),
        pytest.param(
            "2.5.0-nightly.33", (2, 5, 0, 0), "nightly.33", "nightly", "33", "", id="dot-counter"
        ),
        pytest.param(
            "2.5.0-nightly.x7", (2, 5, 0, 0), "nightly.x7", "nightly", "x7", "", id="word-counter"
        ),
        pytest.param(
            "2.5.0-gamma3.ok", (2, 5, 0, 0), "gamma3.ok", "gamma3", "ok", "", id="digit-in-prefix"
        ),
        pytest.param(
            "6.0.0-feature-x.y-z-longname+sha.9-ab.2",
            (6, 0, 0, 0),
            "feature-x.y-z-longname",
            "feature",
            "x.y-z-longname",
            "sha.9-ab.2",
            id="counter-keeps-later-separators",
        ),
        pytest.param(
            "512.1.0-ubuntu_minimal_build",
            (512, 1, 0, 0),
            "ubuntu_minimal_build",
            "ubuntu",
            "minimal_build",
            "",
            id="underscore-splits-prefix",
        ),
        pytest.param(
            "11.4.1-QA-NIGHTLY", (11, 4, 1, 0), "QA-NIGHTLY", "QA", "NIGHTLY", "", id="case-kept"
        ),
        pytest.param(
            "4.4.4---Hot-Fix.1.2--.3+77",
            (4, 4, 4, 0),
            "--Hot-Fix.1.2--.3",
            "",
            "-Hot-Fix.1.2--.3",
            "77",
            id="prerelease-starting-with-separators",
        ),
        pytest.param(
            "3.0.0-gamma.", (3, 0, 0, 0), "gamma.", "gamma", "", "", id="trailing-separator"
        ),
        pytest.param(
            "2.0.0-omega.....4",
            (2, 0, 0, 0),
            "omega.....4",
            "omega",
            "....4",
            "",
            id="run-of-separators",
        ),
        pytest.param("beta..", (0, 0, 0, 0), "beta..", "beta", ".", "", id="word-then-dots"),
        pytest.param("21.0.0.GA", (21, 0, 0, 0), "GA", "GA", "", "", id="word-after-dot"),
        pytest.param("latest", (0, 0, 0, 0), "latest", "latest", "", "", id="latest"),
        pytest.param(
            "nightly-build", (0, 0, 0, 0), "nightly-build", "nightly", "build", "", id="no-numbers"
        ),
        pytest.param("-orphan", (0, 0, 0, 0), "orphan", "orphan", "", "", id="leading-dash"),
        pytest.param(
            "-orphan.02", (0, 0, 0, 0), "orphan.02", "orphan", "02", "", id="leading-dash-counter"
        ),
        pytest.param("+onlymeta", (0, 0, 0, 0), "", "", "", "onlymeta", id="metadata-only"),
        pytest.param(
            "-orphan+meta", (0, 0, 0, 0), "orphan", "orphan", "", "meta", id="leading-dash-meta"
        ),
        pytest.param("v4.5", (4, 5, 0, 0), "", "", "", "", id="lower-v"),
        pytest.param("V0.0.2-rc", (0, 0, 2, 0), "rc", "rc", "", "", id="upper-v"),
        pytest.param("vnext", (0, 0, 0, 0), "vnext", "vnext", "", "", id="v-without-numbers"),
        pytest.param("1.2.3+build.7", (1, 2, 3, 0), "", "", "", "build.7", id="metadata"),
        pytest.param("1.1.2+.77", (1, 1, 2, 0), "", "", "", ".77", id="metadata-from-dot"),
        pytest.param(
            "1.0.0+0.build.7-rc.999zz-k-0.2",
            (1, 0, 0, 0),
            "",
            "",
            "",
            "0.build.7-rc.999zz-k-0.2",
            id="metadata-keeps-everything",
        ),
        pytest.param(
            "edge-\\a_b.c-d+e+f",
            (0, 0, 0, 0),
            "edge-\\a_b.c-d",
            "edge",
            "\\a_b.c-d",
            "e+f",
            id="backslash-and-second-plus",
        ),
        pytest.param(
            "1.1.1-88888888888888888888",
            (1, 1, 1, 0),
            "88888888888888888888",
            "88888888888888888888",
            "",
            "",
            id="huge-number-in-prerelease",
        ),
        pytest.param("9.9.9-0123", (9, 9, 9, 0), "0123", "0123", "", "", id="numeric-prerelease"),
        # A number only counts when no letter, digit or `_` follows it.
        pytest.param(
            "1.0b2-SNAPSHOT",
            (1, 0, 0, 0),
            "0b2-SNAPSHOT",
            "0b2",
            "SNAPSHOT",
            "",
            id="number-running-into-letter",
        ),
        pytest.param("1-0-beta", (1, 0, 0, 0), "0-beta", "0", "beta", "", id="dashes-not-dots"),
        pytest.param(
            "1_0_beta", (0, 0, 0, 0), "1_0_beta", "1", "0_beta", "", id="underscore-after-first"
        ),
        pytest.param("1.2.3_hotfix", (1, 2, 0, 0), "3_hotfix", "3", "hotfix", "", id="under-3rd"),
        pytest.param("1-2.3-RC", (1, 0, 0, 0), "2.3-RC", "2", "3-RC", "", id="dash-then-dots"),
        pytest.param("1.0.2.3-rc1", (1, 0, 2, 3), "rc1", "rc1", "", "", id="four-then-word"),
        pytest.param("1.2.3.4.5", (1, 2, 3, 4), "5", "5", "", "", id="fifth-number"),
        pytest.param("456XYZ", (0, 0, 0, 0), "456XYZ", "456XYZ", "", "", id="digits-into-word"),
        pytest.param(
            "456.456XYZ.456",
            (456, 0, 0, 0),
            "456XYZ.456",
            "456XYZ",
            "456",
            "",
            id="second-number-into-word",
        ),
        # Whitespace at the ends and around numbers is ignored, nowhere else.
        pytest.param(" 2.2.2-pre ", (2, 2, 2, 0), "pre", "pre", "", "", id="spaces-at-ends"),
        pytest.param("2 .3.4-x", (2, 3, 4, 0), "x", "x", "", "", id="space-after-major"),
        pytest.param("2. 3 .4", (2, 3, 4, 0), "", "", "", "", id="spaces-around-minor"),
        pytest.param("2.3. 4 . 5 -x", (2, 3, 4, 5), "x", "x", "", "", id="spaces-to-revision"),
        pytest.param("v 8.1", (8, 1, 0, 0), "", "", "", "", id="space-after-v"),
        pytest.param("3 rc", (3, 0, 0, 0), "rc", "rc", "", "", id="space-instead-of-separator"),
        pytest.param("\t2.3\u00a0\u3000", (2, 3, 0, 0), "", "", "", "", id="unicode-spaces"),
        pytest.param("1.0.0-x+m \n", (1, 0, 0, 0), "x", "x", "", "m", id="trailing-newline"),
    ],
)
def test_reading(
    text: str, numbers: Numbers, prerelease: str, prefix: str, counter: str, metadata: str
) -> None:
    """Numbers, prerelease (split into prefix and counter) and metadata as the server reads."""
    assert _read(text) == (numbers, prerelease, prefix, counter, metadata)


@pytest.mark.parametrize(
    ("text", "prefix"), [("v1.0", "v"), ("V1.0", "V"), ("1.0", ""), ("vnext", ""), ("v", "")]
)
def test_the_v_is_kept_only_before_numbers(text: str, prefix: str) -> None:
    """The ``v`` is recorded when numbers follow it; otherwise it is part of the prerelease."""
    assert parse_version(text).prefix == prefix


@pytest.mark.parametrize(
    ("text", "original"),
    [
        ("1.2.3-x", "1.2.3-x"),
        (" 1.2.3-x ", "1.2.3-x"),
        ("1 . 2 .3-x", "1.2.3-x"),
        ("\t1.2\t", "\t1.2\t"),  # only U+0020 is removed
    ],
)
def test_original_text_loses_its_spaces(text: str, original: str) -> None:
    """The version keeps its text with the spaces taken out, and prints as that."""
    version = parse_version(text)
    assert version.original == original
    assert str(version) == original


@pytest.mark.parametrize(
    ("text", "has_metadata"),
    [("stable", False), ("1.0", False), ("1.0-x", False), ("1.0-x+m", True), ("1.0-x+", False)],
)
def test_has_metadata(text: str, has_metadata: bool) -> None:
    """Metadata counts when something follows the ``+``."""
    assert parse_version(text).has_metadata is has_metadata


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="spaces"),
        pytest.param("\t\u00a0\u2003", id="unicode-blank"),
        pytest.param("1.2.3-a b", id="space-in-prerelease"),
        pytest.param("1.2.3-x +m", id="space-before-plus"),
        pytest.param("1.2.3- x", id="space-after-separator"),
        pytest.param("1.2.3-x+ m", id="space-in-metadata"),
        pytest.param("1.2.3+meta data", id="space-inside-metadata"),
        pytest.param("1.2.3-a'b", id="quote"),
        pytest.param('1.2.3-a"b', id="double-quote"),
        pytest.param("1.2.3-a;b", id="semicolon"),
        pytest.param("1.2.3-a\nb", id="newline-inside"),
        pytest.param("1.2.3-a\tb", id="tab-inside"),
        pytest.param("1.2.3-a/b", id="slash"),
        pytest.param("1.2.3-a%b", id="percent"),
        pytest.param("1.2.3-a?b", id="question-mark"),
        pytest.param("1.2.3-a#b", id="hash"),
        pytest.param("1.2.3-a&b", id="ampersand"),
        pytest.param("1.2.3-a!b", id="bang"),
        pytest.param("1.2.3-café", id="non-ascii-letter"),
        pytest.param("1.\u0662", id="non-ascii-digit"),
        pytest.param("\x1c1.0", id="control-character"),
        pytest.param("3000000000.1", id="major-too-large"),
        pytest.param("1.3000000000", id="minor-too-large"),
        pytest.param("1.1.2147483648", id="patch-just-too-large"),
        pytest.param("1.1.1.2147483648", id="revision-just-too-large"),
        pytest.param("99999999999", id="eleven-digits"),
        pytest.param("1." + "9" * 5000, id="five-thousand-digits"),
    ],
)
def test_unreadable_text(text: str) -> None:
    """Blank text, characters outside the grammar and numbers beyond 32 bits are no version."""
    with pytest.raises(ValueError):
        parse_version(text)
    assert try_parse_version(text) is None
    assert try_parse_docker_tag(text) is None


def test_the_largest_32_bit_number_is_a_version() -> None:
    """2147483647 still fits; leading zeros do not make a number too large."""
    assert parse_version("2147483647.0002147483647").minor == 2147483647


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        pytest.param("3.0.0", "4.0.0", id="major"),
        pytest.param("3.1", "3.2", id="minor"),
        pytest.param("3.1.1", "3.1.2", id="patch"),
        pytest.param("3.1.1.1", "3.1.1.2", id="revision"),
        pytest.param("1.9.9", "1.10.0", id="numbers-as-numbers"),
        pytest.param("3.0.0-9", "3.0.0.1", id="revision-before-prerelease"),
        pytest.param("1.2.0-zzz", "1.2.0", id="any-prerelease-below-release"),
        pytest.param("1.2.0-deployments-9", "1.2.0-deployments-10", id="counter-as-number"),
        pytest.param("1.2.0-1", "1.2.0-alpha", id="number-label-before-word"),
        pytest.param("1.2.0-alpha", "1.2.0-alpha.1", id="shorter-list-first"),
        pytest.param("1.2.0-alpha.2", "1.2.0-alpha.10", id="number-labels"),
        pytest.param("1.2.0-Alpha", "1.2.0-beta", id="words-ignore-case"),
        pytest.param("1.2.0-pre10", "1.2.0-pre9", id="mixed-label-is-a-word"),
        pytest.param("1.2.0-pre_4", "1.2.0-pre.5", id="underscore-splits"),
        pytest.param("1.2.0-b.3", "1.2.0-b-12", id="dash-splits"),
        pytest.param("1.2.0-1A", "1.2.0-A", id="ordinal-digits-before-letters"),
        pytest.param("4.4.4-\\_.20", "4.4.4._\\.21", id="backslash-is-a-separator"),
        pytest.param("1.2.0-x", "1.2.0-", id="dangling-separator-is-a-release"),
        pytest.param("latest", "0.0.1", id="latest-below-numbers"),
        pytest.param("1.0.0-rc.99999999999", "1.0.0-rc.a0", id="too-large-label-is-a-word"),
        pytest.param("1.0.0-rc.2147483647", "1.0.0-rc.2147483648", id="largest-number-label"),
    ],
)
def test_order(lower: str, higher: str) -> None:
    """Each pair sorts in the stated order, both ways round."""
    assert parse_version(lower) < parse_version(higher)
    assert parse_version(higher) > parse_version(lower)
    assert parse_version(lower) != parse_version(higher)


def test_prerelease_precedence_chain() -> None:
    """A chain in the spirit of semver's precedence example sorts in order from any shuffle."""
    chain = [
        "5.0.0-a",
        "5.0.0-a.1",
        "5.0.0-a.b",
        "5.0.0-b",
        "5.0.0-b_3",
        "5.0.0-b.12",
        "5.0.0-c-1",
        "5.0.0",
    ]
    shuffled = chain[:]
    for seed in range(20):
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled, key=parse_version) == chain


@pytest.mark.parametrize(
    ("left", "right"),
    [
        pytest.param("1.2.0", "v1.2", id="prefix-and-missing-numbers"),
        pytest.param("2.0", "2.0.0.0", id="zeros"),
        pytest.param("1.2.0+build.1", "1.2.0+build.2", id="metadata"),
        pytest.param("1.2.0-BETA", "1.2.0-beta", id="case"),
        pytest.param("1.2.0-beta_1", "1.2.0-beta.1", id="separator"),
        pytest.param("2.0.0-pre-4", "2.0.0-pre.4", id="dash-and-dot"),
        pytest.param("1.2.0-deployments-075", "1.2.0-deployments-75", id="leading-zero"),
        pytest.param("4.4.4-pre_-.\\", "4.4.4-pre\\.-_", id="separator-runs"),
        pytest.param(" 1.2.0 ", "1 . 2 . 0", id="whitespace"),
    ],
)
def test_equal_versions(left: str, right: str) -> None:
    """Versions that differ only in what the rules ignore are equal, with equal hashes."""
    assert parse_version(left) == parse_version(right)
    assert hash(parse_version(left)) == hash(parse_version(right))
    assert len({parse_version(left), parse_version(right)}) == 1


def test_versions_are_not_equal_to_other_types() -> None:
    """Comparing a version with a string is inequality, not an error."""
    assert parse_version("1.0") != "1.0"


@pytest.mark.parametrize(
    ("tag", "is_prerelease"),
    [
        pytest.param("latest", False, id="latest"),
        pytest.param(" latest ", False, id="latest-with-spaces"),
        pytest.param("Latest", True, id="other-case-is-a-prerelease"),
        pytest.param("latest-1", True, id="latest-with-counter"),
        pytest.param("2.0.0-latest", True, id="latest-as-prerelease"),
        pytest.param("stable", True, id="other-word"),
        pytest.param("2.0.0", False, id="release"),
    ],
)
def test_docker_latest_is_not_a_prerelease(tag: str, is_prerelease: bool) -> None:
    """As a Docker tag exactly ``latest`` is no prerelease; as a version it still is one."""
    assert parse_docker_tag(tag).is_prerelease is is_prerelease
    assert parse_version(tag).is_prerelease is (tag != "2.0.0")


def test_docker_tags_sort_like_versions() -> None:
    """``latest`` as a Docker tag is still 0.0.0.0-latest: equal to itself, below releases."""
    tags = ["2.0.1", "latest", "2.0.1-pre-7", "2.0.1-pre-12", "0.0.1"]
    ordered = sorted(tags, key=parse_docker_tag)
    assert ordered == ["latest", "0.0.1", "2.0.1-pre-7", "2.0.1-pre-12", "2.0.1"]
    assert parse_docker_tag("latest") == parse_docker_tag("latest")
    assert hash(parse_docker_tag("latest")) == hash(parse_docker_tag("latest"))


@pytest.mark.parametrize(
    ("text", "numbers", "digest", "printed"),
    [
        ("7.1@sha256:0fe1a9", (7, 1), "sha256:0fe1a9", "7.1@sha256:0fe1a9"),
        ("latest@sha256:beef", (0, 0), "sha256:beef", "latest@sha256:beef"),
        ("7.1", (7, 1), "", "7.1"),
    ],
)
def test_docker_digest_suffix(
    text: str, numbers: tuple[int, int], digest: str, printed: str
) -> None:
    """A ``@sha256:<hex>`` suffix is not part of the tag's version; it is kept and printed."""
    tag = parse_docker_tag(text)
    assert (tag.major, tag.minor) == numbers
    assert tag.digest == digest
    assert str(tag) == printed
    assert not tag.is_prerelease


@pytest.mark.parametrize("text", ["7.1@sha256:BEEF", "7.1@sha512:beef", "7.1@sha256:"])
def test_docker_digest_must_be_lowercase_sha256_hex(text: str) -> None:
    """Anything else after an ``@`` is an unreadable tag."""
    assert try_parse_docker_tag(text) is None


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(" " * 100_000 + "x", id="long-leading-space"),
        pytest.param("1" + " " * 100_000 + "!", id="long-inner-space"),
        pytest.param("1-" + "a-" * 50_000 + "!", id="many-labels-then-bad"),
        pytest.param("+" * 100_000 + " !", id="many-plus"),
        pytest.param("1." + " ." * 50_000, id="many-empty-numbers"),
        pytest.param("1.0-" + "9" * 100_000, id="huge-label"),
    ],
)
def test_hostile_text_is_read_in_linear_time(text: str) -> None:
    """Long adversarial text is accepted or refused quickly (no backtracking blow-up)."""
    started = time.monotonic()
    try_parse_version(text)
    try_parse_docker_tag(text)
    assert time.monotonic() - started < 2.0


def test_a_huge_numeric_label_sorts_as_a_word() -> None:
    """A label too large for 32 bits compares as text and does not break reading."""
    huge = parse_version("1.0-" + "9" * 5000)
    assert huge > parse_version("1.0-99")
    assert huge.prerelease_prefix == "9" * 5000
