"""Which .NET configuration transform applies to which file, found as the deployment server's
TransformFileLocator finds them.

Rules come from two places, explicit ones first: the SDI's additional transforms (each entry
split at commas and line breaks, as the server splits its variable) and, when automatic
transforms are on, ``Release``, the environment's name and the tenant's. For every candidate
file (``*.config`` below the package, and ``*<extension>`` of each ``A => B`` rule's target)
each rule is tried in turn:

- ``Release`` looks for ``Web.Release.config`` (or ``Web.Release``) beside ``Web.config``: the
  name replaces the file's extension, so ``App.exe.config`` takes ``App.exe.Release.config``.
- ``T.config => Web.config`` looks for ``T.config`` relative to the target's folder, after
  taking the target pattern's own folders off it (``t/T.config => cfg/Web.config`` finds
  ``t/T.config`` beside ``cfg``). The target pattern is compared, case-insensitively, with
  the candidate's path as seen from the transform (``../`` and ``./`` trimmed), or with its
  path below the package when it starts ``./``.
- Transform files are found by listing their folder as .NET lists one on Linux, where the
  server runs SDI builds: names compare case-sensitively (``Web.release.config`` is not
  ``Web.Release.config``), with .NET's Win32 wildcards (``?`` may match nothing before a
  dot, ``.*`` may match the end of a name).
- A leading ``*.`` makes a wildcard: ``*.X.config => *.config`` pairs ``web.X.config`` with
  ``web.config``; ``*.X.config => web.config`` applies every ``*.X.config`` beside the target;
  ``T.config => *.config`` applies ``T.config`` to every ``.config`` file beside it. A ``*``
  elsewhere in a transform name is a plain file-name wildcard; elsewhere in a target it is
  not a wildcard at all.

A target given as an absolute path matches nothing (as on the server); a transform given as
one names a file outside the package, which a build may not read (RuleError). Paths are
worked out below a virtual root standing for the package (``ROOT``) and never leave it: a
folder a rule leads to outside it does not exist. Backslashes are separators.

Every name compared, and every folder listed, spends a step budget (a long name against a
long pattern more than one step; matching is linear in both, with no backtracking): a rule set
and a package of any size end within it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

ROOT = "/package"
MAX_STEPS = 1_000_000  # names compared and folders listed while matching transforms


class RuleError(ValueError):
    """A transform rule cannot be used: a malformed ``A => B``, or a path outside."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One transform definition, as the server reads it."""

    text: str
    transform: str  # the transform pattern, with a leading "*." (or "*") taken off
    target: str | None  # the target pattern of "A => B", likewise
    advanced: bool  # written "A => B"
    transform_wildcard: bool
    target_wildcard: bool


def parse_rule(text: str) -> Rule:
    """``text`` read as the server's XmlConfigTransformDefinition reads it."""
    definition = text.replace("\\", "/")
    if "=>" not in definition:
        return Rule(text, definition, None, False, False, False)
    parts = [part for part in definition.split("=>") if part]
    if len(parts) < 2 or not parts[0].strip() or not parts[1].strip():
        raise RuleError(f"transform rule {text!r} is not 'transform => target'")
    transform, target = parts[0].strip(), parts[1].strip()
    if _is_absolute(transform):
        raise RuleError(
            f"transform rule {text!r} names a transform by an absolute path: it must be a "
            "file in the package"
        )
    transform_wildcard = _file_name(transform).startswith("*.")
    target_wildcard = _file_name(target).startswith("*.")
    return Rule(
        text,
        _trim_wildcard(transform) if transform_wildcard else transform,
        _trim_wildcard(target) if target_wildcard else target,
        True,
        transform_wildcard,
        target_wildcard,
    )


def rules(
    additional: Iterable[str], *, automatic: bool, environment: str | None, tenant: str | None
) -> tuple[list[Rule], list[Rule]]:
    """The explicit rules (from ``additional``) and the automatic ones, in the server's order."""
    explicit = [
        parse_rule(piece.strip())
        for entry in additional
        for piece in re.split(r"[,\r\n]", entry)
        if piece.strip()
    ]
    names = ["Release", environment, tenant] if automatic else []
    return explicit, [parse_rule(name) for name in names if name and name.strip()]


def candidate_patterns(explicit: list[Rule], *, automatic: bool) -> list[str]:
    """The file patterns (``*.config``, ``*.xml``) of the files transforms may apply to."""
    patterns = ["*.config"] if automatic else []
    for rule in explicit:
        if rule.advanced and rule.target is not None:
            pattern = "*" + _extension(rule.target)
            if pattern not in patterns:
                patterns.append(pattern)
    return patterns


def applies_to(rule: Rule, candidate: str) -> bool:
    """The server's first check: a wildcard transform only for targets ending as named."""
    if not rule.transform_wildcard or rule.target is None:
        return True
    return candidate.lower().endswith(_file_name(rule.target).lower())


class Folders(Protocol):
    """The package as the locator sees it: paths are below ``ROOT``."""

    def is_folder(self, path: str) -> bool: ...

    def names(self, path: str) -> list[str]: ...

    def is_file(self, path: str) -> bool: ...


class Steps:
    """What is left of the step budget."""

    def __init__(self, limit: int = MAX_STEPS) -> None:
        self.limit = limit
        self.left = limit

    def spend(self, count: int = 1) -> None:
        self.left -= count
        if self.left < 0:
            raise RuleError(
                f"matching transforms to files took more than {self.limit} steps: too many "
                "files or rules"
            )


def transform_files(
    candidate: str, rule: Rule, folders: Folders, steps: Steps, current: str = ROOT
) -> Iterator[str]:
    """The transforms ``rule`` applies to ``candidate`` (a path below ``ROOT``), as the
    server's DetermineTransformFileNames yields them."""
    default_name = _transform_name(candidate, rule, default_extension=True)
    name = _transform_name(candidate, rule, default_extension=False)
    if name.startswith("/"):
        folder = posixpath.normpath(_directory(name) or "/")
    else:
        relative = relative_path(candidate, name)
        folder = posixpath.normpath(_combine(_directory(candidate) or "", _directory(relative)))
    if not _below_root(folder) or not folders.is_folder(folder):
        return
    patterns = [_Wildcard(_file_name(default_name)), _Wildcard(_file_name(name))]
    entries = folders.names(folder)
    steps.spend(sum(pattern.cost(entry) for pattern in patterns for entry in entries) + 1)
    found: list[str] = []
    for pattern in patterns:
        for entry in entries:
            path = f"{folder.rstrip('/')}/{entry}"
            if pattern.matches(entry) and path not in found:
                found.append(path)
    for transform in found:
        seen_as = _target_name(candidate, rule, name, transform, current)
        if rule.advanced and rule.target is not None:
            if not rule.target_wildcard and rule.target.lower() != seen_as.lower():
                continue
            if rule.target_wildcard and not _matches_wildcard_target(seen_as, rule.target):
                continue
        if not folders.is_file(transform):
            continue
        if candidate.lower() == transform.lower():
            continue
        yield transform


def relative_path(from_file: str, to_file: str) -> str:
    """The server's GetRelativePath: from ``from_file``'s folder to ``to_file``."""
    source = from_file.split("/")
    target = to_file.split("/")
    matching = 0
    while (
        matching < len(source) - 1
        and matching < len(target)
        and source[matching] == target[matching]
    ):
        matching += 1
    ups = [".."] * (len(source) - 1 - matching)
    return "/".join([*ups, *target[matching:]])


def _transform_name(candidate: str, rule: Rule, *, default_extension: bool) -> str:
    pattern = rule.transform
    if default_extension and not pattern.endswith(".config"):
        pattern += ".config"
    if rule.advanced and rule.transform_wildcard and rule.target_wildcard:
        return _wildcard_transform_name(candidate, rule, pattern)
    if rule.advanced and rule.transform_wildcard:
        folder = _transform_folder(candidate, rule)
        return _combine(folder, _directory(pattern), "*." + _file_name(pattern).lstrip("."))
    if rule.advanced:
        return _combine(_transform_folder(candidate, rule), pattern)
    return _change_extension(candidate, pattern)


def _wildcard_transform_name(candidate: str, rule: Rule, pattern: str) -> str:
    target = rule.target or ""
    suffix = target[1:] if target.startswith(".") else _file_name(target)
    if not suffix:
        raise RuleError(f"transform rule {rule.text!r} has an empty target pattern")
    base = _file_name(candidate).replace(suffix, "")
    path = _combine(_transform_folder(candidate, rule), _directory(pattern), base)
    return _change_extension(path, _file_name(pattern))


def _transform_folder(candidate: str, rule: Rule) -> str:
    """The candidate's folder, less the folders the target pattern names at its end."""
    folder = _directory(candidate) or ""
    if rule.target is None or "/" not in rule.target:
        return folder
    named = rule.target[: rule.target.rindex("/")]
    if folder.lower().endswith(named.lower()):
        return folder[: len(folder) - len(named)]
    return folder


def _target_name(candidate: str, rule: Rule, name: str, transform: str, current: str) -> str:
    """The candidate's name as the rule's target pattern is compared with it."""
    target = rule.target or ""
    if name.startswith("/") and target.startswith("./"):
        path = relative_path(current, candidate)
        slash = path.find("/")
        return "." + path[slash:] if slash >= 0 else "." + path
    if "/" in target:
        return relative_path(transform, candidate).lstrip("./")
    return _file_name(candidate)


def _matches_wildcard_target(name: str, pattern: str) -> bool:
    folder = _directory(pattern)
    expression = (re.escape(folder) + "/" if folder else "") + ".*?" + re.escape(".")
    expression += re.escape(_file_name(pattern).lstrip("."))
    return re.search(expression, name, re.IGNORECASE) is not None


def _trim_wildcard(pattern: str) -> str:
    star = pattern.index("*")
    return pattern[:star] + pattern[star + (2 if pattern.rfind(".") > star + 1 else 1) :]


class _Wildcard:
    """A file-name pattern as the server's folder listing on Linux reads it: case-sensitive,
    with the Win32 wildcards .NET keeps there. ``*`` is any run of characters, but ``*.`` at
    the end a name without a dot; ``?`` is one character other than ``.``, or none before a
    ``.`` or the end; a ``.`` before ``*`` or ``?`` is a dot, or nothing at the end.

    Matched as a set of pattern positions carried along the name (bits of an integer), so a
    match costs the name's length times the pattern's in words, never more: a regular
    expression would backtrack exponentially on a pattern of many stars."""

    def __init__(self, pattern: str) -> None:
        self.any = pattern in ("*", "*.*")
        self.literal: str | None = None
        self.size = 0  # tokens; the accepting position is this bit
        self.literals: dict[str, int] = {}  # character -> positions taking it
        self.required = 0  # characters the literal positions alone consume
        self.stars = self.plain_stars = self.questions = self.dots = 0
        if self.any:
            return
        tokens: list[str] = []
        for index, char in enumerate(pattern):
            last = index == len(pattern) - 1
            if char == "*":
                final = index == len(pattern) - 2 and pattern[-1] == "."
                tokens.append("*." if final else "*")
            elif char == "?":
                tokens.append("?")
            elif char == "." and index > 0 and last and pattern[index - 1] == "*":
                continue  # "*." at the end: taken with the star
            elif char == "." and not last and pattern[index + 1] in "*?":
                tokens.append(".?")
            else:
                tokens.append("=" + char)
        if all(token[0] == "=" for token in tokens):
            self.literal = pattern
            return
        self.size = len(tokens)
        for position, token in enumerate(tokens):
            bit = 1 << position
            if token == "*":
                self.stars |= bit
                self.plain_stars |= bit
            elif token == "*.":
                self.stars |= bit
            elif token == "?":
                self.questions |= bit
            elif token == ".?":
                self.dots |= bit
            else:
                self.literals[token[1]] = self.literals.get(token[1], 0) | bit
                self.required += 1

    def cost(self, name: str) -> int:
        """Steps charged for matching ``name``: one, and more for a long name and pattern."""
        return 1 + len(name) * (self.size // 64 + 1) // 1024

    def matches(self, name: str) -> bool:
        if self.any:
            return True
        if self.literal is not None:
            return name == self.literal
        if len(name) < self.required:
            return False
        states = self._closure(1, name[0] if name else "")
        for index, char in enumerate(name):
            if char == ".":
                advance = self.literals.get(".", 0) | self.dots
                stay = self.plain_stars
            else:
                advance = self.literals.get(char, 0) | self.questions
                stay = self.stars
            states = ((states & advance) << 1) | (states & stay)
            if not states:
                return False
            states = self._closure(states, name[index + 1 : index + 2])
        return bool(states >> self.size & 1)

    def _closure(self, states: int, following: str) -> int:
        """``states`` with the positions reachable without consuming a character before
        ``following`` (empty at the end): past a star always, past ``?`` before a dot or
        the end, past a dot-or-end at the end."""
        passable = self.stars
        if following in (".", ""):
            passable |= self.questions
        if not following:
            passable |= self.dots
        # Positions carried up through runs of passable ones (a prefix scan in log steps).
        carried, through, shift = states & passable, passable, 1
        while through and shift <= self.size:
            carried |= through & (carried << shift)
            through &= through << shift
            shift *= 2
        return states | (carried << 1)


def _change_extension(path: str, extension: str) -> str:
    base = path
    for index in range(len(path) - 1, -1, -1):
        if path[index] == ".":
            base = path[:index]
            break
        if path[index] == "/":
            break
    return base + extension if extension.startswith(".") else f"{base}.{extension}"


def _combine(*parts: str) -> str:
    result = ""
    for part in parts:
        if not part:
            continue
        if part.startswith("/") or not result:
            result = part
        else:
            result = result + part if result.endswith("/") else f"{result}/{part}"
    return result


def _directory(path: str) -> str:
    if path in ("", "/"):
        return ""
    head = posixpath.dirname(path)
    return head if head == "/" else head.rstrip("/")


def _file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _extension(path: str) -> str:
    name = _file_name(path)
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def _is_absolute(path: str) -> bool:
    return path.startswith("/") or bool(re.match(r"[A-Za-z]:", path))


def _below_root(path: str) -> bool:
    return path == ROOT or path.startswith(ROOT + "/")


def package_path(relative: str) -> str:
    """The path below ``ROOT`` of a file ``relative`` to the package."""
    return f"{ROOT}/{relative}" if relative else ROOT


def relative_to_package(path: str) -> str:
    """The inverse of ``package_path``."""
    return path[len(ROOT) + 1 :] if path.startswith(ROOT + "/") else ""


MAX_TRANSFORMS = 1000  # transforms applied in one feature run


@dataclass(slots=True)
class Plan:
    """The transforms to apply, in order, as (transform, target) paths relative to the
    package; and the explicit rules that applied to nothing."""

    pairs: list[tuple[str, str]]
    unused: list[Rule]


def plan(
    candidates: list[str],
    explicit: list[Rule],
    automatic: list[Rule],
    folders: Folders,
    steps: Steps | None = None,
) -> Plan:
    """For each candidate (relative to the package, in order) each rule in turn, explicit
    ones first; a transform already applied to a target is not applied again."""
    steps = steps or Steps()
    pairs: list[tuple[str, str]] = []
    applied: set[tuple[str, str]] = set()
    used: set[str] = set()
    for candidate in candidates:
        path = package_path(candidate)
        for rule in [*explicit, *automatic]:
            steps.spend()
            if not applies_to(rule, path):
                continue
            for transform in transform_files(path, rule, folders, steps):
                used.add(rule.text)
                if (transform, path) in applied:
                    continue
                applied.add((transform, path))
                pairs.append((relative_to_package(transform), candidate))
                if len(pairs) > MAX_TRANSFORMS:
                    raise RuleError(f"more than {MAX_TRANSFORMS} transforms would be applied")
    unused = [rule for rule in explicit if rule.text not in used]
    return Plan(pairs, unused)


def named_folders(explicit: list[Rule]) -> list[str]:
    """The folders explicit rules name literally (no wildcard, no ``..``), relative to the
    package: a build checks that none leads out of it through a link."""
    folders: list[str] = []
    for rule in explicit:
        for pattern in (rule.transform, rule.target or ""):
            parts = [part for part in _directory(pattern).split("/") if part not in ("", ".")]
            if (
                not parts
                or ".." in parts
                or any(c in pattern for c in "*?")
                or _is_absolute(pattern)
            ):
                continue
            folder = "/".join(parts)
            if folder not in folders:
                folders.append(folder)
    return folders


class PackageFolders:
    """``Folders`` over a build context; ``resolve`` resolves a path beneath it (refusing a
    link out of it), each folder is listed once."""

    def __init__(self, context: Path, resolve: Callable[[Path], Path]) -> None:
        self.context = context
        self.resolve = resolve
        self.listings: dict[str, list[str]] = {}

    def _path(self, path: str) -> Path:
        relative = relative_to_package(path)
        return self.context / relative if relative else self.context

    def is_folder(self, path: str) -> bool:
        return self.resolve(self._path(path)).is_dir()

    def names(self, path: str) -> list[str]:
        if path not in self.listings:
            try:
                folder = self.resolve(self._path(path))
                self.listings[path] = sorted(entry.name for entry in folder.iterdir())
            except OSError:
                self.listings[path] = []
        return self.listings[path]

    def is_file(self, path: str) -> bool:
        return self.resolve(self._path(path)).is_file()
