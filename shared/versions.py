"""Tags and version strings read as Octopus versions, by the deployment server's rules.

Reading (``OctopusVersionParser``): blank text is no version. Whitespace at either end is
ignored, and so is whitespace around the numbers. An optional ``v``/``V`` and up to four
numbers separated by dots come first; a number counts only when the character after it is not
a letter, digit or ``_`` (``1.0a1`` is 1 with the prerelease ``0a1``). Missing numbers are 0,
and a number beyond 32 bits makes the text no version. After one optional separator
(``. - _ \\``) comes the prerelease, up to the first ``+``; after the ``+``, the metadata. The
prerelease splits into a prefix (its leading letters and digits) and a counter (whatever
follows the separator after the prefix): ``1.2.0-deployments-75`` is 1.2.0.0 with prerelease
``deployments-75``, prefix ``deployments`` and counter ``75``. A tag with no numbers is all
prerelease: ``latest`` is 0.0.0.0-latest. Any other character (a space inside, ``!``, ``/``,
anything outside ASCII) makes the text no version.

Order (``OctopusVersion.CompareTo``): the four numbers; then any prerelease below none; then
the prerelease's labels (split on anything not a letter or digit), numeric labels as numbers
and before words, which compare case-insensitively, a shorter list first. The ``v`` and the
metadata do not count. So
``latest < 1.2.0-beta < 1.2.0-deployments-9 < 1.2.0-deployments-75 < 1.2.0 == v1.2 < 1.10.0``.

Docker tags (``DockerTag``, :func:`parse_docker_tag`) sort the same way; the one difference is
that the tag ``latest`` (exactly that) is not a prerelease. A ``@sha256:<hex>`` suffix is taken
off before reading and kept as the digest.

Reading is a single pass over the text, so hostile input costs time linear in its length.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass, field

# What the server's regular expressions (.NET ``\s``) and String.IsNullOrWhiteSpace count as
# whitespace: tab to carriage return, NEL, and the Unicode space, line and paragraph separators.
_WHITESPACE = frozenset(
    "\t\n\v\f\r\x85\x20\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(code) for code in range(0x2000, 0x200B))
)
_DIGITS = frozenset(string.digits)
_ALPHANUMERIC = frozenset(string.ascii_letters + string.digits)
_WORD = _ALPHANUMERIC | {"_"}  # a number must not run into one of these
_SEPARATORS = frozenset(".-_\\")
_PRERELEASE_CHARACTERS = _ALPHANUMERIC | _SEPARATORS
_METADATA_CHARACTERS = _PRERELEASE_CHARACTERS | {"+"}
_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")
_DIGEST_SUFFIX = re.compile(r"@sha256:[a-f0-9]+$")
_MAX_NUMBER = 2**31 - 1  # the deployment server's integers are 32-bit
_LATEST = "latest"

LabelKey = tuple[int, int, str]
SortKey = tuple[int, int, int, int, int, tuple[LabelKey, ...]]


@functools.total_ordering
@dataclass(frozen=True, slots=True, eq=False)
class OctopusVersion:
    """A version as the deployment server holds it; equal and ordered by ``sort_key``."""

    prefix: str  # "v", "V" or ""
    major: int
    minor: int
    patch: int
    revision: int
    prerelease: str
    prerelease_prefix: str
    prerelease_counter: str
    metadata: str
    original: str  # the text with its spaces (only U+0020) removed, as the server keeps it
    docker_tag: bool  # read as a Docker tag: ``latest`` is then not a prerelease
    digest: str  # a Docker tag's ``sha256:<hex>`` suffix, or ""
    sort_key: SortKey = field(repr=False)

    @property
    def is_prerelease(self) -> bool:
        if self.docker_tag and self.original == _LATEST:
            return False
        return self.prerelease != ""

    @property
    def has_metadata(self) -> bool:
        return self.metadata.strip() != ""

    def __str__(self) -> str:
        return f"{self.original}@{self.digest}" if self.digest else self.original

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OctopusVersion) and self.sort_key == other.sort_key

    def __lt__(self, other: OctopusVersion) -> bool:
        return self.sort_key < other.sort_key

    def __hash__(self) -> int:
        return hash(self.sort_key)


def parse_version(text: str) -> OctopusVersion:
    """Read ``text`` as an Octopus version; ValueError when the server would not."""
    return _parse(text, docker_tag=False, digest="")


def try_parse_version(text: str) -> OctopusVersion | None:
    try:
        return parse_version(text)
    except ValueError:
        return None


def parse_docker_tag(text: str) -> OctopusVersion:
    """Read ``text`` as a Docker tag version; ValueError when the server would not."""
    digest = _DIGEST_SUFFIX.search(text)
    if digest is None:
        return _parse(text, docker_tag=True, digest="")
    return _parse(text[: digest.start()], docker_tag=True, digest=digest.group()[1:])


def try_parse_docker_tag(text: str) -> OctopusVersion | None:
    try:
        return parse_docker_tag(text)
    except ValueError:
        return None


def _parse(text: str, *, docker_tag: bool, digest: str) -> OctopusVersion:
    start, end = 0, len(text)
    while start < end and text[start] in _WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _WHITESPACE:
        end -= 1
    if start == end:
        raise ValueError("a version cannot be empty or blank")

    prefix, numbers, position = _numbers(text, start, end)
    if position < end and text[position] in _SEPARATORS:
        position += 1
    plus = text.find("+", position, end)
    prerelease = text[position : end if plus < 0 else plus]
    metadata = "" if plus < 0 else text[plus + 1 : end]
    if not _PRERELEASE_CHARACTERS.issuperset(prerelease):
        raise ValueError(f"not a version: {text[:100]!r}")
    if not _METADATA_CHARACTERS.issuperset(metadata):
        raise ValueError(f"not a version: {text[:100]!r}")

    values = [_number(digits, text) for digits in numbers]
    major, minor, patch, revision = values + [0] * (4 - len(values))
    split = _NOT_ALPHANUMERIC.search(prerelease)
    return OctopusVersion(
        prefix=prefix,
        major=major,
        minor=minor,
        patch=patch,
        revision=revision,
        prerelease=prerelease,
        prerelease_prefix=prerelease if split is None else prerelease[: split.start()],
        prerelease_counter="" if split is None else prerelease[split.start() + 1 :],
        metadata=metadata,
        original=text.replace(" ", ""),
        docker_tag=docker_tag,
        digest=digest,
        sort_key=(major, minor, patch, revision, 0 if prerelease else 1, _labels(prerelease)),
    )


def _numbers(text: str, start: int, end: int) -> tuple[str, list[str], int]:
    """The ``v``, the digits of up to four numbers, and where the rest begins.

    A number that runs into a letter, digit or ``_`` is not one: the first such ends the
    numbers (before its dot), and a first number that does so means there are none.
    """
    position = start
    prefix = ""
    if text[position] in "vV":
        prefix = text[position]
        position = _skip_whitespace(text, position + 1, end)
    digits_end = _digits_end(text, position, end)
    if digits_end == position or not _ends_number(text, digits_end, end):
        return "", [], start
    numbers = [text[position:digits_end]]
    position = _skip_whitespace(text, digits_end, end)
    while len(numbers) < 4 and position < end and text[position] == ".":
        digits_start = _skip_whitespace(text, position + 1, end)
        digits_end = _digits_end(text, digits_start, end)
        if digits_end == digits_start or not _ends_number(text, digits_end, end):
            break
        numbers.append(text[digits_start:digits_end])
        position = _skip_whitespace(text, digits_end, end)
    return prefix, numbers, position


def _skip_whitespace(text: str, position: int, end: int) -> int:
    while position < end and text[position] in _WHITESPACE:
        position += 1
    return position


def _digits_end(text: str, position: int, end: int) -> int:
    while position < end and text[position] in _DIGITS:
        position += 1
    return position


def _ends_number(text: str, position: int, end: int) -> bool:
    return position == end or text[position] not in _WORD


def _number(digits: str, text: str) -> int:
    value = _int32(digits)
    if value is None:
        raise ValueError(f"version number too large: {text[:100]!r}")
    return value


def _int32(digits: str) -> int | None:
    """``digits`` as a 32-bit number, or None when it is too large (checked before int(),
    which refuses very long digit strings)."""
    significant = digits.lstrip("0")
    if len(significant) > len(str(_MAX_NUMBER)):
        return None
    value = int(significant or "0")
    return value if value <= _MAX_NUMBER else None


def _labels(prerelease: str) -> tuple[LabelKey, ...]:
    """Sort keys of the prerelease's labels: numbers first and by value, then words."""
    if not prerelease:
        return ()
    keys: list[LabelKey] = []
    for label in _NOT_ALPHANUMERIC.split(prerelease):
        number = _int32(label) if label and _DIGITS.issuperset(label) else None
        keys.append((0, number, "") if number is not None else (1, 0, label.upper()))
    return tuple(keys)


# What the database sorts by: ``sort_key`` as a string whose byte order is the version order,
# so that an index can serve "newest first". Numbers are fixed-width hex; each prerelease label
# is "1" and its number (numeric labels) or "2", the word and "!" (words; "!" sorts below every
# letter and digit, so a shorter word comes first); "0" ends the labels, which makes a shorter
# list sort first and the whole key prefix-free.
_NUMBER_WIDTH = 8
_WORD_END = "!"
_LABELS_END = "0"


def order_key(version: OctopusVersion) -> str:
    """``version.sort_key`` encoded so that comparing the strings (byte by byte, as MongoDB
    does) orders them as the versions are ordered: equal versions have equal keys."""
    major, minor, patch, revision, release, labels = version.sort_key
    parts = [f"{n:0{_NUMBER_WIDTH}x}" for n in (major, minor, patch, revision)]
    parts.append(str(release))
    for kind, number, word in labels:
        parts.append(f"1{number:0{_NUMBER_WIDTH}x}" if kind == 0 else f"2{word}{_WORD_END}")
    parts.append(_LABELS_END)
    return "".join(parts)
