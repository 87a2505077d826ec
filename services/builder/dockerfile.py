"""Dockerfile parsing, and whether the ``assembled`` strategy can build it.

The assembled strategy takes one stage of FROM, ARG, COPY, ADD (of local files that are not
archives), ENV, LABEL, WORKDIR, USER, EXPOSE, CMD, ENTRYPOINT, VOLUME, STOPSIGNAL,
HEALTHCHECK and SHELL. Anything else — RUN, a second FROM, ``COPY --from``, ADD of a URL or
an archive, ONBUILD — goes to the ``docker`` strategy.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field

ASSEMBLED = frozenset(
    {"FROM", "ARG", "COPY", "ADD", "ENV", "LABEL", "WORKDIR", "USER", "EXPOSE", "CMD",
     "ENTRYPOINT", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
)  # fmt: skip
KNOWN = ASSEMBLED | {"RUN", "ONBUILD"}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class DockerfileError(ValueError):
    code = "dockerfile_invalid"


@dataclass(frozen=True, slots=True)
class Instruction:
    keyword: str
    arguments: str  # the text after the keyword, continuations joined
    line: int
    flags: dict[str, str] = field(default_factory=dict)

    @property
    def is_json(self) -> bool:
        return self.arguments.lstrip().startswith("[")

    def json_list(self) -> list[str] | None:
        if not self.is_json:
            return None
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None


@dataclass(frozen=True, slots=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]

    @property
    def stages(self) -> int:
        return sum(1 for i in self.instructions if i.keyword == "FROM")

    def assembled_blocker(self) -> str | None:
        """Why the assembled strategy cannot build this, or None when it can."""
        if self.stages != 1:
            return "more than one stage"
        for instruction in self.instructions:
            if instruction.keyword not in ASSEMBLED:
                return f"{instruction.keyword} on line {instruction.line}"
            if instruction.keyword in ("COPY", "ADD") and "from" in instruction.flags:
                return f"{instruction.keyword} --from on line {instruction.line}"
            if instruction.keyword == "ADD":
                for source in copy_arguments(instruction)[0]:
                    if "://" in source or source.lower().endswith(ARCHIVE_SUFFIXES):
                        return f"ADD of a URL or an archive on line {instruction.line}"
            chown = instruction.flags.get("chown")
            if chown is not None and not re.fullmatch(r"(root|\d+)(:(root|\d+))?", chown):
                return f"--chown by name on line {instruction.line} (needs the base's users)"
        return None


def parse_dockerfile(text: str) -> Dockerfile:
    escape = "\\"
    directive = re.match(r"\s*#\s*escape\s*=\s*([\\`])", text)
    if directive is not None:
        escape = directive.group(1)
    instructions: list[Instruction] = []
    pending: list[str] = []
    start_line = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments, also inside a continued instruction
        if not pending:
            start_line = number
            raw = raw.lstrip()
        # As Docker does: the escape and the line break go, the next line follows directly.
        if raw.rstrip().endswith(escape):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw.rstrip())
        instructions.append(_instruction("".join(pending), start_line))
        pending = []
    if pending:
        instructions.append(_instruction("".join(pending), start_line))
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        raise DockerfileError("a Dockerfile starts with FROM (after optional ARGs)")
    if not any(i.keyword == "FROM" for i in instructions):
        raise DockerfileError("the Dockerfile has no FROM")
    return Dockerfile(tuple(instructions))


def _instruction(text: str, line: int) -> Instruction:
    keyword, _, arguments = text.strip().partition(" ")
    keyword = keyword.upper()
    if keyword not in KNOWN:
        raise DockerfileError(f"unknown instruction {keyword!r} on line {line}")
    flags: dict[str, str] = {}
    arguments = arguments.strip()
    while arguments.startswith("--"):
        flag, _, rest = arguments.partition(" ")
        name, _, value = flag[2:].partition("=")
        flags[name.lower()] = value
        arguments = rest.strip()
    if not arguments and keyword not in ("CMD", "ENTRYPOINT"):
        raise DockerfileError(f"{keyword} on line {line} needs arguments")
    return Instruction(keyword, arguments, line, flags)


def copy_arguments(instruction: Instruction) -> tuple[list[str], str]:
    """The sources and the destination of a COPY or ADD."""
    parts = instruction.json_list()
    if parts is None:
        try:
            parts = shlex.split(instruction.arguments, posix=True)
        except ValueError as exc:
            raise DockerfileError(f"line {instruction.line}: {exc}") from exc
    if len(parts) < 2:
        raise DockerfileError(
            f"{instruction.keyword} on line {instruction.line} needs a source and a destination"
        )
    return parts[:-1], parts[-1]


_VARIABLE = re.compile(r"\\\$|\$(?:\{(\w+)(?::([-+])([^}]*))?\}|(\w+))")


def expand(text: str, values: dict[str, str]) -> str:
    """``$NAME``, ``${NAME}``, ``${NAME:-default}`` and ``${NAME:+alternative}``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        name = match.group(1) or match.group(4)
        value = values.get(name)
        if match.group(2) == "-":
            return value if value else match.group(3)
        if match.group(2) == "+":
            return match.group(3) if value else ""
        return value or ""

    return _VARIABLE.sub(substitute, text)


def key_values(instruction: Instruction, values: dict[str, str]) -> list[tuple[str, str]]:
    """``ENV``/``LABEL``/``ARG`` pairs: ``k=v k2="v 2"``, or the old ``ENV key value``."""
    text = instruction.arguments
    if instruction.keyword == "ENV" and "=" not in text.split(" ", 1)[0]:
        key, _, value = text.partition(" ")
        return [(key, expand(value.strip(), values))]
    try:
        words = shlex.split(text, posix=True)
    except ValueError as exc:
        raise DockerfileError(f"line {instruction.line}: {exc}") from exc
    pairs = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals and instruction.keyword != "ARG":
            raise DockerfileError(
                f"{instruction.keyword} on line {instruction.line}: expected key=value"
            )
        pairs.append((key, expand(value, values) if equals else ""))
    return pairs


def arg_declarations(
    instruction: Instruction, values: dict[str, str]
) -> list[tuple[str, str | None]]:
    """``ARG name[=default] ...``: each name with its default, or None when it has none."""
    try:
        words = shlex.split(instruction.arguments, posix=True)
    except ValueError as exc:
        raise DockerfileError(f"line {instruction.line}: {exc}") from exc
    declared: list[tuple[str, str | None]] = []
    for word in words:
        name, equals, default = word.partition("=")
        declared.append((name, expand(default, values) if equals else None))
    return declared
