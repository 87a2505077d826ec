"""Reading sdi.yaml is bounded: packages, values, nesting, and no aliases to multiply them;
an uploaded SDI's sdi.yaml is judged as a build would judge it, within budgets."""

from __future__ import annotations

import io
import stat
import tarfile
import threading
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest

from services.builder.archives import ArchiveError, extract_bytes
from services.builder.tree import read_regular
from services.registry.management.sdi_check import (
    MAX_HEADER_BYTES,
    ScanLimits,
    SdiRefused,
    check_sdi_archive,
)
from shared.sdi import (
    MAX_PACKAGES,
    MAX_SDI_FILE_BYTES,
    SdiInvalid,
    parse_sdi,
    parse_sdi_file,
)


def packages(count: int) -> str:
    return "packages:\n" + "".join(f"  - id: tool{n}\n" for n in range(count))


def test_at_most_max_packages_are_listed() -> None:
    assert len(parse_sdi(packages(MAX_PACKAGES)).packages) == MAX_PACKAGES
    with pytest.raises(SdiInvalid, match=f"lists {MAX_PACKAGES + 1} packages; .* at most 100"):
        parse_sdi(packages(MAX_PACKAGES + 1))


def merge_key_bomb(levels: int) -> str:
    """Each mapping merges the one before twice: 2**levels keys from a kilobyte."""
    lines = ["a0: &a0 {k: v}"]
    lines += [f"a{n}: &a{n} {{<<: [*a{n - 1}, *a{n - 1}]}}" for n in range(1, levels)]
    return "\n".join(lines)


LAUGHS = """
a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
features:
  substitute_in_files: [*c, *c, *c, *c, *c, *c, *c, *c, *c]
"""


@pytest.mark.parametrize(
    "text",
    [
        merge_key_bomb(40),
        LAUGHS,
        "packages:\n  - &p {id: tool}\n" + "  - *p\n" * 20_000,  # 20,000 downloads in 140 KB
    ],
    ids=["merge-keys", "billion-laughs", "aliased-packages"],
)
def test_aliases_are_refused_before_they_are_expanded(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(SdiInvalid, match=r"may not use YAML aliases \(\*name\)"):
        parse_sdi(text)
    assert time.monotonic() - started < 1  # merge keys alone took seconds at 22 levels


def test_values_and_nesting_are_bounded() -> None:
    started = time.monotonic()
    with pytest.raises(SdiInvalid, match="more than 10000 values"):
        parse_sdi("features:\n  substitute_in_files: [" + ", ".join(["a"] * 20_000) + "]\n")
    with pytest.raises(SdiInvalid, match="nests lists and mappings more than 16 deep"):
        parse_sdi("[" * 100_000 + "]" * 100_000)  # the recursive composer's RecursionError
    assert time.monotonic() - started < 2


def test_a_number_python_refuses_to_read_is_sdi_invalid() -> None:
    with pytest.raises(SdiInvalid, match="not valid YAML"):
        parse_sdi("packages:\n  - id: tool\n    version: " + "1" * 5000 + "\n")


BAD_CHARACTER = "sdi.yaml is not valid YAML (a character YAML does not allow)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("packages: []\x01\n", BAD_CHARACTER),
        ("packages: [secret\x00]\n", BAD_CHARACTER),
        ("features:\n  secret: [\n", "sdi.yaml is not valid YAML (line 3, column 1)"),
        ("secret: !!python/object:os.system x\n", "sdi.yaml is not valid YAML (line 1, column 9)"),
    ],
)
def test_every_way_yaml_refuses_the_text_is_sdi_invalid_and_quotes_none_of_it(
    text: str, message: str
) -> None:
    """The reader refuses a control character as the loader is made, before it parses: that
    was a ReaderError out of parse_sdi (a 500 at upload, a crash in the build and preview)."""
    with pytest.raises(SdiInvalid) as invalid:
        parse_sdi(text)
    assert str(invalid.value) == message


def test_an_anchor_without_an_alias_is_fine() -> None:
    spec = parse_sdi("packages:\n  - &tool\n    id: tool\n    version: 1.0.0\n")
    assert [(p.id, p.version) for p in spec.packages] == [("tool", "1.0.0")]


# --- sdi.yaml judged at upload (services/registry/management/sdi_check.py) -----------------
# The registry reads the uploaded archive without extracting it; what it says must be what a
# build would say after extracting it, so each case is also run through the builder's path.

Entry = tuple[str, bytes | None, int]  # name, content (None: a folder), mode (a link: target)
DOCKERFILE_ENTRY: Entry = ("Dockerfile", b"FROM base\n", 0o644)


def write_zip(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with (
        warnings.catch_warnings(action="ignore", category=UserWarning),  # a duplicate name
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle,
    ):
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name + ("/" if content is None else ""))
            info.compress_type = zipfile.ZIP_DEFLATED
            kind = stat.S_IFDIR if content is None else stat.S_IFMT(mode) or stat.S_IFREG
            info.external_attr = (kind | (mode & 0o777)) << 16
            bundle.writestr(info, content or b"")
    return buffer.getvalue()


def write_tar(entries: list[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, content, mode in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(mode):
                info.type, info.linkname = tarfile.SYMTYPE, content.decode()
            else:
                info.size = len(content)
            bundle.addfile(info, None if content is None else io.BytesIO(content))
    return buffer.getvalue()


FORMATS = {".zip": write_zip, ".tar.gz": write_tar}
LINK = stat.S_IFLNK | 0o777


def judged(extension: str, entries: list[Entry]) -> Any:
    """(code, message) the upload check gives, None when it lets the archive through."""
    try:
        check_sdi_archive(io.BytesIO(FORMATS[extension](entries)), extension)
    except SdiRefused as refused:
        return refused.code, str(refused)
    return None


def built(extension: str, entries: list[Entry], root: Path) -> Any:
    """(code, message) of a build's extraction and reading of sdi.yaml, None when it passes."""
    try:
        extract_bytes(FORMATS[extension](entries), root / "context")
        parse_sdi_file(read_regular(root / "context", "sdi.yaml", MAX_SDI_FILE_BYTES))
    except ArchiveError as exc:
        return exc.code, str(exc)
    except SdiInvalid as exc:
        return exc.code, str(exc)
    return None


REFUSED: dict[str, tuple[list[Entry], str, str]] = {
    "invalid-spec": (
        [("sdi.yaml", b"features:\n  structured_variables: yes\n", 0o644)],
        "sdi_invalid", "structured_variables must be a list",
    ),
    "bad-package-version": (
        [("sdi.yaml", b"packages:\n  - id: toolkit\n    version: 1.0.0+meta\n", 0o644)],
        "sdi_invalid", "packages[0]: 'toolkit' '1.0.0+meta' is not a package id and version",
    ),
    "not-utf8": ([("sdi.yaml", "features: {}  # \u00e9t\u00e9\n".encode("latin-1"), 0o644)],
                 "sdi_invalid", "sdi.yaml is not UTF-8 text"),
    "too-large": ([("sdi.yaml", b"#" * (MAX_SDI_FILE_BYTES + 1), 0o644)],
                  "archive_too_large", f"sdi.yaml is larger than {MAX_SDI_FILE_BYTES} bytes"),
    "a-link": ([("conf.yaml", b"features: {}\n", 0o644), ("sdi.yaml", b"conf.yaml", LINK)],
               "archive_link_escape", "sdi.yaml is a link, not a regular file"),
    "a-folder": ([("sdi.yaml", None, 0o755)],
                 "archive_special_file", "sdi.yaml is not a regular file"),
    "dot-slash-name": ([("./sdi.yaml", b"packages: {}\n", 0o644)],
                       "sdi_invalid", "packages must be a list"),
    "the-last-entry-counts": (
        [("sdi.yaml", b"features: {}\n", 0o644), ("sdi.yaml", b"features: 7\n", 0o644)],
        "sdi_invalid", "features must be a mapping",
    ),
}  # fmt: skip


@pytest.mark.parametrize("extension", FORMATS)
@pytest.mark.parametrize(("entries", "code", "message"), REFUSED.values(), ids=REFUSED.keys())
def test_an_sdi_a_build_would_refuse_is_refused_with_the_builds_code_and_words(
    tmp_path: Path, extension: str, entries: list[Entry], code: str, message: str
) -> None:
    entries = [DOCKERFILE_ENTRY, *entries]
    assert judged(extension, entries) == (code, message)
    assert built(extension, entries, tmp_path) == (code, message)


PASSED: dict[str, list[Entry]] = {
    "valid": [DOCKERFILE_ENTRY, ("sdi.yaml", b"features:\n  substitute_in_files: [a]\n", 0o644)],
    "no-sdi-yaml": [DOCKERFILE_ENTRY, ("app/settings.json", b"{}", 0o644)],
    "not-an-sdi": [("sdi.yaml", b"features: 7\n", 0o644)],  # no Dockerfile at the root
    "nested": [DOCKERFILE_ENTRY, ("docs/sdi.yaml", b"features: 7\n", 0o644)],
    "replaced-by-a-good-one": [
        DOCKERFILE_ENTRY, ("sdi.yaml", b"features: 7\n", 0o644),
        ("sdi.yaml", b"features: {}\n", 0o644),
    ],
}  # fmt: skip


@pytest.mark.parametrize("extension", FORMATS)
@pytest.mark.parametrize("entries", PASSED.values(), ids=PASSED.keys())
def test_other_packages_pass(extension: str, entries: list[Entry]) -> None:
    assert judged(extension, entries) is None


def test_zip64_and_data_before_the_archive_are_read_as_zipfile_reads_them() -> None:
    entries = [DOCKERFILE_ENTRY, ("sdi.yaml", b"features: 7\n", 0o644)]
    refused = ("sdi_invalid", "features must be a mapping")
    self_extracting = b"#!/bin/sh\nexit 0\n" * 100 + write_zip(entries)
    forced_zip64 = io.BytesIO()
    with zipfile.ZipFile(forced_zip64, "w") as bundle:
        for name, content, _ in entries:
            with bundle.open(name, "w", force_zip64=True) as handle:
                handle.write(content or b"")
    for archive in (self_extracting, forced_zip64.getvalue()):
        with pytest.raises(SdiRefused) as failed:
            check_sdi_archive(io.BytesIO(archive), ".zip")
        assert (failed.value.code, str(failed.value)) == refused


def long_pax_header(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as bundle:
        info = tarfile.TarInfo("notes.txt")
        info.pax_headers = {"comment": "x" * size}
        bundle.addfile(info, io.BytesIO(b""))
        for name, content, _ in (DOCKERFILE_ENTRY, ("sdi.yaml", b"features: 7\n", 0)):
            info = tarfile.TarInfo(name)
            info.size = len(content or b"")
            bundle.addfile(info, io.BytesIO(content or b""))
    return buffer.getvalue()


def zeros_then_sdi(zeros: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as bundle:
        filler = tarfile.TarInfo("filler.bin")
        filler.size = zeros
        bundle.addfile(filler, io.BytesIO(bytes(zeros)))
        for name, content, _ in (DOCKERFILE_ENTRY, ("sdi.yaml", b"features: 7\n", 0)):
            info = tarfile.TarInfo(name)
            info.size = len(content or b"")
            bundle.addfile(info, io.BytesIO(content or b""))
    return buffer.getvalue()


def many_entries(count: int) -> bytes:
    return write_zip(
        [DOCKERFILE_ENTRY, *((f"f{n}", b"", 0o644) for n in range(count)),
         ("sdi.yaml", b"features: 7\n", 0o644)]
    )  # fmt: skip


UNREADABLE: dict[str, tuple[bytes, str, ScanLimits, bool]] = {
    "pax-header-over-its-limit": (long_pax_header(MAX_HEADER_BYTES + 1), ".tar.gz",
                                  ScanLimits(), False),
    "expands-beyond-the-bytes": (zeros_then_sdi(8 * 1024**2), ".tar.gz",
                                 ScanLimits(max_bytes=4 * 1024**2), False),
    "more-entries-than-a-build": (many_entries(50), ".zip", ScanLimits(max_entries=20), False),
    "given-up": (zeros_then_sdi(1024), ".tar.gz", ScanLimits(), True),
    "cut-short-tar": (zeros_then_sdi(1024)[:-40], ".tar.gz", ScanLimits(), False),
    "cut-short-zip": (many_entries(3)[:-30], ".zip", ScanLimits(), False),
    "not-an-archive": (b"PK\x03\x04 and then nothing", ".zip", ScanLimits(), False),
}  # fmt: skip


@pytest.mark.parametrize(("archive", "extension", "limits", "cancel"), UNREADABLE.values(),
                         ids=UNREADABLE.keys())  # fmt: skip
def test_an_archive_that_cannot_be_read_within_the_limits_is_let_through(
    archive: bytes, extension: str, limits: ScanLimits, cancel: bool
) -> None:
    """Its build fails with its own code (archive_too_large, archive_invalid) as before."""
    cancelled = threading.Event()
    if cancel:
        cancelled.set()
    check_sdi_archive(io.BytesIO(archive), extension, limits, cancelled)


def test_the_same_archives_within_the_limits_are_judged() -> None:
    for archive, extension in (
        (long_pax_header(MAX_HEADER_BYTES - 1024), ".tar.gz"),
        (zeros_then_sdi(8 * 1024**2), ".tar.gz"),
        (many_entries(50), ".zip"),
    ):
        with pytest.raises(SdiRefused, match="features must be a mapping"):
            check_sdi_archive(io.BytesIO(archive), extension)


def test_a_compressed_sdi_yaml_is_never_expanded_beyond_the_limit() -> None:
    """Kilobytes that would expand to 64 MiB are refused as too large after reading just
    over the limit."""
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as bundle:
        bundle.writestr("Dockerfile", b"FROM base\n")
        with bundle.open("sdi.yaml", "w", force_zip64=True) as handle:
            chunk = b"#" * 1024**2
            for _ in range(64):
                handle.write(chunk)
    started = time.monotonic()
    with pytest.raises(SdiRefused) as failed:
        check_sdi_archive(io.BytesIO(bomb.getvalue()), ".zip")
    assert failed.value.code == "archive_too_large"
    assert time.monotonic() - started < 1
