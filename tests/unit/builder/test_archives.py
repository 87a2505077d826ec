"""Package archives are extracted only inside the build context."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from services.builder.archives import ArchiveError, Budget, Limits, extract_bytes, verify_tree


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


def host_folder(tmp_path: Path) -> Path:
    """A folder beside the build tree standing for the builder host's own files."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "host-only-name.txt").write_bytes(b"host secret\n")
    return host


def snapshot(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every entry of ``folder`` with its content and modification time."""
    return {
        path.relative_to(folder).as_posix(): (
            path.read_bytes() if path.is_file() else None,
            path.lstat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
    } | {".": (None, folder.stat().st_mtime_ns)}


def order_attack(context: Path, host: Path) -> str:
    """``a``'s target for the order attack: made while ``b`` is missing it reads (and
    realpath judges it) as a folder inside; once ``b -> .`` exists it climbs to ``/`` and
    from there to ``host``."""
    climbs = len(context.parts)
    return "b/" * climbs + "../" * climbs + str(host).lstrip("/")


def zip_link(name: str, target: str) -> tuple[str, bytes, int]:
    return (name, target.encode(), stat.S_IFLNK | 0o777)


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_the_link_order_attack_is_refused_and_the_host_untouched(tmp_path: Path, kind: str) -> None:
    """a -> b/b/../../<host> then b -> . would make a lead to a host folder: the first link
    is refused for what it could become, and nothing outside the tree is made or changed."""
    host = host_folder(tmp_path)
    before = snapshot(host)
    context = tmp_path / "work" / "context"
    context.parent.mkdir()
    target = order_attack(context, host)
    if kind == "zip":
        archive = make_zip(
            [zip_link("a", target), zip_link("b", "."), ("a/planted/", b"", stat.S_IFDIR | 0o755),
             ("a/planted.txt", b"x", stat.S_IFREG | 0o644),
             ("a/host-only-name.txt", b"overwritten", stat.S_IFREG | 0o644)]
        )  # fmt: skip
    else:
        archive = make_tar(
            [link("a", target), link("b", "."), ("a/planted.txt", b"x"),
             ("a/host-only-name.txt", b"overwritten")]
        )  # fmt: skip
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(archive, context)
    assert caught.value.code == "archive_link_escape"
    assert "host-only-name" not in str(caught.value)
    assert snapshot(host) == before
    assert not (context / "a").is_symlink()


def test_verify_tree_refuses_the_order_attack_made_on_disk(tmp_path: Path) -> None:
    """The same two links made directly: realpath judged ``a`` inside when it was made, and
    it leads to the host folder once ``b`` exists; verify_tree refuses the tree."""
    host = host_folder(tmp_path)
    before = snapshot(host)
    context = tmp_path / "work" / "context"
    context.mkdir(parents=True)
    (context / "a").symlink_to(order_attack(context, host))
    assert (context / "a").resolve().is_relative_to(context.resolve())  # fooled, for now
    (context / "b").symlink_to(".")
    assert (context / "a").resolve() == host.resolve()  # the attack works on disk
    with pytest.raises(ArchiveError) as caught:
        verify_tree(context)
    assert caught.value.code == "archive_link_escape"
    assert "'a'" in str(caught.value) and "host-only-name" not in str(caught.value)
    assert snapshot(host) == before


@pytest.mark.parametrize(
    ("links", "code"),
    [
        ({"d/x": "../y"}, None),
        ({"d/e/f": "../../g/h"}, None),
        ({"self": "."}, None),
        ({"later": "not/made/yet"}, None),  # dangling, and it can only ever land inside
        ({"loop": "loop"}, None),  # unusable, harmless
        ({"x": "../y"}, "archive_link_escape"),
        ({"d/up": "../../x"}, "archive_link_escape"),
        ({"abs": "/etc"}, "archive_link_escape"),
        ({"a": "x/../y"}, "archive_link_escape"),  # descends and climbs: refused
        ({"deep/er/a": "./../b/c/../d"}, "archive_link_escape"),
    ],
)
def test_verify_tree_judges_every_link_by_the_rule(
    tmp_path: Path, links: dict[str, str], code: str | None
) -> None:
    for name, target in links.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(target)
    if code is None:
        verify_tree(tmp_path)
    else:
        with pytest.raises(ArchiveError) as caught:
            verify_tree(tmp_path)
        assert caught.value.code == code


def test_verify_tree_refuses_special_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "sub" / "pipe")
    with pytest.raises(ArchiveError) as caught:
        verify_tree(tmp_path)
    assert caught.value.code == "archive_special_file"


def test_internal_links_still_work(tmp_path: Path) -> None:
    """A folder link (current -> v1), links to siblings and a link that climbs back down
    are extracted and readable through, and the tree passes verify_tree."""
    archive = make_zip(
        [("v1/app.txt", b"app", stat.S_IFREG | 0o644), zip_link("current", "v1"),
         zip_link("v1/alias.txt", "app.txt"), zip_link("lib/app.txt", "../v1/app.txt"),
         zip_link("lib/current", "../current")]
    )  # fmt: skip
    extract_bytes(archive, tmp_path / "context")
    context = tmp_path / "context"
    for name in ("current/app.txt", "v1/alias.txt", "lib/app.txt", "lib/current/alias.txt"):
        assert (context / name).read_bytes() == b"app"
    verify_tree(context)


def test_nothing_is_written_through_a_link(tmp_path: Path) -> None:
    """An entry beneath a link (even one inside the tree) is refused: every link must sit
    where its name says for the rule to hold."""
    archive = make_zip(
        [("v1/", b"", stat.S_IFDIR | 0o755), zip_link("cur", "v1"),
         ("cur/x.txt", b"x", stat.S_IFREG | 0o644)]
    )  # fmt: skip
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(archive, tmp_path / "context")
    assert caught.value.code == "archive_link_escape"
    assert not (tmp_path / "context/v1/x.txt").exists()


def test_an_oversized_link_target_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    archive = make_zip([zip_link("long", "x/" * 1_000_000)])
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(archive, tmp_path / "context")
    assert caught.value.code == "archive_link_escape"


def test_a_later_archive_cannot_turn_an_earlier_link_outward(tmp_path: Path) -> None:
    """The SDI's ``x -> app/b/b/b/y`` only descends; a package in app/ may make b -> . but
    not y -> .. (above its own folder), so x lands inside whatever the package adds."""
    context = tmp_path / "context"
    budget = Budget()
    extract_bytes(make_tar([link("x", "app/b/b/b/y")]), context, budget)
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(make_tar([link("b", "."), link("y", "..")]), context / "app", budget)
    assert caught.value.code == "archive_link_escape"
    extract_bytes(make_tar([link("b", "."), ("y", b"in app")]), context / "other", budget)
    extract_bytes(make_tar([link("b", "."), ("y", b"in app")]), context / "app", budget)
    verify_tree(context)
    assert (context / "x").read_bytes() == b"in app"


def test_one_budget_limits_the_bytes_of_the_whole_build(tmp_path: Path) -> None:
    """Each archive alone is under the limit; the third one of the build goes over it."""
    package = make_tar([("big.bin", b"\0" * 4000)])  # compresses to almost nothing
    for name in ("one", "two", "three"):
        extract_bytes(package, tmp_path / name, Budget(Limits(max_bytes=5000)))
    budget = Budget(Limits(max_bytes=10_000))
    (tmp_path / "build").mkdir()
    extract_bytes(package, tmp_path / "build" / "one", budget)
    extract_bytes(package, tmp_path / "build" / "two", budget)
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(package, tmp_path / "build" / "three", budget)
    assert caught.value.code == "archive_too_large"
    assert "10000" in str(caught.value)
    assert "SPACEDOCK_BUILD_MAX_EXTRACT_BYTES" in str(caught.value)


def test_one_budget_limits_the_files_of_the_whole_build(tmp_path: Path) -> None:
    """Entries of every kind count, and so does each folder made for an entry without its
    own, and each archive; the 14th thing of the build trips a limit of 13."""
    nested = Budget()
    entries: list[tarfile.TarInfo | tuple[str, bytes]] = [special("app", tarfile.DIRTYPE)]
    entries += [("app/x", b"x"), ("deep/er/y", b"y")]
    extract_bytes(make_tar([*entries, link("l", "app")]), tmp_path / "n", nested)
    assert nested.files == 7  # the archive, app, app/x, deep, deep/er, deep/er/y, l
    package = make_tar([("a", b"a"), ("b", b"b"), special("c", tarfile.DIRTYPE), link("d", "a")])
    budget = Budget(Limits(max_files=13))
    (tmp_path / "build").mkdir()
    extract_bytes(package, tmp_path / "build" / "one", budget)
    extract_bytes(package, tmp_path / "build" / "two", budget)
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(package, tmp_path / "build" / "three", budget)
    assert caught.value.code == "archive_too_large"
    assert "13" in str(caught.value) and "SPACEDOCK_BUILD_MAX_FILES" in str(caught.value)
    assert budget.files == 14
    assert sorted(p.name for p in (tmp_path / "build" / "three").iterdir()) == ["a", "b"]


def test_extract_without_a_budget_uses_the_default_limits(tmp_path: Path) -> None:
    budget = Budget()
    assert budget.limits == Limits(max_bytes=4 * 1024**3, max_files=200_000)
    assert Limits(max_files=5).budget().limits.max_files == 5  # a fresh one per build
    assert extract_bytes(make_tar([("f", b"x")]), tmp_path / "out") == ["f"]


def test_a_hard_link_costs_the_bytes_of_its_file(tmp_path: Path) -> None:
    """An image holds a file's content once per name (the assembled strategy copies each):
    200 hard links to an 8 MiB file in a tar of a few KB would be a 1.6 GiB layer."""
    big = 8 * 1024 * 1024
    links = [link(f"copy{n}", "big.bin", tarfile.LNKTYPE) for n in range(200)]
    archive = make_tar([("big.bin", b"\0" * big), *links])
    assert len(archive) < 64 * 1024
    budget = Budget(Limits(max_bytes=100 * big))
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(archive, tmp_path / "bomb", budget)
    assert caught.value.code == "archive_too_large"
    assert budget.bytes == 101 * big  # the file, then each name of it until one is too many
    fine = Budget()
    names = [link(f"f{n}", "f", tarfile.LNKTYPE) for n in range(3)]
    extract_bytes(make_tar([("f", b"12345"), *names]), tmp_path / "fine", fine)
    assert fine.bytes == 4 * 5 and fine.files == 5  # the archive and its four entries


def test_every_archive_costs_an_entry_even_an_empty_one(tmp_path: Path) -> None:
    """An sdi.yaml may name the same empty package many times: each is still a download and
    a walk of the tree, so the build's file budget runs out."""
    empty = make_tar([])
    budget = Budget(Limits(max_files=3))
    for n in range(3):
        assert extract_bytes(empty, tmp_path / f"p{n}", budget) == []
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(empty, tmp_path / "p3", budget)
    assert caught.value.code == "archive_too_large"
    assert budget.files == 4


def _zip_with_header_patched(offset_in_header: int, value: bytes) -> bytes:
    """A one-file zip whose local and central headers have ``value`` at the given offset
    of the fields they share (the local header's offset; the central one's is 2 more)."""
    data = bytearray(make_zip([("a.txt", b"hello", 0o644)]))
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    data[local + offset_in_header : local + offset_in_header + len(value)] = value
    central_at = central + offset_in_header + 2
    data[central_at : central_at + len(value)] = value
    return bytes(data)


@pytest.mark.parametrize(
    "archive",
    [
        pytest.param(_zip_with_header_patched(6, b"\x01\x00"), id="encrypted-entry"),
        pytest.param(_zip_with_header_patched(8, b"\x61\x00"), id="unknown-compression-method"),
    ],
)
def test_zip_entries_python_cannot_read_are_invalid_archives(
    tmp_path: Path, archive: bytes
) -> None:
    """An encrypted entry or a compression method zipfile lacks is the tenant's bad archive,
    not a builder fault."""
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(archive, tmp_path / "out")
    assert caught.value.code == "archive_invalid"


def test_a_damaged_lzma_entry_is_an_invalid_archive(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_LZMA) as archive:
        archive.writestr("a.txt", b"hello lzma " * 100)
    data = bytearray(buffer.getvalue())
    start = 30 + len("a.txt") + 9  # past the local header and LZMA's own properties header
    data[start : start + 16] = b"\xff" * 16
    with pytest.raises(ArchiveError) as caught:
        extract_bytes(bytes(data), tmp_path / "out")
    assert caught.value.code == "archive_invalid"
