"""The registry's upload-time judgement of an SDI's sdi.yaml (services/registry/management/
sdi_check.py) against archives built to cost it time and memory, and against archives a build
reads differently from a naive reader. Each verdict case is also run through the builder's
own extraction, so the two cannot drift apart."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import struct
import tarfile
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import structlog

from services.builder.archives import ArchiveError, extract_bytes
from services.builder.tree import read_regular
from services.registry.management.sdi_check import (
    MAX_PAX_DIGITS,
    ScanLimits,
    SdiRefused,
    SdiScanner,
    check_sdi_archive,
)
from shared.sdi import MAX_SDI_FILE_BYTES, SdiInvalid, parse_sdi_file

BAD = b"features: 7\n"  # a build refuses it: sdi_invalid
REFUSED = ("sdi_invalid", "features must be a mapping")
DOCKERFILE = b"FROM base\n"


def judged(archive: bytes, extension: str, limits: ScanLimits | None = None) -> Any:
    """(code, message) the upload check gives, None when it lets the archive through."""
    try:
        check_sdi_archive(io.BytesIO(archive), extension, limits or ScanLimits())
    except SdiRefused as refused:
        return refused.code, str(refused)
    return None


def built(archive: bytes, root: Path) -> Any:
    """(code, message) of a build's extraction and reading of sdi.yaml, None when it passes."""
    try:
        extract_bytes(archive, root / "context")
        parse_sdi_file(read_regular(root / "context", "sdi.yaml", MAX_SDI_FILE_BYTES))
    except (ArchiveError, SdiInvalid) as exc:
        return exc.code, str(exc)
    return None


# --- tar headers that cost tarfile more than their size ---------------------------------------


def header(name: bytes, size: int, kind: bytes) -> bytes:
    block = bytearray(512)
    block[: len(name)] = name
    block[100:108] = b"0000644\0"
    block[108:124] = b"0000000\0" * 2
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def member(name: bytes, data: bytes, kind: bytes = b"0") -> bytes:
    return header(name, len(data), kind) + data + b"\0" * (-len(data) % 512)


def record(keyword: bytes, value: bytes = b"") -> bytes:
    body = b" " + keyword + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d" % length + body


def sdi_tar(*before: bytes, sdi: bytes = BAD) -> bytes:
    """A tar.gz of ``before`` (raw tar bytes), then a Dockerfile and sdi.yaml."""
    content = b"".join(before) + member(b"Dockerfile", DOCKERFILE) + member(b"sdi.yaml", sdi)
    return gzip.compress(content + b"\0" * 1024)


@pytest.fixture
def pax_parses(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The sizes of the pax headers tarfile's own parser was given."""
    parsed: list[int] = []
    original = tarfile.TarInfo._proc_pax  # type: ignore[attr-defined]

    def spy(self: tarfile.TarInfo, archive: tarfile.TarFile) -> tarfile.TarInfo:
        parsed.append(self.size)
        result: tarfile.TarInfo = original(self, archive)
        return result

    monkeypatch.setattr(tarfile.TarInfo, "_proc_pax", spy)
    yield parsed


def test_pax_records_tarfile_would_parse_in_quadratic_time_are_never_parsed(
    pax_parses: list[int],
) -> None:
    """CVE-2024-6232: records of "2 2 2 ... 2=" make tarfile scan to the far '=' for each
    two bytes, and keep a key of half the header for each (a 64 KiB header took a gigabyte).
    Such an archive is let through unjudged before tarfile sees the header."""
    quadratic = b"2 " * 2048 + b"=\n"
    digits = b"9" * (MAX_PAX_DIGITS + 1) + b" " + record(b"comment", b"x")  # hdrcharset search
    for pax in (quadratic, digits):
        assert judged(sdi_tar(member(b"././@PaxHeader", pax, b"x")), ".tar.gz") is None
    assert pax_parses == []
    fine = record(b"comment", b"2 2 2 2") + record(b"mtime", b"1700000000.123456789")
    assert judged(sdi_tar(member(b"././@PaxHeader", fine, b"x")), ".tar.gz") == REFUSED
    assert pax_parses == [len(fine)]


def test_global_pax_headers_are_bounded_together() -> None:
    """tarfile keeps every global record for the rest of the archive: many headers each
    under the limit held gigabytes. Together they may not exceed one header's limit."""
    limits = ScanLimits(header_bytes=4096)
    one = member(b"././@PaxHeader", record(b"comment", b"a" * 1000), b"g")
    fresh = [member(b"././@PaxHeader", record(b"k%d" % n, b"a" * 1000), b"g") for n in range(5)]
    assert judged(sdi_tar(one, member(b"f", b"")), ".tar.gz", limits) == REFUSED
    assert judged(sdi_tar(*fresh, member(b"f", b"")), ".tar.gz", limits) is None


def test_global_records_are_charged_for_every_member_they_apply_to() -> None:
    """tarfile applies each global record to each member after it: 98,000 keys and 199,000
    empty members burned minutes of CPU from a 650 KB upload."""
    keys = member(b"././@PaxHeader", b"".join(record(b"k%d" % n) for n in range(100)), b"g")
    empties = [member(b"f%d" % n, b"") for n in range(20)]
    limits = ScanLimits(pax_records=1000)
    assert judged(sdi_tar(keys, *empties), ".tar.gz", limits) is None  # 100 x 20 records
    assert judged(sdi_tar(keys, *empties[:5]), ".tar.gz", limits) == REFUSED
    local = member(b"././@PaxHeader", b"".join(record(b"k%d" % n) for n in range(100)), b"x")
    assert judged(sdi_tar(*[local + member(b"f", b"")] * 11), ".tar.gz", limits) is None


def test_a_git_archive_comment_and_pax_formatted_tars_are_judged() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as bundle:
        bundle.pax_headers = {"comment": "4e1243bd22c66e76c2ba9eddc1f91394e57f9f83"}
        for name, content in (("Dockerfile", DOCKERFILE), ("sdi.yaml", BAD)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(content), 1700000000.5  # a fractional mtime: pax
            info.pax_headers = {"path": name, "comment": "caf\u00e9"}
            bundle.addfile(info, io.BytesIO(content))
    assert judged(buffer.getvalue(), ".tar.gz") == REFUSED


# --- the scan in a child process -------------------------------------------------------------


def write(tmp_path: Path, archive: bytes, name: str = "package.tar.gz") -> str:
    path = tmp_path / name
    path.write_bytes(archive)
    return str(path)


async def test_a_scan_runs_in_a_child_and_brings_back_the_builds_verdict(tmp_path: Path) -> None:
    scanner = SdiScanner(workers=1)
    try:
        with pytest.raises(SdiRefused) as refused:
            await scanner.check(write(tmp_path, sdi_tar()), ".tar.gz")
        assert (refused.value.code, str(refused.value)) == REFUSED
        await scanner.check(write(tmp_path, sdi_tar(sdi=b"features: {}\n")), ".tar.gz")
    finally:
        scanner.close()


def lzma_zip(dictionary: int) -> bytes:
    """A zip whose sdi.yaml is LZMA with a dictionary of ``dictionary`` bytes, which its
    decompressor allocates before it reads a byte."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_LZMA) as bundle:
        bundle.writestr("Dockerfile", DOCKERFILE)
        bundle.writestr("sdi.yaml", BAD)
    data = buffer.getvalue()
    properties = data.index(b"sdi.yaml") + len(b"sdi.yaml") + 4  # version, size, then them
    return data[: properties + 1] + struct.pack("<I", dictionary) + data[properties + 5 :]


async def test_a_scan_out_of_memory_lets_the_package_through_and_says_so(tmp_path: Path) -> None:
    assert judged(lzma_zip(1 << 16), ".zip") == REFUSED
    scanner = SdiScanner(workers=1, memory_bytes=256 * 1024**2)
    try:
        with structlog.testing.capture_logs() as logs:
            await scanner.check(write(tmp_path, lzma_zip(1 << 31), "p.zip"), ".zip")
        assert logs == [
            {"event": "sdi_scan_unjudged", "reason": "out_of_memory", "log_level": "warning"}
        ]
        with pytest.raises(SdiRefused):  # a fresh child takes its place
            await scanner.check(write(tmp_path, lzma_zip(1 << 16), "q.zip"), ".zip")
    finally:
        scanner.close()


async def test_a_scan_past_its_deadline_is_killed_without_holding_a_thread(
    tmp_path: Path,
) -> None:
    """The child blocks opening a FIFO nobody writes: only the kill ends it. Meanwhile the
    loop's default executor (which sign-in shares) is free, however few threads it has."""
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    scanner = SdiScanner(workers=1, grace_seconds=0.0)
    try:
        await scanner.check(write(tmp_path, sdi_tar(sdi=b"features: {}\n")), ".tar.gz")  # warm
        with structlog.testing.capture_logs() as logs:
            scan = asyncio.create_task(scanner.check(str(fifo), ".tar.gz", ScanLimits(seconds=30)))
            await asyncio.sleep(0)
            assert await asyncio.to_thread(sum, [1, 2]) == 3
            assert not scan.done()
            scan.cancel()
            with pytest.raises(asyncio.CancelledError):
                await scan
            await scanner.check(str(fifo), ".tar.gz", ScanLimits(seconds=0.2))
        assert logs == [
            {"event": "sdi_scan_unjudged", "reason": "out_of_time", "log_level": "warning"}
        ]
    finally:
        scanner.close()


async def test_scans_beyond_the_workers_wait_their_turn(tmp_path: Path) -> None:
    scanner = SdiScanner(workers=1)
    try:
        path = write(tmp_path, sdi_tar())
        results = await asyncio.gather(
            *(scanner.check(path, ".tar.gz") for _ in range(4)), return_exceptions=True
        )
        assert [type(result) for result in results] == [SdiInvalid] * 4  # whole, as raised
        assert scanner.runner._live == 1  # one child served them all
    finally:
        scanner.close()


# --- sdi.yaml a YAML reader refuses ---------------------------------------------------------


@pytest.mark.parametrize("character", ["\x00", "\x01", "\x1b", "\ufffe"])
def test_a_character_yaml_refuses_is_sdi_invalid_not_a_crash(character: str) -> None:
    text = f"packages: []{character}\n"
    content = text.encode()
    archive = zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", content)])
    assert judged(archive, ".zip") == (
        "sdi_invalid",
        "sdi.yaml is not valid YAML (a character YAML does not allow)",
    )


# --- verdicts a build reaches differently ---------------------------------------------------


def zip_of(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as bundle:
        for name, content in entries:
            bundle.writestr(name, content)
    return buffer.getvalue()


def with_end_record_far_back(archive: bytes) -> bytes:
    """The end record (its comment length 0) followed by 65,536 bytes: zipfile still finds
    it, searching 1 << 16 bytes before the last 22."""
    return archive + b"\0" * (1 << 16)


def named_with_a_nul() -> bytes:
    """sdi.yaml stored as 'sdi.yaml\\0x': zipfile names it sdi.yaml and checks the local
    header against the whole stored name."""
    archive = zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml\x01x", BAD)])
    return archive.replace(b"sdi.yaml\x01x", b"sdi.yaml\x00x")


def tar_of(entries: list[tuple[str, bytes]], *, end: bool = True) -> bytes:
    return b"".join(member(name.encode(), data) for name, data in entries) + (
        b"\0" * 1024 if end else b""
    )


SAME: dict[str, tuple[bytes, str, Any]] = {
    "zip-bzip2": (zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", BAD)], zipfile.ZIP_BZIP2),
                  ".zip", REFUSED),
    "zip-lzma": (zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", BAD)], zipfile.ZIP_LZMA),
                 ".zip", REFUSED),
    "zip-bzip2-too-large": (
        zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", b"#" * (MAX_SDI_FILE_BYTES + 1))],
               zipfile.ZIP_BZIP2),
        ".zip", ("archive_too_large", f"sdi.yaml is larger than {MAX_SDI_FILE_BYTES} bytes"),
    ),
    "zip-name-with-a-nul": (named_with_a_nul(), ".zip", REFUSED),
    "zip-end-record-65536-back": (
        with_end_record_far_back(zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", BAD)])),
        ".zip", REFUSED,
    ),
    "zip-folder-made-by-an-entry-beneath": (
        zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml/x", b"y")]),
        ".zip", ("archive_special_file", "sdi.yaml is not a regular file"),
    ),
    "tar-folder-made-by-an-entry-beneath": (
        gzip.compress(tar_of([("Dockerfile", DOCKERFILE), ("sdi.yaml/x", b"y")])),
        ".tar.gz", ("archive_special_file", "sdi.yaml is not a regular file"),
    ),
    "tar-gz-then-other-bytes": (
        gzip.compress(tar_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", BAD)])) + b"JUNK" * 8,
        ".tar.gz", REFUSED,
    ),
    "tar-gz-in-two-members": (
        gzip.compress(tar_of([("Dockerfile", DOCKERFILE)], end=False))
        + gzip.compress(tar_of([("sdi.yaml", BAD)])),
        ".tar.gz", REFUSED,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("archive", "extension", "verdict"), SAME.values(), ids=SAME.keys())
def test_the_upload_check_reads_the_archive_as_a_build_does(
    tmp_path: Path, archive: bytes, extension: str, verdict: Any
) -> None:
    assert judged(archive, extension) == verdict
    assert built(archive, tmp_path) == verdict


UNJUDGED_BUILD_FAILS: dict[str, tuple[bytes, str]] = {
    # no tar end: a build reads on into the bytes after the gzip data, and fails there
    "tar-without-its-end-then-other-bytes": (
        gzip.compress(tar_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", BAD)], end=False))
        + b"JUNK" * 8,
        ".tar.gz",
    ),
    "zip-sdi-yaml-a-file-and-a-folder": (
        zip_of([("Dockerfile", DOCKERFILE), ("sdi.yaml", BAD), ("sdi.yaml/x", b"y")]), ".zip"
    ),
    "tar-sdi-yaml-a-folder-then-a-file": (
        gzip.compress(
            tar_of([("Dockerfile", DOCKERFILE), ("sdi.yaml/x", b"y"), ("sdi.yaml", BAD)])
        ),
        ".tar.gz",
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("archive", "extension"), UNJUDGED_BUILD_FAILS.values(), ids=UNJUDGED_BUILD_FAILS.keys()
)
def test_what_a_build_fails_to_extract_is_let_through(
    tmp_path: Path, archive: bytes, extension: str
) -> None:
    assert judged(archive, extension) is None
    assert built(archive, tmp_path)[0] == "archive_invalid"


@pytest.mark.parametrize("dockerfile_first", [True, False])
def test_a_device_named_sdi_yaml_stops_the_reading_as_it_stops_a_build(
    tmp_path: Path, dockerfile_first: bool
) -> None:
    device = tarfile.TarInfo("sdi.yaml")
    device.type = tarfile.CHRTYPE
    entries = [(device, b""), (tarfile.TarInfo("sdi.yaml"), b"features: {}\n")]
    dockerfile = (tarfile.TarInfo("Dockerfile"), DOCKERFILE)
    entries.insert(0 if dockerfile_first else 2, dockerfile)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for info, content in entries:
            info.size = len(content)
            bundle.addfile(info, io.BytesIO(content))
    verdict = ("archive_special_file", "'sdi.yaml' is a device, FIFO or other special file")
    assert judged(buffer.getvalue(), ".tar.gz") == verdict
    assert built(buffer.getvalue(), tmp_path) == verdict


def test_a_damaged_lzma_sdi_yaml_is_let_through() -> None:
    archive = lzma_zip(1 << 16)
    properties = archive.index(b"sdi.yaml") + len(b"sdi.yaml") + 4
    damaged = archive[:properties] + b"\xff" + archive[properties + 1 :]  # lc/lp/pb out of range
    assert judged(damaged, ".zip") is None


def test_a_hard_link_named_sdi_yaml_is_not_judged(tmp_path: Path) -> None:
    """Its content is another entry's, which the reading has passed (the module's docstring
    says so): the build judges it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, content in (("Dockerfile", DOCKERFILE), ("real", BAD)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            bundle.addfile(info, io.BytesIO(content))
        link = tarfile.TarInfo("sdi.yaml")
        link.type, link.linkname = tarfile.LNKTYPE, "real"
        bundle.addfile(link)
    assert judged(buffer.getvalue(), ".tar.gz") is None
    assert built(buffer.getvalue(), tmp_path) == REFUSED


@pytest.mark.parametrize(
    "order",
    [["sdi.yaml", "Dockerfile", "app/run.sh"], ["Dockerfile", "sdi.yaml", "notes.txt"],
     ["app/run.sh", "sdi.yaml", "Dockerfile"]],
    ids=["sdi-first", "sdi-between", "sdi-after-a-folder"],
)  # fmt: skip
def test_a_zip_s_sdi_yaml_is_read_wherever_it_stands_among_other_files(
    tmp_path: Path, order: list[str]
) -> None:
    """The file judged is the last entry named sdi.yaml, never another file after it."""
    contents = {
        "sdi.yaml": b"features:\n  substitute_in_files: [app/run.sh]\n",
        "Dockerfile": DOCKERFILE,
        "app/run.sh": b"echo #{Greeting}\n",
        "notes.txt": b"- a list, not a mapping\n",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in order:
            archive.writestr(name, contents[name])
    assert judged(buffer.getvalue(), ".zip") is None
    assert built(buffer.getvalue(), tmp_path) is None
