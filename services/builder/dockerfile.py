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

from shared.builds.errors import DockerfileInvalid

ASSEMBLED = frozenset(
    {"FROM", "ARG", "COPY", "ADD", "ENV", "LABEL", "WORKDIR", "USER", "EXPOSE", "CMD",
     "ENTRYPOINT", "VOLUME", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
)  # fmt: skip
KNOWN = ASSEMBLED | {"RUN", "ONBUILD"}
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


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


# Characters Python treats as line breaks or trims as blanks where Docker does not (or the
# other way round): a Dockerfile holding one could be read one way here and another there.
_AMBIGUOUS = re.compile(
    "[\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
DIRECTIVES = ("syntax", "escape", "check")
_FLAG = re.compile(r"--[a-zA-Z][a-zA-Z-]*(=[A-Za-z0-9._:/@+,=${}*?!\[\]%-]*)?")
_HEREDOC = re.compile(r"<<-?[\"']?[A-Za-z_]")
_DIRECTIVE = re.compile(r"#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*")


def parse_dockerfile(text: str) -> Dockerfile:
    """The instructions, read as Docker's parser reads them: lines end at ``\n`` (a ``\r``
    before it goes), parser directives come first, and a line continues when its escape
    character ends it, spaces and tabs aside."""
    lines = [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]
    for number, line in enumerate(lines, start=1):
        ambiguous = _AMBIGUOUS.search(line)
        if ambiguous is not None:
            raise DockerfileInvalid(
                f"line {number} holds the character U+{ord(ambiguous.group()):04X}, which "
                "Docker and this builder would not read alike"
            )
    escape, first = _directives(lines)
    instructions: list[Instruction] = []
    pending: list[str] = []
    start_line = 0
    for number, raw in enumerate(lines[first:], start=first + 1):
        stripped = raw.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue  # blank lines and comments, also inside a continued instruction
        if not pending:
            start_line = number
            raw = raw.lstrip(" \t")
        if stripped == escape or stripped.endswith(escape * 2):
            # Docker's versions disagree on whether such a line continues.
            raise DockerfileInvalid(
                f"line {number} ends with {escape * 2 if stripped != escape else escape}, which "
                "Docker's versions read differently; end it otherwise"
            )
        # As Docker does: the escape and the line break go, the next line follows directly.
        if raw.rstrip(" \t").endswith(escape):
            pending.append(raw.rstrip(" \t")[:-1])
            continue
        pending.append(raw.rstrip(" \t"))
        instructions.append(_instruction("".join(pending), start_line))
        pending = []
    if pending:
        instructions.append(_instruction("".join(pending), start_line))
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        raise DockerfileInvalid("a Dockerfile starts with FROM (after optional ARGs)")
    if not any(i.keyword == "FROM" for i in instructions):
        raise DockerfileInvalid("the Dockerfile has no FROM")
    return Dockerfile(tuple(instructions))


def _directives(lines: list[str]) -> tuple[str, int]:
    """The escape character, and the index of the first line after the parser directives
    (``# key=value`` lines of known keys at the very top; anything else, a blank line or an
    unknown key too, ends them)."""
    escape = "\\"
    seen: set[str] = set()
    for index, line in enumerate(lines):
        match = _DIRECTIVE.fullmatch(line.strip(" \t"))
        if match is None or match.group(1).lower() not in DIRECTIVES:
            return escape, index
        key, value = match.group(1).lower(), match.group(2)
        if key in seen:
            raise DockerfileInvalid(f"the {key} parser directive is given twice")
        if key == "escape" and "check" in seen:
            # Engines before the check directive end the directives at it: they would read
            # this escape line as a comment.
            raise DockerfileInvalid("put the escape parser directive before the check directive")
        seen.add(key)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileInvalid(f"invalid escape character {value!r}: use \\ or `")
            escape = value
    return escape, len(lines)


def parse_instruction(text: str, line: int = 1) -> Instruction:
    """One instruction's text (an ONBUILD trigger, say), read like a Dockerfile's."""
    if _AMBIGUOUS.search(text) or "\n" in text:
        raise DockerfileInvalid(f"instruction on line {line} holds characters Docker reads apart")
    return _instruction(text, line)


def _instruction(text: str, line: int) -> Instruction:
    keyword, _, arguments = _split_word(text.strip(" \t"))
    keyword = keyword.upper()
    if keyword not in KNOWN:
        raise DockerfileInvalid(f"unknown instruction {keyword!r} on line {line}")
    flags: dict[str, str] = {}
    while arguments.startswith("--"):
        flag, _, arguments = _split_word(arguments)
        if _FLAG.fullmatch(flag) is None:
            # Docker reads quotes, escapes and some non-ASCII bytes in flags its own way.
            raise DockerfileInvalid(
                f"{keyword} on line {line}: the flag {flag[:60]!r} is not --name=value in plain "
                "characters"
            )
        name, _, value = flag[2:].partition("=")
        flags[name.lower()] = value
    if not arguments and keyword not in ("CMD", "ENTRYPOINT"):
        raise DockerfileInvalid(f"{keyword} on line {line} needs arguments")
    if keyword in ("RUN", "COPY", "ADD") and _HEREDOC.search(arguments):
        raise DockerfileInvalid(
            f"{keyword} on line {line} uses a here-document, which engines read differently"
        )
    return Instruction(keyword, arguments, line, flags)


def _split_word(text: str) -> tuple[str, str, str]:
    """The first word and the rest, separated by spaces or tabs as Docker separates them."""
    parts = re.split(r"[ \t]+", text, maxsplit=1)
    return parts[0], " ", parts[1].strip(" \t") if len(parts) > 1 else ""


def copy_arguments(instruction: Instruction) -> tuple[list[str], str]:
    """The sources and the destination of a COPY or ADD."""
    parts = instruction.json_list()
    if parts is None:
        try:
            parts = shlex.split(instruction.arguments, posix=True)
        except ValueError as exc:
            raise DockerfileInvalid(f"line {instruction.line}: {exc}") from exc
    if len(parts) < 2:
        raise DockerfileInvalid(
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
        raise DockerfileInvalid(f"line {instruction.line}: {exc}") from exc
    pairs = []
    for word in words:
        key, equals, value = word.partition("=")
        if not equals and instruction.keyword != "ARG":
            raise DockerfileInvalid(
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
        raise DockerfileInvalid(f"line {instruction.line}: {exc}") from exc
    declared: list[tuple[str, str | None]] = []
    for word in words:
        name, equals, default = word.partition("=")
        declared.append((name, expand(default, values) if equals else None))
    return declared
