"""Reading sdi.yaml is bounded: packages, values, nesting, and no aliases to multiply them."""

from __future__ import annotations

import time

import pytest

from services.builder.sdi import MAX_PACKAGES, SdiInvalid, parse_sdi


def packages(count: int) -> str:
    return "packages:\n" + "".join(f"  - id: tool{n}\n" for n in range(count))


def test_at_most_max_packages_are_listed() -> None:
    assert len(parse_sdi(packages(MAX_PACKAGES)).packages) == MAX_PACKAGES
    with pytest.raises(SdiInvalid, match=f"lists {MAX_PACKAGES + 1} packages; .* at most 100"):
        parse_sdi(packages(MAX_PACKAGES + 1))


def merge_key_bomb(levels: int) -> str:
    """Each mapping merges the one before twice: 2**levels keys from a kilobyte."""
    lines = ["a0: &a0 {k: v}"]
    lines += [f"a{n}: &a{n} {{<<: [*a{n - 1}, *a{n - 1}]}}" for n in range(1, levels)]
    return "\n".join(lines)


LAUGHS = """
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
features:
  substitute_in_files: [*c, *c, *c, *c, *c, *c, *c, *c, *c]
"""


@pytest.mark.parametrize(
    "text",
    [
        merge_key_bomb(40),
        LAUGHS,
        "packages:\n  - &p {id: tool}\n" + "  - *p\n" * 20_000,  # 20,000 downloads in 140 KB
    ],
    ids=["merge-keys", "billion-laughs", "aliased-packages"],
)
def test_aliases_are_refused_before_they_are_expanded(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(SdiInvalid, match=r"may not use YAML aliases \(\*name\)"):
        parse_sdi(text)
    assert time.monotonic() - started < 1  # merge keys alone took seconds at 22 levels


def test_values_and_nesting_are_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(SdiInvalid, match="more than 10000 values"):
        parse_sdi("features:\n  substitute_in_files: [" + ", ".join(["a"] * 20_000) + "]\n")
    with pytest.raises(SdiInvalid, match="nests lists and mappings more than 16 deep"):
        parse_sdi("[" * 100_000 + "]" * 100_000)  # the recursive composer's RecursionError
    assert time.monotonic() - started < 2


def test_a_number_python_refuses_to_read_is_sdi_invalid() -> None:
    with pytest.raises(SdiInvalid, match="not valid YAML"):
        parse_sdi("packages:\n  - id: tool\n    version: " + "1" * 5000 + "\n")


def test_an_anchor_without_an_alias_is_fine() -> None:
    spec = parse_sdi("packages:\n  - &tool\n    id: tool\n    version: 1.0.0\n")
    assert [(p.id, p.version) for p in spec.packages] == [("tool", "1.0.0")]
