"""Secrets a process makes once and keeps in its data directory (``spacedock serve``'s
sealing key, its metadata server's password): created readable by the owner only, never
overwritten, and the same for every process that starts on that directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def stored_secret(path: Path, make: Callable[[], str]) -> str:
    """The text kept in ``path`` (stripped), made with ``make`` on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    text = make()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use that one
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    return text
