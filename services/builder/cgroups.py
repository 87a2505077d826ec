"""A process limit for one docker-strategy build: a cgroup of its own with ``pids.max``.

The engine's build API takes no process limit, and ``RLIMIT_NPROC`` does not bind root,
which a ``RUN`` step usually is; what it does take is a parent cgroup for the containers it
runs. Where the builder can write the cgroup filesystem the engine uses (a local engine with
the ``cgroupfs`` driver, as root), each build gets ``<parent>/<build>`` with ``pids.max``
set, removed after the build; elsewhere the operator's own parent, if any, applies.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ProcessLimits:
    def __init__(self, parent: str, root: Path = ROOT) -> None:
        if not all(_NAME.fullmatch(part) for part in parent.strip("/").split("/")):
            raise ValueError(f"{parent!r} is not a cgroup path")
        self.parent = parent.strip("/")
        self.root = root

    def _pids_folder(self) -> Path | None:
        """Where ``pids.max`` lives: the v1 ``pids`` hierarchy, or the v2 unified one."""
        v1 = self.root / "pids"
        if v1.is_dir():
            return v1
        if (self.root / "cgroup.controllers").is_file():
            return self.root
        return None

    def create(self, name: str, processes: int) -> str | None:
        """A cgroup for one build holding at most ``processes`` tasks; the parent to give the
        engine, or None when the builder cannot make one here."""
        folder = self._pids_folder()
        if folder is None or not _NAME.fullmatch(name):
            return None
        try:
            parent = folder / self.parent
            parent.mkdir(parents=True, exist_ok=True)
            if folder == self.root:  # v2: the parent must hand the pids controller down
                _enable_pids(self.root, parent)
            build = parent / name
            build.mkdir(exist_ok=True)
            (build / "pids.max").write_text(str(processes))
        except OSError:
            return None
        return f"/{self.parent}/{name}"

    def remove(self, name: str) -> bool:
        """The build's cgroup, in every hierarchy the engine made it in; False while any is
        still busy (a step's container that is still being removed), to be tried again."""
        if not _NAME.fullmatch(name) or not self.root.is_dir():
            return True
        removed = True
        for hierarchy in [self.root, *(p for p in self.root.iterdir() if p.is_dir())]:
            folder = hierarchy / self.parent / name
            if folder.is_dir():
                try:
                    folder.rmdir()
                except OSError:
                    removed = False
        return removed

    def sweep(self, older_than: float) -> None:
        """Empty build cgroups a builder that died left, untouched for ``older_than`` s."""
        folder = self._pids_folder()
        parent = None if folder is None else folder / self.parent
        if parent is None or not parent.is_dir():
            return
        now = time.time()
        for child in parent.iterdir():
            with contextlib.suppress(OSError):
                if child.name.startswith("build-") and now - child.stat().st_mtime > older_than:
                    self.remove(child.name)


def _enable_pids(root: Path, parent: Path) -> None:
    """cgroup v2 hands a controller down one level at a time, from the root to ``parent``."""
    below_root = [f for f in (parent, *parent.parents) if root in f.parents]
    for folder in [*reversed(below_root), parent / "child"]:
        control = folder.parent / "cgroup.subtree_control"
        if "pids" not in control.read_text().split():
            control.write_text("+pids")
