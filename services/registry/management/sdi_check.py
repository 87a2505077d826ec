"""Whether an uploaded package is an SDI and, if it is, whether a build would accept its
``sdi.yaml``: a mistake shows when the package is uploaded, not at deployment time.

A package is an SDI when its archive has a ``Dockerfile`` at its root (PRODUCT.md §8). Its
``sdi.yaml``, when it has one, is then judged as a build judges it, with the build's codes
and words: a regular file (``archive_link_escape``, ``archive_special_file``) of at most
``MAX_SDI_FILE_BYTES`` (``archive_too_large``), UTF-8 text and a valid spec
(``sdi_invalid``). Of several entries of one name the last counts, as extraction writes them
in order; an ``sdi.yaml`` made a folder only by the entries beneath it is a folder.

The archive is the tenant's. ``SdiScanner`` reads it from a local copy in a child process
with an address-space limit, killed at a deadline, a few at a time (more wait their turn):
the tar headers tarfile parses can cost time and memory no reading budget sees, and the
registry's own threads and memory are not the tenant's. Nothing of it is extracted: of a zip,
its central directory an entry at a time and then one file's data; of a tar.gz, the stream,
skipping the content of every other file. Reading stops at the limits a build extracts within
(``SPACEDOCK_BUILD_MAX_FILES``, ``SPACEDOCK_BUILD_MAX_EXTRACT_BYTES``), at a tar header longer
than ``MAX_HEADER_BYTES`` (global pax headers: all of them together), at pax headers that
together hold more than ``MAX_PAX_RECORDS`` records to parse and apply (a global one is applied
to every member after it), at a pax header whose records tarfile would parse in more than linear
time, at a deadline and when the upload is given up.

An archive that cannot be read to its end that way (beyond a limit, damaged, encrypted,
compressed in a way Python's zipfile does not read, out of time or memory) is let through
unjudged: a build of it fails with its own code (``archive_too_large``, ``archive_invalid``,
...) as it did before, or runs into the same limit first. Not judged either, though a build
judges them: an ``sdi.yaml`` that is a tar hard link (its content is another entry's), one
that is both a folder and a file (a build fails extracting it), and a tar.gz whose gzip data
is damaged inside a member (a build that stops reading before the damage does not see it).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import stat
import struct
import tarfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import structlog

from shared.builds.errors import ArchiveLinkEscape, ArchiveSpecialFile, ArchiveTooLarge, BuildError
from shared.isolation import IsolatedFailure, IsolatedMemoryError, IsolatedRunner, IsolatedTimeout
from shared.sdi import MAX_SDI_FILE_BYTES, parse_sdi_file

MAX_HEADER_BYTES = 64 * 1024  # one tar long name or pax header: tarfile holds it whole
MAX_PAX_RECORDS = 1_000_000  # pax records tarfile parses and applies, all members together
MAX_PAX_DIGITS = 32  # a longer run of digits in a pax header costs tarfile quadratic time
SCAN_SECONDS = 120.0
SCAN_WORKERS = 2  # scans at once; more wait for a free child
SCAN_MEMORY_BYTES = 512 * 1024**2  # a scanning child's address space (an idle one: ~40 MiB)
KILL_GRACE_SECONDS = 5.0  # past the scan's own deadline, before its child is killed
READ_CHUNK = 64 * 1024
SDI_FILE = "sdi.yaml"
DOCKERFILE = "Dockerfile"

log = structlog.get_logger("spacedock.registry")


# What ``check_sdi_archive`` and ``SdiScanner.check`` raise when a build would refuse the SDI:
# the build's own error (ArchiveLinkEscape, ArchiveSpecialFile, ArchiveTooLarge, SdiInvalid).
SdiRefused = BuildError


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """What reading one archive may cost (the defaults of the first three are a build's)."""

    max_entries: int = 200_000
    max_bytes: int = 4 * 1024**3  # read from the archive, and expanded from it
    seconds: float = SCAN_SECONDS
    header_bytes: int = MAX_HEADER_BYTES
    pax_records: int = MAX_PAX_RECORDS


def check_sdi_archive(
    archive: IO[bytes],
    extension: str,
    limits: ScanLimits = ScanLimits(),
    cancelled: threading.Event | None = None,
) -> None:
    """Raise the build's error (SdiRefused) when ``archive`` (a ``.zip``, ``.tar.gz`` or
    ``.tgz`` file, open for reading) is an SDI whose ``sdi.yaml`` a build would refuse;
    return otherwise, also when the archive cannot be judged. ``cancelled`` stops the reading
    (the archive is then let through). This reads in the calling thread, without the child
    process's limits: the registry calls it through ``SdiScanner``."""
    budget = _Budget(limits, cancelled)
    try:
        archive.seek(0)
        found = _scan_zip(archive, budget) if extension == ".zip" else _scan_tar(archive, budget)
    except (
        _Unjudged,
        tarfile.TarError,
        OSError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        struct.error,
    ):
        return
    except (ValueError, LookupError, RecursionError):  # a number, name or property a header
        return  # cannot hold; deep pax
    if found.dockerfile and found.sdi is not None:
        _judge(found.sdi)


def judge_sdi_file(path: str, extension: str, limits: ScanLimits) -> BuildError | None:
    """``check_sdi_archive`` of the file at ``path``, as a child process runs it: the build's
    error when it would refuse the SDI (it pickles whole), None otherwise."""
    try:
        with open(path, "rb") as archive:  # noqa: PTH123 - a path string from the parent
            check_sdi_archive(archive, extension, limits)
    except BuildError as refused:
        return refused
    return None


class SdiScanner:
    """``check_sdi_archive`` in child processes: at most ``workers`` at once, each child
    limited to ``memory_bytes`` of address space and killed ``grace_seconds`` after a scan's
    own deadline. A scan that runs out of memory or time, or whose child fails, lets the
    archive through unjudged, and says so in the log. ``close`` stops the idle children."""

    def __init__(
        self,
        workers: int = SCAN_WORKERS,
        memory_bytes: int | None = SCAN_MEMORY_BYTES,
        grace_seconds: float = KILL_GRACE_SECONDS,
    ) -> None:
        self.runner = IsolatedRunner(workers, memory_bytes, preload=[__name__])
        self.grace_seconds = grace_seconds

    async def check(self, path: str, extension: str, limits: ScanLimits = ScanLimits()) -> None:
        """Raise the build's error (SdiRefused) when the archive at ``path`` (which the child
        opens itself) is an SDI a build would refuse; return otherwise. Cancelling the call
        kills its child."""
        try:
            verdict = await self.runner.run(
                judge_sdi_file,
                path,
                extension,
                limits,
                timeout=limits.seconds + self.grace_seconds,
            )
        except IsolatedFailure as failure:
            reason = {IsolatedTimeout: "out_of_time", IsolatedMemoryError: "out_of_memory"}
            log.warning("sdi_scan_unjudged", reason=reason.get(type(failure), "failed"))
            return
        if verdict is not None:
            raise verdict

    def close(self) -> None:
        self.runner.close()


@dataclass(frozen=True, slots=True)
class _SdiEntry:
    """What the archive's entries named ``sdi.yaml`` at its root leave there."""

    # "file"; "link"; "folder" (a folder entry, or a folder made for the entries beneath);
    # "special" (a device: extraction stops at it); "conflict" (a folder and a file at once:
    # extraction stops at it); "hard link" (its content is another entry's: not judged)
    kind: str
    content: bytes = b""  # a file's first MAX_SDI_FILE_BYTES + 1 bytes
    problem: str = ""  # the build's words for a special file

    @property
    def final(self) -> bool:
        """Extraction stops at it: no later entry counts."""
        return self.kind in ("special", "conflict")


_FOLDER = _SdiEntry("folder")
_CONFLICT = _SdiEntry("conflict")
_HARD_LINK = _SdiEntry("hard link")


@dataclass(slots=True)
class _Found:
    dockerfile: bool = False
    sdi: _SdiEntry | None = None

    def see(self, parts: list[str] | None, read: Callable[[], _SdiEntry]) -> None:
        """Note the entry whose path is ``parts`` (None: leaves the folder); ``read`` gives
        what it is when it is ``sdi.yaml``."""
        if parts == [DOCKERFILE]:
            self.dockerfile = True
        elif parts and parts[0] == SDI_FILE and not (self.sdi is not None and self.sdi.final):
            entry = read() if len(parts) == 1 else _FOLDER
            self.sdi = _replaced(self.sdi, entry)


def _replaced(before: _SdiEntry | None, entry: _SdiEntry) -> _SdiEntry:
    """What extraction leaves after writing ``entry`` where ``before`` was."""
    if before is None or entry.kind == "special":  # a device fails extraction when it comes
        return entry
    if (before.kind == "folder") != (entry.kind == "folder"):
        return _CONFLICT  # a file beneath a file, or a file where a folder is
    return entry


def _judge(entry: _SdiEntry) -> None:
    if entry.kind == "link":
        raise ArchiveLinkEscape(f"{SDI_FILE} is a link, not a regular file")
    if entry.kind == "folder":
        raise ArchiveSpecialFile(f"{SDI_FILE} is not a regular file")
    if entry.kind == "special":
        raise ArchiveSpecialFile(entry.problem)
    if entry.kind != "file":
        return
    if len(entry.content) > MAX_SDI_FILE_BYTES:
        raise ArchiveTooLarge(f"{SDI_FILE} is larger than {MAX_SDI_FILE_BYTES} bytes")
    parse_sdi_file(entry.content)  # SdiInvalid, as a build reads it


def _parts(name: str) -> list[str] | None:
    """The entry's path as extraction reads it (None when it would leave the folder, which
    fails any build of the package)."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [part for part in text.split("/") if part not in ("", ".")]
    return None if ".." in parts else parts


class _Unjudged(Exception):
    """The archive cannot be read to its end within the limits."""


class _Budget:
    def __init__(self, limits: ScanLimits, cancelled: threading.Event | None) -> None:
        self.limits = limits
        self.cancelled = cancelled
        self.deadline = time.monotonic() + limits.seconds
        self.entries = 0
        self.bytes = 0
        self.pax_records = 0
        self.global_bytes = 0  # of the global pax headers read so far
        self.global_records = 0  # in them

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise _Unjudged("too many entries")

    def read(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.limits.max_bytes:
            raise _Unjudged("too many bytes")
        self.check()

    def records(self, count: int) -> None:
        """Charge pax records tarfile parses or applies."""
        self.pax_records += count
        if self.pax_records > self.limits.pax_records:
            raise _Unjudged("too many pax records")
        self.check()

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Unjudged("out of time")
        if self.cancelled is not None and self.cancelled.is_set():
            raise _Unjudged("the upload was given up")


# --- tar.gz ---------------------------------------------------------------------------------

# Headers tarfile reads whole into memory before the entry they describe.
_LONG_HEADERS = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
_PAX_HEADERS = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_PAX_RECORD = re.compile(rb"(\d+) ")  # how tarfile's record pattern, (\d+) ([^=]+)=, starts
_DIGITS = re.compile(rb"\d+")


class _GuardedMember(tarfile.TarInfo):
    """A tar header that, before tarfile reads them, refuses a long header over the limit,
    the sparse maps whose length a header does not bound, and pax records tarfile would take
    quadratic time and memory to parse (CVE-2024-6232 and its hdrcharset search); and that
    charges the pax records tarfile applies to each member. Each scan has its own subclass,
    holding its budget."""

    budget: _Budget

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        budget = self.budget
        if self.type in _LONG_HEADERS and self.size > budget.limits.header_bytes:
            raise _Unjudged("a long header")
        if self.type == tarfile.XGLTYPE:
            budget.global_bytes += self.size
            if budget.global_bytes > budget.limits.header_bytes:
                raise _Unjudged("global headers over the limit of one")
        if self.type not in _PAX_HEADERS:  # tarfile applies the global records to each member
            budget.records(budget.global_records + 1)
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _Unjudged("a sparse file")
        proceed: Callable[[tarfile.TarFile], tarfile.TarInfo]
        proceed = getattr(super(), "_proc_member")  # noqa: B009 (the type stubs leave it out)
        return proceed(archive)

    def _proc_pax(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        """Check and charge the records, then let tarfile parse them."""
        block: Callable[[int], int] = getattr(self, "_block")  # noqa: B009 (as above)
        stream = archive.fileobj
        assert stream is not None
        records = stream.read(block(self.size))
        count = _pax_record_count(records[: self.size])
        self.budget.records(count + self.budget.global_records)  # the global ones are copied
        if self.type == tarfile.XGLTYPE:
            self.budget.global_records += count
        archive.fileobj = _Replay(records, stream)
        try:
            proceed: Callable[[tarfile.TarFile], tarfile.TarInfo]
            proceed = getattr(super(), "_proc_pax")  # noqa: B009 (as above)
            return proceed(archive)
        finally:
            archive.fileobj = stream

    def _proc_gnusparse_10(self, *args: Any) -> None:
        raise _Unjudged("a sparse file")


def _pax_record_count(records: bytes) -> int:
    """How many records tarfile's parser reads of a pax header, and what its search for a
    ``hdrcharset`` record costs (a run of n digits: n**2 steps; a record costs about a
    thousand). Unjudged when either would cost more than linear time: a long run of digits,
    or a record whose keyword does not end (``=``) within its own length."""
    runs = _DIGITS.findall(records)
    if any(len(run) > MAX_PAX_DIGITS for run in runs):
        raise _Unjudged("a pax header with a long number")
    search = sum(len(run) ** 2 for run in runs) // 1024
    last_equals = records.rfind(b"=")
    at = count = 0
    while match := _PAX_RECORD.match(records, at):
        length = int(match.group(1))
        equals = records.find(b"=", match.end(), at + length)
        if equals < 0 and last_equals > match.end():
            raise _Unjudged("a pax record longer than it says")
        if equals <= match.end():  # no keyword, or none ends here: tarfile stops reading
            break
        at += length
        count += 1
    return count + search


class _Replay:
    """A tar stream whose next read returns ``first``, already read from it."""

    def __init__(self, first: bytes, stream: Any) -> None:
        self.first: bytes | None = first
        self.stream = stream

    def read(self, size: int | None = None) -> bytes:
        if self.first is not None:
            first, self.first = self.first, None
            return first
        return bytes(self.stream.read(size))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


class _Expanded(io.RawIOBase):
    """The decompressed stream, each read charged to the budget, as a build's reading meets
    it: past the end of a gzip member, bytes that are not another member (or a checksum that
    does not match) fail a read only when one is made, and a build stops reading at the tar's
    end. Such a failure here ends the stream; ``ended_at`` is how many bytes came before it."""

    def __init__(self, source: gzip.GzipFile, budget: _Budget) -> None:
        self.source = source
        self.budget = budget
        self.delivered = 0
        self.ended_at: int | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.ended_at is not None:
            return 0
        view = memoryview(buffer).cast("B")
        try:
            data = self.source.read1(min(len(view), READ_CHUNK))
        except (OSError, EOFError, zlib.error):
            if not _between_members(self.source):
                raise
            self.ended_at = self.delivered
            return 0
        self.budget.read(len(data))
        self.delivered += len(data)
        view[: len(data)] = data
        return len(data)


def _between_members(expanded: gzip.GzipFile) -> bool:
    """Whether the gzip reader failed after a member's last byte: on its checksum, or on what
    follows (CPython's own reader's state; False when it is not as known)."""
    reader = getattr(getattr(expanded, "_buffer", None), "raw", None)
    decompressor = getattr(reader, "_decompressor", None)
    return getattr(reader, "_new_member", False) is True or (
        getattr(decompressor, "eof", False) is True
    )


def _scan_tar(archive: IO[bytes], budget: _Budget) -> _Found:
    found = _Found()
    member_class = type("_ScanMember", (_GuardedMember,), {"budget": budget})
    with gzip.GzipFile(fileobj=archive, mode="rb") as gunzipped:
        expanded = _Expanded(gunzipped, budget)
        with tarfile.open(
            fileobj=io.BufferedReader(expanded, READ_CHUNK), mode="r|", tarinfo=member_class
        ) as bundle:
            while (member := bundle.next()) is not None:
                budget.entry()
                # tarfile keeps every member it read (a list the stubs leave out): a stream is
                # read once, so none is kept here
                bundle.members.clear()  # type: ignore[attr-defined]
                found.see(_parts(member.name), lambda: _tar_sdi(bundle, member))
            ended = bundle.offset
    if expanded.ended_at is not None and ended + tarfile.BLOCKSIZE > expanded.ended_at:
        raise _Unjudged("the tar's last header is beyond the gzip data")  # a build fails there
    return found


def _tar_sdi(bundle: tarfile.TarFile, member: tarfile.TarInfo) -> _SdiEntry:
    if member.issym():
        return _SdiEntry("link")
    if member.islnk():
        return _HARD_LINK
    if member.isdir():
        return _FOLDER
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
_END_SEARCH = 1 << 16  # how far before the end record zipfile looks for it
_ZIP64_EXTRA = 0x0001
_MAX_EXTRACT_VERSION = 63  # zipfile refuses an entry that needs a later one
_FLAG_ENCRYPTED = 0x1
_FLAG_UNSUPPORTED = 0x20 | 0x40  # compressed patched data, strong encryption
_FLAG_UTF8 = 0x800
_STORED, _DEFLATED, _BZIP2, _LZMA = 0, 8, 12, 14


@dataclass(frozen=True, slots=True)
class _ZipEntry:
    name: str  # as zipfile names it: up to a NUL
    stored_name: str  # the whole name, which the local header must repeat
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    mode: int


_PENDING = _SdiEntry("file")  # sdi.yaml is a file: its content is read once the directory is


def _scan_zip(archive: IO[bytes], budget: _Budget) -> _Found:
    start, length, concat = _central_directory(archive)
    found = _Found()
    last_file: _ZipEntry | None = None  # read once the directory is done: a later one counts
    archive.seek(start)
    reader = io.BufferedReader(_Window(archive, length, budget), READ_CHUNK)
    while reader.peek(1):
        budget.entry()
        entry = _central_entry(reader, concat)
        kind = _zip_kind(entry)
        parts = _parts(entry.name)
        if kind is _PENDING and parts == [SDI_FILE]:
            last_file = entry
        found.see(parts, lambda: kind)  # noqa: B023 (called at once)
    if found.sdi is _PENDING and last_file is not None:
        found.sdi = _zip_sdi(archive, last_file, budget)
    return found


def _central_directory(archive: IO[bytes]) -> tuple[int, int, int]:
    """(where the central directory starts, its length, how many bytes come before the
    archive proper: offsets are shifted by them), as zipfile finds them."""
    size = archive.seek(0, io.SEEK_END)
    if size < _END.size:
        raise _Unjudged("too short")
    tail_start = max(size - _END.size - _END_SEARCH, 0)
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
            _, disk, _, disks = _END64_LOCATOR.unpack(locator)
            if disk != 0 or disks > 1:
                raise _Unjudged("an archive on several disks")
            if locator_at >= _END64.size:
                archive.seek(locator_at - _END64.size)
                record = archive.read(_END64.size)
                if record.startswith(_END64_SIGNATURE):
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
    (signature, _, needs, flags, method, _, _, crc, compressed, size) = header[:10]
    name_length, extra_length, comment_length = header[10:13]
    external, offset = header[15], header[16]
    if signature != _CENTRAL_SIGNATURE:
        raise _Unjudged("a damaged central directory")
    if needs > _MAX_EXTRACT_VERSION:
        raise _Unjudged("a later zip version")
    raw_name = _exactly(reader, name_length)
    extra = _exactly(reader, extra_length)
    _exactly(reader, comment_length)
    stored = raw_name.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
    size, compressed, offset = _zip64_sizes(extra, size, compressed, offset)
    return _ZipEntry(
        stored.partition("\0")[0],
        stored,
        flags,
        method,
        crc,
        compressed,
        size,
        offset + concat,
        external >> 16,
    )


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


def _zip_kind(entry: _ZipEntry) -> _SdiEntry:
    """What extraction makes of the entry (``_PENDING``: a file, not read yet)."""
    kind = stat.S_IFMT(entry.mode)
    if entry.name.endswith("/") or kind == stat.S_IFDIR:
        return _FOLDER
    if kind == stat.S_IFLNK:
        return _SdiEntry("link")
    if kind not in (0, stat.S_IFREG):
        return _SdiEntry("special", problem=f"{entry.name!r} is a special file")
    return _PENDING


def _zip_sdi(archive: IO[bytes], entry: _ZipEntry, budget: _Budget) -> _SdiEntry:
    """The ``sdi.yaml`` file as extraction writes it."""
    if entry.flags & (_FLAG_ENCRYPTED | _FLAG_UNSUPPORTED):
        raise _Unjudged("encrypted")
    archive.seek(entry.header_offset)
    local = _LOCAL.unpack(_exactly(archive, _LOCAL.size))
    local_flags, (name_length, extra_length) = local[2], local[-2:]
    local_name = _exactly(archive, name_length).decode(
        "utf-8" if local_flags & _FLAG_UTF8 else "cp437"
    )
    if local[0] != _LOCAL_SIGNATURE or local_name != entry.stored_name:
        raise _Unjudged("a local header that does not match the directory")
    archive.seek(extra_length, io.SEEK_CUR)
    wanted = min(entry.size, MAX_SDI_FILE_BYTES + 1)
    content = _expand(archive, entry, wanted, budget)
    if len(content) == entry.size and zlib.crc32(content) != entry.crc:
        raise _Unjudged("a bad checksum")
    return _SdiEntry("file", content)


def _expand(archive: IO[bytes], entry: _ZipEntry, wanted: int, budget: _Budget) -> bytes:
    """The first ``wanted`` bytes of the entry's data, decoded as zipfile decodes its method,
    never decompressing more."""
    left = entry.compressed_size

    def more() -> bytes:
        nonlocal left
        if left <= 0:
            return b""
        data = archive.read(min(left, READ_CHUNK))
        if not data:
            raise _Unjudged("truncated data")
        left -= len(data)
        budget.read(len(data))
        return data

    out = bytearray()
    if entry.method == _STORED:
        while len(out) < wanted and (stored := more()):
            out += stored[: wanted - len(out)]
        return bytes(out)
    decoder = _Decoder(entry.method, more)
    while len(out) < wanted and not decoder.eof:
        data = decoder.next_input()
        if data is None:
            break
        out += decoder.decompress(data, wanted - len(out))
    return bytes(out)


class _Decoder:
    """zipfile's decompressor for a method, asked for at most so many bytes at a time."""

    def __init__(self, method: int, more: Callable[[], bytes]) -> None:
        self.method = method
        self.more = more
        self.pending = b""  # input read before the decompressor could be made
        self.inner: Any
        if method == _DEFLATED:
            self.inner = zlib.decompressobj(-15)
        elif method == _BZIP2:
            self.inner = bz2.BZ2Decompressor()
        elif method == _LZMA:
            self.inner, self.pending = _lzma_decompressor(more)
        else:
            raise _Unjudged("compressed in a way zipfile does not read")

    @property
    def eof(self) -> bool:
        return bool(self.inner.eof)

    def next_input(self) -> bytes | None:
        """The input to decompress next (None: none is left, and none is held back)."""
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        if self.method == _DEFLATED:
            held: bytes = self.inner.unconsumed_tail
            if held:
                return held
        elif not self.inner.needs_input:
            return b""  # output is held back: ask for it without more input
        return self.more() or None

    def decompress(self, data: bytes, room: int) -> bytes:
        return bytes(self.inner.decompress(data, room))


def _lzma_decompressor(more: Callable[[], bytes]) -> tuple[lzma.LZMADecompressor, bytes]:
    """zipfile's LZMA: a version, the size of the properties, the properties, then raw LZMA1;
    the decompressor, and the data read past the properties."""
    head = b""
    while len(head) < 4 or len(head) < 4 + struct.unpack_from("<H", head, 2)[0]:
        data = more()
        if not data:
            raise _Unjudged("truncated data")
        head += data
    (size,) = struct.unpack_from("<H", head, 2)
    decode: Callable[[int, bytes], dict[str, Any]]
    decode = getattr(lzma, "_decode_filter_properties")  # noqa: B009 (zipfile's own way)
    properties = decode(lzma.FILTER_LZMA1, head[4 : 4 + size])
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[properties]), head[4 + size :]
