"""The bytes the bench pushes, prepared (and hashed) before any clock starts."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.bench.errors import BenchError

MIB = 1024 * 1024
WRITE_PIECE_BYTES = 8 * MIB
# Payload files (1 GiB) plus what each registry stores (512 MiB + 8 x 64 MiB + 2 GiB), with room
# for upload staging: the work directory must have this much free space.
WORKSPACE_BYTES = 9 * 1024 * MIB
# tmpfs keeps the disk out of the figures: the bench compares registries, not block devices.
PREFERRED_BASES = (Path("/dev/shm"), Path(tempfile.gettempdir()))
BASE_DIR_ENV = "SPACEDOCK_BENCH_DIR"


@dataclass(frozen=True, slots=True)
class Payload:
    """A blob held in a file, sent as it is."""

    path: Path
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class RepeatedPayload:
    """A blob made of ``repeats`` copies of one file, streamed so it never needs its own file."""

    pattern: Path
    repeats: int
    size: int
    digest: str


@dataclass(frozen=True, slots=True)
class Payloads:
    single: Payload
    parallel: list[Payload]
    huge: RepeatedPayload


def prepare(directory: Path) -> Payloads:
    """One 512 MiB blob, eight 64 MiB blobs, and a 2 GiB blob of 32 copies of the first 64."""
    directory.mkdir(parents=True, exist_ok=True)
    single = random_file(directory / "single.bin", 512 * MIB)
    parallel = [random_file(directory / f"parallel-{i}.bin", 64 * MIB) for i in range(8)]
    return Payloads(single, parallel, repeated(parallel[0], 32))


def random_file(path: Path, size: int) -> Payload:
    """Incompressible bytes, so no layer between client and disk can shortcut them."""
    hasher = hashlib.sha256()
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            piece = os.urandom(min(WRITE_PIECE_BYTES, remaining))
            hasher.update(piece)
            handle.write(piece)
            remaining -= len(piece)
    return Payload(path, size, "sha256:" + hasher.hexdigest())


def repeated(pattern: Payload, repeats: int) -> RepeatedPayload:
    content = pattern.path.read_bytes()
    hasher = hashlib.sha256()
    for _ in range(repeats):
        hasher.update(content)
    return RepeatedPayload(
        pattern.path, repeats, pattern.size * repeats, "sha256:" + hasher.hexdigest()
    )


def prefault(directory: Path, size: int = WORKSPACE_BYTES) -> None:
    """Have the memory behind a tmpfs work directory touched once before any clock starts.

    Where the host backs a VM's memory lazily, the first write to a page costs several times a
    later one (on the reference box dd writes 2.2 GB/s to /dev/shm on reused pages and 0.3-0.5
    GB/s on fresh ones): without this, whichever registry first writes into fresh pages looks
    the slower. On a disk, fallocate only reserves blocks and costs nothing.
    """
    path = directory / "prefault"
    try:
        with path.open("wb") as handle:
            os.posix_fallocate(handle.fileno(), 0, size)
    except OSError:
        pass  # not supported here (or no room): the figures are merely noisier
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A private directory for payloads and registry storage, removed whatever happens."""
    with tempfile.TemporaryDirectory(
        prefix="spacedock-bench-", dir=_base_dir(), ignore_cleanup_errors=True
    ) as name:
        yield Path(name)


def _base_dir() -> Path:
    override = os.environ.get(BASE_DIR_ENV)
    candidates = (Path(override),) if override else PREFERRED_BASES
    for base in candidates:
        if base.is_dir() and shutil.disk_usage(base).free >= WORKSPACE_BYTES:
            return base
    needed = WORKSPACE_BYTES // MIB
    raise BenchError(
        f"no directory among {', '.join(map(str, candidates))} has {needed} MiB free"
        f" (set {BASE_DIR_ENV} to one that does)"
    )
