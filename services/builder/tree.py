"""Finding, reading and writing files in a build context that tenant archives made.

The context is hostile even after ``archives.verify_tree`` passed it: every path is resolved
beneath the root before it is read or written, a link is followed only once it is shown to
stay beneath, and no folder outside the root is ever listed. A refusal names the path as the
tenant wrote it, never where it leads nor anything read there.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from pathlib import Path

from services.builder.archives import safe_relative
from shared.builds.errors import ArchiveLinkEscape, ArchiveSpecialFile, ArchiveTooLarge

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def inside(root: Path, path: Path) -> Path:
    """``path`` with every link on it followed, when that stays beneath ``root``; otherwise
    ArchiveLinkEscape."""
    return Path(_beneath(os.path.realpath(root), _name(root, path), str(path)))


def files(root: Path, pattern: str) -> list[Path]:
    """The regular files beneath ``root`` that ``pattern`` matches, sorted, each once.

    ``pattern`` is relative: ``*``, ``?`` and ``[...]`` match within a name (a leading dot
    too), ``**`` any number of folders. As with ``Path.glob``, ``**`` does not go into a
    linked folder while a folder named or matched by a wildcard may be one; such a link, or a
    matching link to a file, is followed only after it is shown to stay beneath ``root``
    (ArchiveLinkEscape otherwise). The paths are as the pattern reached them (``root /
    name``); a file reached by several names is listed once, under the first name a walk in
    name order reaches.
    """
    parts = [part for part in pattern.split("/") if part]
    parts = [p for n, p in enumerate(parts) if not (p == "**" and parts[n - 1 : n] == ["**"])]
    real_root = os.path.realpath(root)
    found: dict[Path, str] = {}  # real path -> the first name that reached it
    pending = [("", Path(real_root), 0)] if parts else []  # (name, real path, parts matched)
    seen: set[tuple[Path, int]] = set()  # each folder is searched for each part once
    while pending:
        name, real, done = pending.pop()
        if done == len(parts):
            if _is_regular(real):
                found.setdefault(real, name)
            continue
        if (real, done) in seen:
            continue
        seen.add((real, done))
        part = parts[done]
        reached: list[tuple[str, Path, int]] = []
        if part == "**":
            reached.append((name, real, done + 1))
            reached.extend(
                (_join(name, entry.name), Path(entry.path), done)
                for entry in _entries(real)
                if entry.is_dir(follow_symlinks=False)
            )
        else:
            if any(sign in part for sign in "*?["):
                children = [e.name for e in _entries(real) if fnmatch.fnmatchcase(e.name, part)]
            else:
                children = [part]
            for child in children:
                child_name = _join(name, child)
                child_real = _follow(real_root, child_name, real / child)
                if child_real is not None and (done + 1 == len(parts) or child_real.is_dir()):
                    reached.append((child_name, child_real, done + 1))
        pending.extend(reversed(reached))  # the first of them is taken next
    return sorted(root / name for name in found.values())


def read_regular(root: Path, name: str, max_bytes: int) -> bytes | None:
    """The content of ``name`` (relative to ``root``), which must be a regular file reached
    without any link; None when there is no such file.

    ArchiveLinkEscape when it, or a folder on its way, is a link; ArchiveSpecialFile when it
    is a folder, FIFO, device or socket; ArchiveTooLarge when it holds more than
    ``max_bytes``. The messages name the file, never its content.
    """
    parts = safe_relative(name, what="file").split("/")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            mode = _mode(part, folder)
            if mode is None or not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                return None
            if stat.S_ISLNK(mode):
                raise ArchiveLinkEscape(f"{name} is reached through a link")
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = below
        mode = _mode(parts[-1], folder)
        if mode is None:
            return None
        _check_regular(name, mode)
        flags = os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
        with os.fdopen(os.open(parts[-1], flags, dir_fd=folder), "rb") as handle:
            _check_regular(name, os.fstat(handle.fileno()).st_mode)  # the file opened
            content = handle.read(max_bytes + 1)
    finally:
        os.close(folder)
    if len(content) > max_bytes:
        raise ArchiveTooLarge(f"{name} is larger than {max_bytes} bytes")
    return content


def _check_regular(name: str, mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise ArchiveLinkEscape(f"{name} is a link, not a regular file")
    if not stat.S_ISREG(mode):
        raise ArchiveSpecialFile(f"{name} is not a regular file")


def _mode(name: str, folder: int) -> int | None:
    try:
        return os.lstat(name, dir_fd=folder).st_mode
    except FileNotFoundError:
        return None


def _follow(real_root: str, name: str, path: Path) -> Path | None:
    """``path``, in a real folder, with its link followed when it is one; None when missing."""
    try:
        is_link = stat.S_ISLNK(path.lstat().st_mode)
    except FileNotFoundError:
        return None
    return Path(_beneath(real_root, name, str(path))) if is_link else path


def _beneath(real_root: str, name: str, path: str) -> str:
    real = os.path.realpath(path)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ArchiveLinkEscape(f"{name!r} leads out of the build folder through a link")
    return real


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _join(name: str, child: str) -> str:
    return f"{name}/{child}" if name else child


def _name(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name
