"""``spacedock package``: package files in a space's feed, up and down, with progress."""

from __future__ import annotations

import argparse
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from spacedock.verbs.client import path
from spacedock.verbs.command import Commands, Session, add_group, add_verb
from spacedock.verbs.outcomes import ApiFailed, UsageError, VerbFailed
from spacedock.verbs.progress import Transfer

STDOUT = "-"


def register(commands: Commands) -> None:
    package = add_group(commands, "package", "packages in a space's feed")
    push = add_verb(package, "push", _push, "upload a package file")
    push.add_argument("space", help="the space id, e.g. spaces-1")
    push.add_argument(
        "file", help="a file named <id>.<version>.<zip|tar.gz|tgz>, e.g. mywebapp.1.2.0.zip"
    )
    push.add_argument("--replace", action="store_true", help="replace an existing version")
    versions = add_verb(package, "versions", _versions, "a package's versions, newest first")
    versions.add_argument("space", help="the space id, e.g. spaces-1")
    versions.add_argument("id", help="the package id, e.g. mywebapp")
    versions.add_argument(
        "--no-prerelease", action="store_true", help="leave out versions such as 1.2.0-beta"
    )
    download = add_verb(package, "download", _download, "download a package file")
    download.add_argument("space", help="the space id, e.g. spaces-1")
    download.add_argument("id", help="the package id, e.g. mywebapp")
    download.add_argument("version", help="e.g. 1.2.0")
    download.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write it: a file, a directory, or - for stdout (default: the "
        "package's file name in the current directory)",
    )


def _push(session: Session, args: argparse.Namespace) -> Any:
    file = Path(args.file)
    if not file.is_file():
        raise UsageError(f"{file} is not a file")
    query = {"replace": "true"} if args.replace else {}
    with Transfer(
        session.stderr,
        live=session.stderr_is_terminal,
        doing=f"pushing {file.name}",
        done_verb=f"pushed {file.name}",
        total=file.stat().st_size,
    ) as transfer:
        try:
            return session.api.upload(
                path("spaces", args.space, "packages"), file, query, transfer.advance
            )
        except ApiFailed as exc:
            if exc.status == 409 and not args.replace:
                raise _already_there(exc) from exc
            raise


def _already_there(exc: ApiFailed) -> VerbFailed:
    """The server tells an API caller about its query parameter; a CLI user has --replace."""
    what = exc.server_message.partition(";")[0].rstrip(".")
    return VerbFailed(f"{exc.status} {exc.code}: {what}; add --replace to replace it")


def _versions(session: Session, args: argparse.Namespace) -> Any:
    query = {"prerelease": "false"} if args.no_prerelease else {}
    return session.api.call(
        "GET", path("spaces", args.space, "packages", args.id, "versions"), query=query
    )


def _download(session: Session, args: argparse.Namespace) -> Any:
    where = path("spaces", args.space, "packages", args.id, args.version)
    with session.api.download(where) as download:
        if args.output == STDOUT:
            sink = session.stdout.buffer
            for chunk in download.chunks:
                sink.write(chunk)
            sink.flush()
            return None
        name = _local_name(download.filename) or f"{args.id}.{args.version}"
        target = _target(args.output, name)
        with Transfer(
            session.stderr,
            live=session.stderr_is_terminal,
            doing=f"downloading {target.name}",
            done_verb=f"downloaded {target}",
            total=download.length,
        ) as transfer:
            size = _write_whole(target, download.chunks, transfer)
    return {"id": args.id, "version": args.version, "file": str(target), "size": size}


def _target(output: str | None, name: str) -> Path:
    """Where the download goes: ``-o``'s file, or ``name`` in ``-o``'s directory (one that
    ends in a separator must be one) or in the current directory."""
    if output is None:
        return Path(name)
    if Path(output).is_dir():
        return Path(output) / name
    if output.endswith(("/", os.sep)):
        raise UsageError(f"{output} is not a directory")
    return Path(output)


def _local_name(offered: str | None) -> str | None:
    """The server's file name, when it is a plain name: it never picks the directory."""
    if not offered or Path(offered).name != offered or offered in (".", "..") or "\0" in offered:
        return None
    return offered


def _write_whole(target: Path, chunks: Iterator[bytes], transfer: Transfer) -> int:
    """Write beside ``target`` and rename: a download cut short leaves no partial file. The
    file is made as any other (the umask's mode), not as a private temporary file."""
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        handle = partial.open("xb")
    except OSError as exc:
        raise UsageError(f"cannot write in {target.parent}: {exc.strerror}") from exc
    size = 0
    try:
        with handle:
            for chunk in chunks:
                handle.write(chunk)
                size += len(chunk)
                transfer.advance(len(chunk))
        partial.replace(target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(exc, OSError):  # the network's are Unreachable by now: this is the disk
            raise VerbFailed(f"cannot write {target}: {exc.strerror or exc}") from exc
        raise
    return size
