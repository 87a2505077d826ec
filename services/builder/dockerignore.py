"""``.dockerignore`` of a build context, so both strategies see the same files.

Patterns are relative to the context; ``*`` and ``?`` stay within a path segment, ``**``
crosses any number of them, a pattern that names a folder excludes what is inside it, and a
``!`` pattern brings back what an earlier one excluded; the last matching pattern wins.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class DockerIgnore:
    rules: tuple[tuple[re.Pattern[str], bool], ...] = ()  # (pattern, excludes)

    @classmethod
    def load(cls, context: Path) -> DockerIgnore:
        path = context / ".dockerignore"
        if not path.is_file():
            return cls()
        rules = []
        for line in path.read_text(errors="replace").splitlines():
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            excludes = not text.startswith("!")
            pattern = posixpath.normpath(text.lstrip("!").strip().lstrip("/"))
            if pattern in (".", ""):
                continue
            rules.append((re.compile(_translate(pattern)), excludes))
        return cls(tuple(rules))

    def excluded(self, relative: str) -> bool:
        """Whether the file or folder at ``relative`` (POSIX, from the context) is left out."""
        if not self.rules:
            return False
        parts = relative.split("/")
        result = False
        for pattern, excludes in self.rules:
            # A folder's pattern covers everything inside it.
            if any(pattern.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
                result = excludes
        return result


def _translate(pattern: str) -> str:
    out, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            if pattern.startswith("/", index):
                out[-1] = "(?:.*/)?"
                index += 1
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(char))
        index += 1
    return "".join(out)
