"""Safe extraction of package archives (zip, tar.gz) into a build context.

Nothing lands outside the destination: an entry with ``..`` or an absolute path, a link or
hard link whose target leaves the tree, and device files are refused, each with its own
code; so are archives that expand beyond the size or file-count limits (counted from the
bytes actually written, not from headers a zip bomb can lie in).
"""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

COPY_CHUNK = 1024 * 1024


class ArchiveError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 1024 * 1024 * 1024
    max_files: int = 20_000


def safe_relative(name: str, *, what: str = "entry") -> str:
    """``name`` as a normalised relative POSIX path; ArchiveError when it would leave."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise ArchiveError("archive_absolute_path", f"{what} {name!r} has an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError("archive_path_traversal", f"{what} {name!r} leaves the folder (..)")
    return "/".join(parts)


def _symlink(destination: Path, entry: str, target: str) -> None:
    """Create the link when it stays in the tree, judged from where it really is (its
    folder may itself be reached through links made before)."""
    if not target or target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise ArchiveError("archive_link_escape", f"link {entry!r} points to an absolute path")
    path = _target(destination, entry)
    if not _inside(destination, f"{path.parent}/{target}"):
        raise ArchiveError("archive_link_escape", f"link {entry!r} points out of the folder")
    path.symlink_to(target)


def _inside(destination: Path, candidate: str) -> bool:
    """Whether ``candidate`` lands in ``destination`` once every link already on disk along
    its way is followed (``a -> .`` then ``a/a/../..`` is judged for what it really is)."""
    root = os.path.realpath(destination)
    resolved = os.path.realpath(candidate)
    return resolved == root or resolved.startswith(root + os.sep)


class _Budget:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.bytes = 0
        self.files = 0

    def entry(self) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise ArchiveError(
                "archive_too_many_files",
                f"the archive holds more than {self.limits.max_files} entries",
            )

    def add(self, size: int) -> None:
        self.bytes += size
        if self.bytes > self.limits.max_bytes:
            raise ArchiveError(
                "archive_too_large", f"the archive expands beyond {self.limits.max_bytes} bytes"
            )


def extract(archive: Path, destination: Path, limits: Limits = Limits()) -> list[str]:
    """Extract ``archive`` (by its content: zip or gzip'd tar) into ``destination``; the
    relative paths of the regular files written."""
    destination.mkdir(parents=True, exist_ok=True)
    with archive.open("rb") as handle:
        magic = handle.read(4)
    try:
        if magic.startswith(b"PK"):
            return _extract_zip(archive, destination, _Budget(limits))
        if magic.startswith(b"\x1f\x8b"):
            return _extract_tar(archive, destination, _Budget(limits))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveError("archive_invalid", f"the archive cannot be read: {exc}") from exc
    raise ArchiveError("archive_invalid", "not a zip or tar.gz archive")


def _target(destination: Path, relative: str) -> Path:
    """Where an entry goes, its folder created; never a place outside ``destination``."""
    path = destination / relative
    if not _inside(destination, str(path.parent)):
        raise ArchiveError("archive_link_escape", f"{relative!r} would be written through a link")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(destination, str(path.parent)):
        raise ArchiveError("archive_link_escape", f"{relative!r} would be written through a link")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    return path


def _copy(source: IO[bytes], path: Path, budget: _Budget, mode: int) -> None:
    with path.open("wb") as out:
        while chunk := source.read(COPY_CHUNK):
            budget.add(len(chunk))
            out.write(chunk)
    path.chmod(mode & 0o777 or 0o644)


def _extract_zip(archive: Path, destination: Path, budget: _Budget) -> list[str]:
    written: list[str] = []
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            budget.entry()
            relative = safe_relative(info.filename)
            if not relative:
                continue
            mode = info.external_attr >> 16
            if info.is_dir() or stat.S_ISDIR(mode):
                (destination / relative).mkdir(parents=True, exist_ok=True)
                continue
            if stat.S_ISLNK(mode):
                _symlink(destination, relative, bundle.read(info).decode("utf-8", "replace"))
                continue
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type recorded (Windows)
                raise ArchiveError("archive_special_file", f"{info.filename!r} is a special file")
            with bundle.open(info) as source:
                _copy(source, _target(destination, relative), budget, mode or 0o644)
            written.append(relative)
    return written


def _extract_tar(archive: Path, destination: Path, budget: _Budget) -> list[str]:
    written: list[str] = []
    with tarfile.open(archive, "r:gz") as bundle:
        for member in _members(bundle, budget):
            relative = safe_relative(member.name)
            if not relative:
                continue
            if member.isdir():
                (destination / relative).mkdir(parents=True, exist_ok=True)
            elif member.issym():
                _symlink(destination, relative, member.linkname)
            elif member.islnk():
                try:
                    source = safe_relative(member.linkname, what="hard link target")
                except ArchiveError as exc:
                    raise ArchiveError("archive_link_escape", str(exc)) from exc
                real = destination / source
                if not _inside(destination, str(real)) or not real.is_file():
                    raise ArchiveError(
                        "archive_link_escape",
                        f"hard link {member.name!r} has no target in the tree",
                    )
                os.link(destination / source, _target(destination, relative))
                written.append(relative)
            elif member.isfile():
                extracted = bundle.extractfile(member)
                if extracted is None:
                    raise ArchiveError("archive_invalid", f"{member.name!r} cannot be read")
                with extracted:
                    _copy(extracted, _target(destination, relative), budget, member.mode)
                written.append(relative)
            else:
                raise ArchiveError(
                    "archive_special_file",
                    f"{member.name!r} is a device, FIFO or other special file",
                )
    return written


def _members(bundle: tarfile.TarFile, budget: _Budget) -> Iterator[tarfile.TarInfo]:
    while (member := bundle.next()) is not None:
        budget.entry()
        yield member


def extract_bytes(content: bytes, destination: Path, limits: Limits = Limits()) -> list[str]:
    """``extract`` for an archive held in memory (small ones, in tests and tools)."""
    scratch = destination.parent / f".{destination.name}.archive"
    scratch.write_bytes(content)
    try:
        return extract(scratch, destination, limits)
    finally:
        scratch.unlink(missing_ok=True)
