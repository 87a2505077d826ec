"""Docker tags read as Octopus versions, the deployment server's rules for feeds.

``1.2.0-deployments-75`` is version 1.2.0.0 with the prerelease ``deployments-75``. Order:
the four numbers; then any prerelease below none; then the prerelease's labels (split on
anything not a letter or digit), numeric labels as numbers and before alphabetic ones, which
compare case-insensitively, a shorter list first. The ``v`` prefix and ``+metadata`` do not
count. A tag with no numbers is all prerelease: ``latest`` is 0.0.0.0-latest. So
``latest < 1.2.0-beta < 1.2.0-deployments-9 < 1.2.0-deployments-75 < 1.2.0 == v1.2 < 1.10.0``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

_VERSION_RE = re.compile(
    r"""^\s*
    (?:\s*(?P<prefix>[vV])?                      # an optional v
       \s*(?P<major>\d+\b)\s*                    # up to four numbers; a missing one is 0
       (?:\.\s*(?P<minor>\d+\b)\s*)?
       (?:\.\s*(?P<patch>\d+\b)\s*)?
       (?:\.\s*(?P<revision>\d+\b)\s*)?
    )?
    (?:[.\-_\\])?                               # then, after one separator, the prerelease
    (?P<prerelease>[A-Za-z0-9]*?(?:[.\-_\\][A-Za-z0-9.\-_\\]*?)?)?
    (?:\+(?P<metadata>[A-Za-z0-9_\-.\\+]*?))?   # and +metadata, which does not count
    \s*$""",
    re.ASCII | re.VERBOSE,
)
_NOT_ALPHANUMERIC = re.compile(r"[\W_]")
_MAX_NUMBER = 2**31 - 1  # the deployment server's integers are 32-bit

LabelKey = tuple[int, int, str]


@functools.total_ordering
@dataclass(frozen=True, slots=True, eq=False)
class OctopusVersion:
    major: int
    minor: int
    patch: int
    revision: int
    prerelease: str
    metadata: str
    original: str
    sort_key: tuple[int, int, int, int, int, tuple[LabelKey, ...]] = field(repr=False)

    @property
    def is_prerelease(self) -> bool:
        return self.prerelease != ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OctopusVersion) and self.sort_key == other.sort_key

    def __lt__(self, other: OctopusVersion) -> bool:
        return self.sort_key < other.sort_key

    def __hash__(self) -> int:
        return hash(self.sort_key)


def parse_version(text: str) -> OctopusVersion:
    """Parse a tag as an Octopus version; ValueError when it cannot be one."""
    if not text.strip():
        raise ValueError("a version cannot be empty")
    match = _VERSION_RE.match(text)
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    numbers = [int(match.group(name) or 0) for name in ("major", "minor", "patch", "revision")]
    if any(number > _MAX_NUMBER for number in numbers):
        raise ValueError(f"version number too large: {text!r}")
    prerelease = match.group("prerelease") or ""
    major, minor, patch, revision = numbers
    return OctopusVersion(
        major=major,
        minor=minor,
        patch=patch,
        revision=revision,
        prerelease=prerelease,
        metadata=match.group("metadata") or "",
        original=text,
        sort_key=(major, minor, patch, revision, 0 if prerelease else 1, _labels(prerelease)),
    )


def try_parse_version(text: str) -> OctopusVersion | None:
    try:
        return parse_version(text)
    except ValueError:
        return None


def _labels(prerelease: str) -> tuple[LabelKey, ...]:
    """Sort keys of the prerelease's labels: numbers first and by value, then words."""
    if not prerelease:
        return ()
    keys: list[LabelKey] = []
    for label in _NOT_ALPHANUMERIC.sub("-", prerelease).split("-"):
        if label.isascii() and label.isdigit() and int(label) <= _MAX_NUMBER:
            keys.append((0, int(label), ""))
        else:
            keys.append((1, 0, label.upper()))
    return tuple(keys)
