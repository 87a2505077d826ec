"""Whether an uploaded package is an SDI and, if it is, whether a build would accept its
``sdi.yaml``: a mistake shows when the package is uploaded, not at deployment time.

A package is an SDI when its archive has a ``Dockerfile`` at its root (PRODUCT.md §8). Its
``sdi.yaml``, when it has one, is then judged as a build judges it, with the build's codes
and words: a regular file (``archive_link_escape``, ``archive_special_file``) of at most
``MAX_SDI_FILE_BYTES`` (``archive_too_large``), UTF-8 text and a valid spec
(``sdi_invalid``). Of several entries of one name the last counts, as extraction writes them
in order.

The archive is the tenant's. It is read from a local copy, in a thread, and nothing of it is
extracted: of a zip, its central directory an entry at a time and then one file's data; of
a tar.gz, the stream, skipping the content of every other file. Reading stops at the limits a
build extracts within (``SPACEDOCK_BUILD_MAX_FILES``, ``SPACEDOCK_BUILD_MAX_EXTRACT_BYTES``),
at a tar header longer than ``MAX_HEADER_BYTES``, at a deadline and when the upload is given
up. An archive that cannot be read to its end that way (beyond a limit, damaged, encrypted,
compressed in a way read here as no other) is let through unjudged: a build of it fails with
its own code (``archive_too_large``, ``archive_invalid``, ...) as it did before.
"""

from __future__ import annotations

import gzip
import io
import stat
import struct
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from shared.sdi import MAX_SDI_FILE_BYTES, SdiInvalid, parse_sdi_file

MAX_HEADER_BYTES = 1024 * 1024  # a tar's long name or pax header: tarfile holds it whole
SCAN_SECONDS = 120.0
READ_CHUNK = 64 * 1024
SDI_FILE = "sdi.yaml"
DOCKERFILE = "Dockerfile"


class SdiRefused(ValueError):
    """A build would refuse this SDI: ``code`` is the build's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """What reading one archive may cost (the defaults are a build's)."""

    max_entries: int = 200_000
    max_bytes: int = 4 * 1024**3  # read from the archive, and expanded from it
    seconds: float = SCAN_SECONDS


def check_sdi_archive(
    archive: IO[bytes],
    extension: str,
    limits: ScanLimits = ScanLimits(),
    cancelled: threading.Event | None = None,
) -> None:
    """Raise SdiRefused when ``archive`` (a ``.zip``, ``.tar.gz`` or ``.tgz`` file, open for
    reading) is an SDI whose ``sdi.yaml`` a build would refuse; return otherwise, also when
    the archive cannot be judged. ``cancelled`` stops the reading (the archive is then let
    through)."""
    budget = _Budget(limits, cancelled)
    try:
        archive.seek(0)
        found = _scan_zip(archive, budget) if extension == ".zip" else _scan_tar(archive, budget)
    except (_Unjudged, tarfile.TarError, OSError, EOFError, zlib.error, struct.error):
        return
    except (ValueError, RecursionError):  # a number or name a header cannot hold; deep pax
        return
    if found.dockerfile and found.sdi is not None:
        _judge(found.sdi)


@dataclass(frozen=True, slots=True)
class _SdiEntry:
    """The archive's last entry named ``sdi.yaml`` at its root."""

    kind: str  # "file", "link", "special" or "unknown" (a tar hard link: its content is not read)
    content: bytes = b""  # a file's first MAX_SDI_FILE_BYTES + 1 bytes
    problem: str = ""  # the build's words for a special file


@dataclass(slots=True)
class _Found:
    dockerfile: bool = False
    sdi: _SdiEntry | None = None


def _judge(entry: _SdiEntry) -> None:
    if entry.kind == "link":
        raise SdiRefused("archive_link_escape", f"{SDI_FILE} is a link, not a regular file")
    if entry.kind == "special":
        raise SdiRefused("archive_special_file", entry.problem)
    if entry.kind != "file":
        return
    if len(entry.content) > MAX_SDI_FILE_BYTES:
        raise SdiRefused(
            "archive_too_large", f"{SDI_FILE} is larger than {MAX_SDI_FILE_BYTES} bytes"
        )
    try:
        parse_sdi_file(entry.content)
    except SdiInvalid as exc:
        raise SdiRefused(SdiInvalid.code, str(exc)) from exc


def _root_name(name: str) -> str | None:
    """The entry's name when it is a single name at the root as extraction reads it (an
    entry that would leave the folder fails any build of the package)."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [part for part in text.split("/") if part not in ("", ".")]
    return parts[0] if len(parts) == 1 else None


class _Unjudged(Exception):
    """The archive cannot be read to its end within the limits."""


class _Budget:
    def __init__(self, limits: ScanLimits, cancelled: threading.Event | None) -> None:
        self.limits = limits
        self.cancelled = cancelled
        self.deadline = time.monotonic() + limits.seconds
        self.entries = 0
        self.bytes = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise _Unjudged("too many entries")

    def read(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_bytes:
            raise _Unjudged("too many bytes")
        if time.monotonic() > self.deadline:
            raise _Unjudged("out of time")
        if self.cancelled is not None and self.cancelled.is_set():
            raise _Unjudged("cancelled")


# --- tar.gz ---------------------------------------------------------------------------------

# Headers tarfile reads whole into memory before the entry they describe.
_LONG_HEADERS = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)


class _GuardedMember(tarfile.TarInfo):
    """A tar header that refuses, before tarfile reads them, a long header over the limit and
    the sparse maps whose length a header does not bound."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _LONG_HEADERS and self.size > MAX_HEADER_BYTES:
            raise _Unjudged("a long header")
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _Unjudged("a sparse file")
        proceed: Callable[[tarfile.TarFile], tarfile.TarInfo]
        proceed = getattr(super(), "_proc_member")  # noqa: B009 (the type stubs leave it out)
        return proceed(archive)

    def _proc_gnusparse_10(self, *args: Any) -> None:
        raise _Unjudged("a sparse file")


class _Expanded(io.RawIOBase):
    """The decompressed stream, each read charged to the budget."""

    def __init__(self, source: io.BufferedIOBase, budget: _Budget) -> None:
        self.source = source
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.source.read(min(len(view), READ_CHUNK))
        self.budget.read(len(data))
        view[: len(data)] = data
        return len(data)


def _scan_tar(archive: IO[bytes], budget: _Budget) -> _Found:
    found = _Found()
    with (
        gzip.GzipFile(fileobj=archive, mode="rb") as expanded,
        tarfile.open(
            fileobj=io.BufferedReader(_Expanded(expanded, budget), READ_CHUNK),
            mode="r|",
            tarinfo=_GuardedMember,
        ) as bundle,
    ):
        while (member := bundle.next()) is not None:
            budget.entry()
            # tarfile keeps every member it read (a list the stubs leave out): a stream is read
            # once, so none is kept here
            bundle.members.clear()  # type: ignore[attr-defined]
            root = _root_name(member.name)
            if root == DOCKERFILE:
                found.dockerfile = True
            elif root == SDI_FILE:
                found.sdi = _tar_sdi(bundle, member)
    return found


def _tar_sdi(bundle: tarfile.TarFile, member: tarfile.TarInfo) -> _SdiEntry:
    if member.issym():
        return _SdiEntry("link")
    if member.islnk():
        return _SdiEntry("unknown")
    if member.isdir():
        return _SdiEntry("special", problem=f"{SDI_FILE} is not a regular file")
    if not member.isfile():
        return _SdiEntry(
            "special", problem=f"{member.name!r} is a device, FIFO or other special file"
        )
    content = bundle.extractfile(member)
    if content is None:
        raise _Unjudged("an unreadable member")
    with content:
        return _SdiEntry("file", content.read(MAX_SDI_FILE_BYTES + 1))


# --- zip ------------------------------------------------------------------------------------
# Read as Python's zipfile reads it (the builder extracts with it), one entry at a time: the
# end record (zip64 too) gives the central directory, whose entries give each file's local
# header and data. zipfile would hold the whole directory, and an object per entry, at once.

_END = struct.Struct("<4s4H2LH")
_END_SIGNATURE = b"PK\x05\x06"
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64_LOCATOR_SIGNATURE = b"PK\x06\x07"
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_SIGNATURE = b"PK\x06\x06"
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LOCAL = struct.Struct("<4s5H3L2H")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_MAX_COMMENT = 0xFFFF
_ZIP64_EXTRA = 0x0001
_FLAG_ENCRYPTED = 0x1
_FLAG_UTF8 = 0x800
_STORED, _DEFLATED = 0, 8


@dataclass(frozen=True, slots=True)
class _ZipEntry:
    name: str
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    mode: int


def _scan_zip(archive: IO[bytes], budget: _Budget) -> _Found:
    start, length, concat = _central_directory(archive)
    found = _Found()
    last_sdi: _ZipEntry | None = None  # read once the directory is done: a later one counts
    archive.seek(start)
    reader = io.BufferedReader(_Window(archive, length, budget), READ_CHUNK)
    while reader.peek(1):
        budget.entry()
        entry = _central_entry(reader, concat)
        root = _root_name(entry.name)
        if root == DOCKERFILE:
            found.dockerfile = True
        elif root == SDI_FILE:
            last_sdi = entry
    if last_sdi is not None:
        found.sdi = _zip_sdi(archive, last_sdi, budget)
    return found


def _central_directory(archive: IO[bytes]) -> tuple[int, int, int]:
    """(where the central directory starts, its length, how many bytes come before the
    archive proper: offsets are shifted by them), as zipfile finds them."""
    size = archive.seek(0, io.SEEK_END)
    if size < _END.size:
        raise _Unjudged("too short")
    tail_start = max(size - _END.size - _MAX_COMMENT, 0)
    archive.seek(tail_start)
    tail = archive.read(size - tail_start)
    if tail[-_END.size :].startswith(_END_SIGNATURE) and tail.endswith(b"\0\0"):
        at = len(tail) - _END.size
    else:
        at = tail.rfind(_END_SIGNATURE)
        if at < 0 or len(tail) - at < _END.size:
            raise _Unjudged("no end record")
    end_position = tail_start + at
    _, _, _, _, _, length, offset, _ = _END.unpack_from(tail, at)
    concat = end_position - length - offset
    locator_at = end_position - _END64_LOCATOR.size
    if locator_at >= 0:
        archive.seek(locator_at)
        locator = archive.read(_END64_LOCATOR.size)
        if locator.startswith(_END64_LOCATOR_SIGNATURE):
            archive.seek(max(locator_at - _END64.size, 0))
            record = archive.read(_END64.size)
            if len(record) == _END64.size and record.startswith(_END64_SIGNATURE):
                *_, length, offset = _END64.unpack(record)
                concat = end_position - length - offset - _END64.size - _END64_LOCATOR.size
    start = offset + concat
    if start < 0 or start + length > size:
        raise _Unjudged("a central directory outside the file")
    return start, length, concat


class _Window(io.RawIOBase):
    """``length`` bytes of ``archive`` from where it stands, each read charged."""

    def __init__(self, archive: IO[bytes], length: int, budget: _Budget) -> None:
        self.archive = archive
        self.left = length
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.archive.read(min(len(view), self.left, READ_CHUNK))
        self.budget.read(len(data))
        self.left -= len(data)
        view[: len(data)] = data
        return len(data)


def _exactly(reader: IO[bytes], count: int) -> bytes:
    data = reader.read(count)
    if len(data) != count:
        raise _Unjudged("a truncated header")
    return data


def _central_entry(reader: IO[bytes], concat: int) -> _ZipEntry:
    header = _CENTRAL.unpack(_exactly(reader, _CENTRAL.size))
    (signature, _, _, flags, method, _, _, crc, compressed, size) = header[:10]
    name_length, extra_length, comment_length = header[10:13]
    external, offset = header[15], header[16]
    if signature != _CENTRAL_SIGNATURE:
        raise _Unjudged("a damaged central directory")
    raw_name = _exactly(reader, name_length)
    extra = _exactly(reader, extra_length)
    _exactly(reader, comment_length)
    name = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
    name = name.partition("\0")[0]
    size, compressed, offset = _zip64_sizes(extra, size, compressed, offset)
    return _ZipEntry(name, flags, method, crc, compressed, size, offset + concat, external >> 16)


def _zip64_sizes(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """The sizes and offset a zip64 extra field stands in for (those written as 0xFFFFFFFF,
    in this order)."""
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        if kind == _ZIP64_EXTRA:
            values = list(struct.unpack_from(f"<{length // 8}Q", extra, at + 4))
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if compressed == 0xFFFFFFFF and values:
                compressed = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        at += 4 + length
    return size, compressed, offset


def _zip_sdi(archive: IO[bytes], entry: _ZipEntry, budget: _Budget) -> _SdiEntry:
    """The ``sdi.yaml`` entry as extraction writes it."""
    kind = stat.S_IFMT(entry.mode)
    if entry.name.endswith("/") or kind == stat.S_IFDIR:
        return _SdiEntry("special", problem=f"{SDI_FILE} is not a regular file")
    if kind == stat.S_IFLNK:
        return _SdiEntry("link")
    if kind not in (0, stat.S_IFREG):
        return _SdiEntry("special", problem=f"{entry.name!r} is a special file")
    if entry.flags & _FLAG_ENCRYPTED or entry.method not in (_STORED, _DEFLATED):
        raise _Unjudged("encrypted, or compressed in another way")
    archive.seek(entry.header_offset)
    local = _LOCAL.unpack(_exactly(archive, _LOCAL.size))
    name_length, extra_length = local[-2:]
    if local[0] != _LOCAL_SIGNATURE or _exactly(archive, name_length) != entry.name.encode(
        "utf-8" if entry.flags & _FLAG_UTF8 else "cp437"
    ):
        raise _Unjudged("a local header that does not match the directory")
    archive.seek(extra_length, io.SEEK_CUR)
    wanted = min(entry.size, MAX_SDI_FILE_BYTES + 1)
    content = _inflate(archive, entry, wanted, budget)
    if len(content) == entry.size and zlib.crc32(content) != entry.crc:
        raise _Unjudged("a bad checksum")
    return _SdiEntry("file", content)


def _inflate(archive: IO[bytes], entry: _ZipEntry, wanted: int, budget: _Budget) -> bytes:
    """The first ``wanted`` bytes of the entry's data, never decompressing more."""
    left = entry.compressed_size
    out = bytearray()
    inflater = zlib.decompressobj(-15) if entry.method == _DEFLATED else None
    pending = b""
    while len(out) < wanted:
        if inflater is not None and inflater.unconsumed_tail:
            pending = inflater.unconsumed_tail
        elif left > 0:
            pending = archive.read(min(left, READ_CHUNK))
            if not pending:
                raise _Unjudged("truncated data")
            left -= len(pending)
            budget.read(len(pending))
        else:
            break
        if inflater is None:
            out += pending[: wanted - len(out)]
        else:
            out += inflater.decompress(pending, wanted - len(out))
            if inflater.eof:
                break
    return bytes(out)
