"""Safe extraction of package archives (zip, tar.gz) into a build context.

Nothing lands outside the destination, whatever order the entries come in: an entry with
``..`` or an absolute path, an entry written through a link, a link or hard link that could
lead out of the tree, and device files are refused, each with its own error; so is a build
whose archives together expand beyond its budget (counted from the bytes actually written,
not from headers a zip bomb can lie in).

Links follow one rule, judged from their text and where they are: a target first climbs
(``..``), never above the folder extracted into, then only descends (``../lib/x.so``,
``current -> v1``). A target that descends and climbs again (``b/b/../..``) is refused even
when it lands inside today, because a later link (``b -> .``) can change where it lands.
Since no entry is written through a link, every link sits where its name says, and with the
rule every path beneath the root resolves beneath it at every moment, in whatever order the
links were made; a link whose target does not exist (yet) is fine, it can only ever land
inside. ``verify_tree`` judges a whole tree by the same rule, walking it once without
following links.
"""

from __future__ import annotations

import lzma
import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shared.builds.errors import (
    ArchiveAbsolutePath,
    ArchiveInvalid,
    ArchiveLinkEscape,
    ArchivePathTraversal,
    ArchiveSpecialFile,
    ArchiveTooLarge,
)
from shared.builds.errors import ArchiveError as ArchiveError

COPY_CHUNK = 1024 * 1024
MAX_PATH = 4096  # Linux's PATH_MAX: no longer entry name or link target can be used


@dataclass(frozen=True, slots=True)
class Limits:
    """What one build may extract, all its archives together (the defaults are those of
    SPACEDOCK_BUILD_MAX_EXTRACT_BYTES and SPACEDOCK_BUILD_MAX_FILES)."""

    max_bytes: int = 4 * 1024**3
    max_files: int = 200_000

    def budget(self) -> Budget:
        """A fresh budget of these limits, for one build."""
        return Budget(self)


class Budget:
    """What a build has extracted so far against its ``Limits``: one per build, passed to
    every ``extract`` of that build. Every entry of an archive counts as a file (folders and
    links too), as does every folder made for an entry without its own, and every archive
    (an empty one is still a download and a walk of its tree). A hard link costs the bytes of
    its file: the image holds its content once for each name."""

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self.bytes = 0
        self.files = 0

    def entry(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise ArchiveTooLarge(
                f"the build's packages hold more than {self.limits.max_files} files, folders "
                "and links (SPACEDOCK_BUILD_MAX_FILES)",
            )

    def add(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise ArchiveTooLarge(
                f"the build's packages expand beyond {self.limits.max_bytes} bytes "
                "(SPACEDOCK_BUILD_MAX_EXTRACT_BYTES)",
            )


def safe_relative(name: str, *, what: str = "entry") -> str:
    """``name`` as a normalised relative POSIX path; ArchiveAbsolutePath or
    ArchivePathTraversal when it would leave."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise ArchiveAbsolutePath(f"{what} {name!r} has an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchivePathTraversal(f"{what} {name!r} leaves the folder (..)")
    return "/".join(parts)


def link_problem(depth: int, target: str) -> str | None:
    """Why a link ``depth`` folders below the root may not point at ``target`` (None when
    it may): see the module's rule."""
    if not target:
        return "has no target"
    if target.startswith("/") or target[1:2] == ":":
        return "points to an absolute path"
    if len(os.fsencode(target)) >= MAX_PATH:
        return "has a target too long to use"
    climbs = 0
    descended = False
    for part in target.split("/"):
        if part == "..":
            if descended:
                return "descends and climbs again (x/..), so a later link could move it"
            climbs += 1
        elif part not in ("", "."):
            descended = True
    return "points out of the folder" if climbs > depth else None


def verify_tree(root: Path) -> None:
    """Refuse a tree holding a link that breaks the rule (ArchiveLinkEscape) or a device,
    FIFO or socket (ArchiveSpecialFile). Walks the tree once without following
    links, reading only the links' targets."""
    folders = [(str(root), 0)]  # each with how many folders below the root it is
    while folders:
        folder, depth = folders.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink():
                    target = os.readlink(entry)  # noqa: PTH115 - the text, not a normalised Path
                    problem = link_problem(depth, target)
                    if problem is not None:
                        name = os.path.relpath(entry.path, root)
                        raise ArchiveLinkEscape(f"link {name!r} {problem}")
                elif entry.is_dir(follow_symlinks=False):
                    folders.append((entry.path, depth + 1))
                elif not entry.is_file(follow_symlinks=False):
                    name = os.path.relpath(entry.path, root)
                    raise ArchiveSpecialFile(f"{name!r} is a special file")


def extract(archive: Path, destination: Path, budget: Budget | None = None) -> list[str]:
    """Extract ``archive`` (by its content: zip or gzip'd tar) into ``destination``, counted
    against the build's ``budget`` (a budget of its own when None), and verify the tree it
    made; the relative paths of the regular files written."""
    if budget is None:
        budget = Budget()
    budget.entry()  # the archive itself
    with archive.open("rb") as handle:
        magic = handle.read(4)
    try:
        destination.mkdir(parents=True, exist_ok=True)
        tree = _Tree(destination, budget)
        if magic.startswith(b"PK"):
            try:
                written = _extract_zip(archive, tree)
            except (RuntimeError, NotImplementedError, lzma.LZMAError) as exc:
                # encrypted, a method zipfile lacks, damaged LZMA data
                raise ArchiveInvalid(f"the zip archive: {exc}") from exc
        elif magic.startswith(b"\x1f\x8b"):
            written = _extract_tar(archive, tree)
        else:
            raise ArchiveInvalid("not a zip or tar.gz archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveInvalid(f"the archive cannot be read: {exc}") from exc
    verify_tree(destination)
    return written


class _Tree:
    """The destination as it is written: the folders known to be real folders, not links."""

    def __init__(self, root: Path, budget: Budget) -> None:
        self.root = root
        self.budget = budget
        self.folders = {""}

    def folder(self, relative: str, entry: str, *, create: bool = True) -> Path:
        """The folder ``relative``, made (each new folder counted) when missing; refused when
        a link or a file is on its way."""
        missing = []
        current = relative
        while current not in self.folders:
            missing.append(current)
            current = current.rpartition("/")[0]
        for part in reversed(missing):
            path = self.root / part
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                if not create:
                    raise
                if part != entry:  # an entry's own folder is counted as the entry
                    self.budget.entry()
                path.mkdir()
                mode = stat.S_IFDIR
            if stat.S_ISLNK(mode):
                raise ArchiveLinkEscape(f"{entry!r} would be written through a link")
            if not stat.S_ISDIR(mode):
                raise ArchiveInvalid(f"{entry!r} is beneath a file")
            self.folders.add(part)
        return self.root / relative

    def place(self, relative: str) -> Path:
        """Where a file or link entry goes, its folder made and what was there removed."""
        parent, _, name = relative.rpartition("/")
        path = self.folder(parent, relative) / name
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            return path
        if stat.S_ISDIR(mode):
            raise ArchiveInvalid(f"{relative!r} is a folder already")
        path.unlink()
        return path


def _entry_name(name: str) -> str:
    if len(name) >= MAX_PATH:
        raise ArchiveInvalid(f"an entry name is over {MAX_PATH} characters")
    return safe_relative(name)


def _symlink(tree: _Tree, relative: str, target: str) -> None:
    problem = link_problem(relative.count("/"), target)
    if problem is not None:
        raise ArchiveLinkEscape(f"link {relative!r} {problem}")
    tree.place(relative).symlink_to(target)


def _copy(source: IO[bytes], path: Path, budget: Budget, mode: int) -> None:
    # O_EXCL | O_NOFOLLOW: a new file where ``place`` left nothing, never a link's target.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o600), "wb") as out:
        while chunk := source.read(COPY_CHUNK):
            budget.add(len(chunk))
            out.write(chunk)
        os.fchmod(out.fileno(), mode & 0o777 or 0o644)


def _extract_zip(archive: Path, tree: _Tree) -> list[str]:
    written: list[str] = []
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            tree.budget.entry()
            relative = _entry_name(info.filename)
            if not relative:
                continue
            mode = info.external_attr >> 16
            if info.is_dir() or stat.S_ISDIR(mode):
                tree.folder(relative, relative)
                continue
            if stat.S_ISLNK(mode):
                with bundle.open(info) as source:
                    target = source.read(MAX_PATH)  # enough to know a longer one is refused
                tree.budget.add(len(target))
                _symlink(tree, relative, os.fsdecode(target))
                continue
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type recorded (Windows)
                raise ArchiveSpecialFile(f"{info.filename!r} is a special file")
            with bundle.open(info) as source:
                _copy(source, tree.place(relative), tree.budget, mode or 0o644)
            written.append(relative)
    return written


def _extract_tar(archive: Path, tree: _Tree) -> list[str]:
    written: list[str] = []
    with tarfile.open(archive, "r:gz") as bundle:
        for member in _members(bundle, tree.budget):
            relative = _entry_name(member.name)
            if not relative:
                continue
            if member.isdir():
                tree.folder(relative, relative)
            elif member.issym():
                tree.budget.add(len(member.linkname))
                _symlink(tree, relative, member.linkname)
            elif member.islnk():
                _hard_link(tree, relative, member.linkname)
                written.append(relative)
            elif member.isfile():
                extracted = bundle.extractfile(member)
                if extracted is None:
                    raise ArchiveInvalid(f"{member.name!r} cannot be read")
                with extracted:
                    _copy(extracted, tree.place(relative), tree.budget, member.mode)
                written.append(relative)
            else:
                raise ArchiveSpecialFile(
                    f"{member.name!r} is a device, FIFO or other special file",
                )
    return written


def _hard_link(tree: _Tree, relative: str, linkname: str) -> None:
    """A second name for a regular file already extracted, reached without links, charged
    its file's size: a layer (the assembled strategy copies each name) holds it again."""
    try:
        source = safe_relative(linkname, what="hard link target")
        parent, _, name = source.rpartition("/")
        path = tree.folder(parent, relative, create=False) / name
        status = path.lstat()
        regular = bool(name) and stat.S_ISREG(status.st_mode)
    except (ArchiveError, FileNotFoundError):
        regular = False
    if not regular:
        raise ArchiveLinkEscape(f"hard link {relative!r} has no file in the tree to name")
    tree.budget.add(status.st_size)
    os.link(path, tree.place(relative), follow_symlinks=False)


def _members(bundle: tarfile.TarFile, budget: Budget) -> Iterator[tarfile.TarInfo]:
    while (member := bundle.next()) is not None:
        budget.entry()
        yield member


def extract_bytes(content: bytes, destination: Path, budget: Budget | None = None) -> list[str]:
    """``extract`` for an archive held in memory (small ones, in tests and tools)."""
    scratch = destination.parent / f".{destination.name}.archive"
    scratch.write_bytes(content)
    try:
        return extract(scratch, destination, budget)
    finally:
        scratch.unlink(missing_ok=True)
