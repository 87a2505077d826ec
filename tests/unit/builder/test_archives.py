"""Package archives are extracted only inside the build context."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from services.builder.archives import ArchiveError, Limits, extract_bytes


def make_zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            bundle.writestr(info, content)
    return buffer.getvalue()


def make_tar(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                bundle.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                bundle.addfile(info, io.BytesIO(entry[1]))
    return buffer.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


def test_zip_and_tar_extract_files_folders_and_inner_links(tmp_path: Path) -> None:
    archive = make_zip(
        [("app/", b"", stat.S_IFDIR | 0o755), ("app/run.sh", b"#!/bin/sh\n", stat.S_IFREG | 0o755),
         ("app\\win\\path.txt", b"windows", 0), ("app/current", b"run.sh", stat.S_IFLNK | 0o777)]
    )  # fmt: skip
    written = extract_bytes(archive, tmp_path / "zip")
    assert sorted(written) == ["app/run.sh", "app/win/path.txt"]
    assert (tmp_path / "zip/app/run.sh").stat().st_mode & 0o111
    assert (tmp_path / "zip/app/current").resolve() == (tmp_path / "zip/app/run.sh").resolve()

    tarred = make_tar(
        [("cfg/app.json", b"{}"), link("cfg/link.json", "app.json"),
         link("cfg/hard.json", "cfg/app.json", tarfile.LNKTYPE)]
    )  # fmt: skip
    assert sorted(extract_bytes(tarred, tmp_path / "tar")) == ["cfg/app.json", "cfg/hard.json"]
    assert (tmp_path / "tar/cfg/hard.json").read_bytes() == b"{}"


@pytest.mark.parametrize(
    ("archive", "code"),
    [
        (make_zip([("../evil.txt", b"x", 0)]), "archive_path_traversal"),
        (make_zip([("a/../../evil.txt", b"x", 0)]), "archive_path_traversal"),
        (make_zip([("/etc/evil", b"x", 0)]), "archive_absolute_path"),
        (make_zip([("C:\\Windows\\evil", b"x", 0)]), "archive_absolute_path"),
        (make_zip([("up", b"../../outside", stat.S_IFLNK | 0o777)]), "archive_link_escape"),
        (make_tar([link("etc", "/etc")]), "archive_link_escape"),
        (make_tar([link("a/b", "../../x")]), "archive_link_escape"),
        # Judged where the link really is: "s" is the root itself, so "s/x" -> ".." leaves.
        (make_tar([link("s", "."), link("s/x", "..")]), "archive_link_escape"),
        (make_tar([link("h", "../outside", tarfile.LNKTYPE)]), "archive_link_escape"),
        (make_tar([link("h", "missing", tarfile.LNKTYPE)]), "archive_link_escape"),
        (make_tar([special("dev", tarfile.CHRTYPE)]), "archive_special_file"),
        (make_tar([special("fifo", tarfile.FIFOTYPE)]), "archive_special_file"),
        (make_zip([("fifo", b"", stat.S_IFIFO | 0o644)]), "archive_special_file"),
        (b"not an archive", "archive_invalid"),
        (make_tar([("a", b"x" * 100)])[:30], "archive_invalid"),
        (b"PK\x03\x04broken", "archive_invalid"),
    ],
)
def test_unsafe_archives_are_refused_with_their_code(
    tmp_path: Path, archive: bytes, code: str
) -> None:
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(archive, tmp_path / "out")
    assert caught.value.code == code
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "outside").exists()


def test_limits_count_what_is_really_written(tmp_path: Path) -> None:
    many = make_zip([(f"f{i}", b"x", 0) for i in range(11)])
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(many, tmp_path / "many", Limits(max_files=10))
    assert caught.value.code == "archive_too_many_files"
    big = make_tar([("big", b"\0" * 5000)])  # compresses to almost nothing
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(big, tmp_path / "big", Limits(max_bytes=4096))
    assert caught.value.code == "archive_too_large"


@pytest.mark.parametrize(
    "entries",
    [
        # "a" is the folder itself, so a/a/a/.. is really its parent.
        [link("a", "."), link("esc", "a/a/a/.."), ("esc/OUTSIDE.txt", b"x")],
        [link("a", "."), link("root", "a/a/a/a/../../../../.."), ("root/OUTSIDE.txt", b"x")],
    ],
)
def test_links_chained_through_links_cannot_escape(
    tmp_path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]
) -> None:
    destination = tmp_path / "work" / "context"
    destination.parent.mkdir()
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(make_tar(entries), destination)
    assert caught.value.code == "archive_link_escape"
    assert not list(tmp_path.rglob("OUTSIDE.txt"))
