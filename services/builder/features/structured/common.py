"""What every format shares: the errors, the record of a replacement, and the context
that looks values up and charges what they add against the growth allowance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.builder.features.xdt.work import Work, WorkExceeded

Lookup = Callable[[str], "str | None"]

MAX_GROWTH = 64 * 1024 * 1024
MAX_FILE_BYTES = 1024 * 1024  # a file read, as sdi.yaml and the Dockerfile
MAX_JSON_DEPTH = 64  # the depth the server's JSON reader refuses beyond
MAX_YAML_EVENTS = 2_000_000
MAX_YAML_FLOW_DEPTH = 64  # [ and { inside each other; PyYAML's scanner is quadratic in them


class StructuredError(ValueError):
    """The file could not be read in any of the formats it was tried as."""


class StructuredGrowthError(StructuredError):
    """The values would add more than the allowance to the file."""


class NotThisFormat(Exception):
    """The file does not parse as the format tried."""


@dataclass(frozen=True, slots=True)
class Replacement:
    path: str
    format: str


class StructuredWorkError(StructuredError):
    """Evaluating the variables' XPath selectors would take more than the work allowance."""


@dataclass(slots=True)
class Context:
    names: list[str]
    lookup: Lookup
    allowance: int
    max_growth: int
    work: Work = field(default_factory=Work)
    produced: int = 0
    replaced: list[Replacement] = field(default_factory=list)

    @property
    def longest(self) -> int:
        """The longest name's length: a longer path cannot match one (folding keeps the
        length), so none is built or folded."""
        return max((len(name) for name in self.names), default=-1)

    def spend(self, count: int) -> None:
        """Charge ``count`` nodes visited by XPath selectors to the work allowance."""
        try:
            self.work.spend(count)
        except WorkExceeded as exc:
            raise StructuredWorkError(str(exc)) from exc

    def reset(self) -> None:
        self.produced = 0
        self.replaced = []

    def value(self, name: str, path: str, format_name: str) -> str | None:
        """The value of ``name`` replacing ``path``, charged against the allowance."""
        return self.take(self.lookup(name), path, format_name)

    def take(self, value: str | None, path: str, format_name: str) -> str | None:
        """``value`` replacing ``path``, charged against the allowance."""
        self.produced += len(value or "")
        if self.produced > self.allowance:
            raise StructuredGrowthError(
                f"the values would add more than {self.max_growth} characters to the file "
                "(a large value in many places?)"
            )
        self.replaced.append(Replacement(path, format_name))
        return value


def fold(text: str) -> str:
    """Case-insensitive ordinal comparison, character by character (the same length)."""
    if text.isascii():
        return text.upper()
    return "".join(c if len(c.upper()) != 1 else c.upper() for c in text)


def skips_octopus(name: str) -> bool:
    return name.lower().startswith("octopus") and not name.lower().startswith("octopus:")
