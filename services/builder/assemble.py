"""The ``assembled`` strategy: an image made without a container engine.

From the base image only the manifest and config are read. Each COPY/ADD becomes a new layer
written here — a tar with sorted entries, fixed times, owners and modes, gzip'd without a
name or time — and every other instruction edits the config, with one history entry each.
So the same context, Dockerfile and base give the same layers, config and manifest digest.
The base layers are mounted into the target repository by the caller, never downloaded.

The image's ``created`` (config and new history entries) is a time of its inputs, not of
the build, so it stays reproducible yet honest: the latest of the time the caller gives (the
SDI package's push time) and the base image's own ``created``, to the second, in UTC. The
files' times in the layers stay at 0: they are the context's, which extraction made.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import gzip
import hashlib
import io
import json
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from services.builder.archives import ArchiveError, safe_relative
from services.builder.dockerfile import (
    Dockerfile,
    Instruction,
    arg_declarations,
    copy_arguments,
    expand,
    key_values,
)
from services.builder.dockerignore import DockerIgnore
from shared.builds.errors import (
    CopySourceMissing,
    CopySourceOutsideContext,
    DockerfileInvalid,
    OnbuildBase,
)
from shared.oci import media_types as mt

EPOCH = "1970-01-01T00:00:00Z"
MAX_TIME_TEXT = 64  # a base's ``created`` longer than this is not a time
DEFAULT_SHELL = ["/bin/sh", "-c"]
GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class BaseImage:
    manifest: dict[str, Any]
    media_type: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LayerFile:
    path: Path
    digest: str  # of the gzip'd bytes
    diff_id: str  # of the tar
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class AssembledImage:
    manifest: bytes
    manifest_media_type: str
    config: bytes
    config_digest: str
    base_layers: tuple[dict[str, Any], ...]
    new_layers: tuple[LayerFile, ...]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()


@dataclass(slots=True)
class _Entry:
    path: str  # inside the image, without a leading "/"
    kind: str  # "dir" | "file" | "symlink"
    mode: int
    uid: int = 0
    gid: int = 0
    source: Path | None = None
    link: str = ""


@dataclass(slots=True)
class _State:
    config: dict[str, Any]
    args: dict[str, str]
    history: list[dict[str, Any]] = field(default_factory=list)
    layers: list[LayerFile] = field(default_factory=list)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    ignore: DockerIgnore = field(default_factory=DockerIgnore)
    created: str = EPOCH

    @property
    def env(self) -> dict[str, str]:
        pairs = (item.partition("=") for item in self.config["config"].get("Env") or [])
        return {key: value for key, _, value in pairs}

    def values(self) -> dict[str, str]:
        return {**self.args, **self.env}


def base_reference(dockerfile: Dockerfile, build_args: dict[str, str]) -> str:
    """The FROM image, with ARGs declared before it expanded."""
    words = expand(_from(dockerfile).arguments, meta_args(dockerfile, build_args)).split()
    return words[0]


def _from(dockerfile: Dockerfile) -> Instruction:
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            return instruction
    raise DockerfileInvalid("the Dockerfile has no FROM")


# Docker lets these build args be used without an ARG, in FROM too.
BUILTIN_ARGS = frozenset(
    {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
     "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
)  # fmt: skip


def meta_args(dockerfile: Dockerfile, build_args: dict[str, str]) -> dict[str, str]:
    """ARGs declared before FROM: usable in FROM, and as defaults of ARGs redeclared after;
    the built-in proxy args too, when the request gives them."""
    values = {name: value for name, value in build_args.items() if name in BUILTIN_ARGS}
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            for name, default in arg_declarations(instruction, values):
                values[name] = build_args.get(name, default or "")
    return values


def assemble(
    dockerfile: Dockerfile,
    context: Path,
    base: BaseImage,
    build_args: dict[str, str],
    scratch: Path,
    *,
    created: dt.datetime | None = None,
) -> AssembledImage:
    """The image of a Dockerfile the assembled strategy can build (see
    ``Dockerfile.assembled_blocker``), layers written under ``scratch``; ``created`` is when
    its newest input was made (the SDI package's push time), None when unknown."""
    if (base.config.get("config") or {}).get("OnBuild"):
        raise OnbuildBase("the base image has ONBUILD triggers")
    docker_family = base.media_type in (mt.DOCKER_MANIFEST,)
    config = copy.deepcopy(base.config)
    config.setdefault("config", {})
    config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    config.setdefault("history", [])
    config["created"] = image_created(created, base.config.get("created"))
    state = _State(config, {}, ignore=DockerIgnore.load(context), created=config["created"])
    meta = meta_args(dockerfile, build_args)
    seen_from = False
    for instruction in dockerfile.instructions:
        if instruction.keyword == "FROM":
            seen_from = True
        elif not seen_from:
            continue  # ARGs before FROM only feed FROM and later declarations
        elif instruction.keyword == "ARG":
            for name, default in arg_declarations(instruction, state.values()):
                if name in build_args:
                    state.args[name] = build_args[name]
                else:
                    state.args[name] = default if default is not None else meta.get(name, "")
            state.history.append(
                _history(f"ARG {instruction.arguments}", empty=True, created=state.created)
            )
        else:
            _apply(instruction, state, context, scratch, docker_family)

    config["history"] = list(config["history"]) + state.history
    config["rootfs"]["diff_ids"] = list(config["rootfs"].get("diff_ids", [])) + [
        layer.diff_id for layer in state.layers
    ]
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    base_layers = tuple(base.manifest.get("layers") or [])
    manifest_type = mt.DOCKER_MANIFEST if docker_family else mt.OCI_MANIFEST
    config_type = mt.DOCKER_CONFIG if docker_family else mt.OCI_CONFIG
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": config_digest, "size": len(config_bytes)},
        "layers": [
            *base_layers,
            *(
                {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
                for layer in state.layers
            ),
        ],
    }
    return AssembledImage(
        manifest=json.dumps(manifest, separators=(",", ":")).encode(),
        manifest_media_type=manifest_type,
        config=config_bytes,
        config_digest=config_digest,
        base_layers=base_layers,
        new_layers=tuple(state.layers),
    )


def image_created(given: dt.datetime | None, base_created: Any) -> str:
    """The latest of ``given`` and the base's ``created`` (when it reads as a time), as
    RFC 3339 in UTC to the second; EPOCH when neither is known."""
    times = [_utc(given)] if given is not None else []
    if isinstance(base_created, str) and len(base_created) <= MAX_TIME_TEXT:
        # not a time (or none a year can hold in UTC): the base's own business
        with contextlib.suppress(ValueError, OverflowError):
            times.append(_utc(dt.datetime.fromisoformat(base_created)))
    if not times:
        return EPOCH
    return max(times).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC (a time without a zone taken as UTC), without its fraction."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).replace(microsecond=0)


def _history(created_by: str, *, empty: bool, created: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "created": created,
        "created_by": created_by,
        "comment": "spacedock",
    }
    if empty:
        entry["empty_layer"] = True
    return entry


def _apply(
    instruction: Instruction, state: _State, context: Path, scratch: Path, docker_family: bool
) -> None:
    settings = state.config["config"]
    keyword, values = instruction.keyword, state.values()
    created_by = f"{keyword} {instruction.arguments}".strip()
    if keyword in ("COPY", "ADD"):
        entries = _copy_entries(instruction, state, context)
        media_type = mt.DOCKER_LAYER if docker_family else mt.OCI_LAYER
        state.layers.append(_write_layer(entries, scratch, len(state.layers), media_type))
        state.history.append(_history(created_by, empty=False, created=state.created))
        return
    if keyword == "WORKDIR":
        path = expand(instruction.arguments, values)
        current = settings.get("WorkingDir") or "/"
        workdir = posixpath.normpath(path if path.startswith("/") else f"{current}/{path}")
        settings["WorkingDir"] = workdir
        # The directory may be missing from the base: create it, as Docker does. Its parents
        # are left out of the layer, so existing ones keep their owners and modes.
        directories = {}
        if workdir != "/":
            directories[workdir.strip("/")] = _Entry(workdir.strip("/"), "dir", 0o755)
        media_type = mt.DOCKER_LAYER if docker_family else mt.OCI_LAYER
        state.layers.append(
            _write_layer(list(directories.values()), scratch, len(state.layers), media_type)
        )
        state.history.append(_history(created_by, empty=False, created=state.created))
        return
    if keyword == "ENV":
        env = state.env
        for key, value in key_values(instruction, values):
            env[key] = value
        settings["Env"] = [f"{key}={value}" for key, value in env.items()]
    elif keyword == "LABEL":
        labels = dict(settings.get("Labels") or {})
        labels.update(key_values(instruction, values))
        settings["Labels"] = labels
    elif keyword == "MAINTAINER":
        state.config["author"] = instruction.arguments
    elif keyword == "USER":
        settings["User"] = expand(instruction.arguments, values)
    elif keyword == "EXPOSE":
        ports = dict(settings.get("ExposedPorts") or {})
        for port in expand(instruction.arguments, values).split():
            ports[port if "/" in port else f"{port}/tcp"] = {}
        settings["ExposedPorts"] = ports
    elif keyword in ("CMD", "ENTRYPOINT"):
        command = _command(instruction, state.shell)
        if keyword == "ENTRYPOINT":
            settings["Entrypoint"] = command
            if not any(h.get("created_by", "").startswith("CMD") for h in state.history):
                settings["Cmd"] = None  # an inherited CMD does not survive a new ENTRYPOINT
        else:
            settings["Cmd"] = command
    elif keyword == "VOLUME":
        listed = instruction.json_list() or expand(instruction.arguments, values).split()
        volumes = dict(settings.get("Volumes") or {})
        volumes.update({volume: {} for volume in listed})
        settings["Volumes"] = volumes
    elif keyword == "STOPSIGNAL":
        settings["StopSignal"] = expand(instruction.arguments, values)
    elif keyword == "SHELL":
        shell = instruction.json_list()
        if not shell:
            raise DockerfileInvalid(f"SHELL on line {instruction.line} needs a JSON array")
        state.shell = shell
        settings["Shell"] = shell
    elif keyword == "HEALTHCHECK":
        settings["Healthcheck"] = _healthcheck(instruction, state.shell)
    state.history.append(_history(created_by, empty=True, created=state.created))


def _command(instruction: Instruction, shell: list[str]) -> list[str] | None:
    listed = instruction.json_list()
    if listed is not None:
        return listed
    if not instruction.arguments:
        return None
    return [*shell, instruction.arguments]


def _healthcheck(instruction: Instruction, shell: list[str]) -> dict[str, Any]:
    if instruction.arguments.strip().upper() == "NONE":
        return {"Test": ["NONE"]}
    keyword, _, rest = instruction.arguments.partition(" ")
    if keyword.upper() != "CMD":
        raise DockerfileInvalid(f"HEALTHCHECK on line {instruction.line}: expected CMD or NONE")
    check = Instruction("CMD", rest.strip(), instruction.line)
    listed = check.json_list()
    test = ["CMD", *listed] if listed is not None else ["CMD-SHELL", rest.strip()]
    result: dict[str, Any] = {"Test": test}
    durations = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod"}
    for flag, value in instruction.flags.items():
        if flag in durations:
            result[durations[flag]] = _nanoseconds(value)
        elif flag == "retries":
            result["Retries"] = int(value)
    return result


def _nanoseconds(text: str) -> int:
    units = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return int(float(text[: -len(unit)]) * units[unit])
    raise DockerfileInvalid(f"cannot read the duration {text!r}")


# --- layers --------------------------------------------------------------------------------


def _owner(instruction: Instruction) -> tuple[int, int]:
    chown = instruction.flags.get("chown")
    if not chown:
        return 0, 0
    user, _, group = chown.partition(":")
    uid = 0 if user == "root" else int(user)
    gid = uid if not group else (0 if group == "root" else int(group))
    return uid, gid


def _copy_entries(instruction: Instruction, state: _State, context: Path) -> list[_Entry]:
    sources, destination = copy_arguments(instruction)
    values = state.values()
    destination = expand(destination, values)
    workdir = state.config["config"].get("WorkingDir") or "/"
    joined = destination if destination.startswith("/") else f"{workdir}/{destination}"
    absolute = posixpath.normpath(joined)
    into_directory = destination.endswith(("/", "/.")) or destination == "." or len(sources) > 1
    uid, gid = _owner(instruction)
    chmod = instruction.flags.get("chmod")
    mode_override = int(chmod, 8) if chmod else None
    entries: dict[str, _Entry] = {}
    matched_any = False
    for pattern in sources:
        try:
            relative = safe_relative(expand(pattern, values), what="COPY source")
        except ArchiveError as exc:
            raise CopySourceOutsideContext(str(exc)) from exc
        matches = [
            match
            for match in (sorted(context.glob(relative)) if relative else [context])
            if _within(context, match) and not state.ignore.excluded(_relative(context, match))
        ]
        if not matches:
            raise CopySourceMissing(f"line {instruction.line}: nothing matches {pattern!r}")
        for source in matches:
            matched_any = True
            is_dir = source.is_dir() and not source.is_symlink()
            if is_dir or into_directory or len(matches) > 1:
                target_root = (
                    absolute.rstrip("/") if is_dir else f"{absolute.rstrip('/')}/{source.name}"
                )
            else:
                target_root = absolute
            target_root = target_root.strip("/")
            for entry in _walk(source, target_root, uid, gid, mode_override):
                if entry.source is None or not state.ignore.excluded(
                    _relative(context, entry.source)
                ):
                    entries[entry.path] = entry
    if not matched_any:
        raise CopySourceMissing(f"line {instruction.line}: no sources")
    return list(entries.values())


def _within(context: Path, path: Path) -> bool:
    """Whether ``path`` (its links followed) stays in the context."""
    root = context.resolve()
    real = path.resolve()
    return real == root or root in real.parents


def _relative(context: Path, path: Path) -> str:
    return path.relative_to(context).as_posix() if path != context else ""


def _walk(source: Path, target: str, uid: int, gid: int, mode: int | None) -> Iterator[_Entry]:
    info = source.lstat()
    if stat.S_ISLNK(info.st_mode):
        yield _Entry(target, "symlink", 0o777, uid, gid, source, link=str(source.readlink()))
    elif stat.S_ISDIR(info.st_mode):
        if target:
            yield _Entry(target, "dir", mode or 0o755, uid, gid, source)
        for child in sorted(source.iterdir(), key=lambda p: p.name):
            yield from _walk(child, f"{target}/{child.name}".strip("/"), uid, gid, mode)
    elif stat.S_ISREG(info.st_mode):
        executable = info.st_mode & 0o111
        yield _Entry(target, "file", mode or (0o755 if executable else 0o644), uid, gid, source)


class _HashingWriter(io.RawIOBase):
    """Writes through to ``target`` while hashing and counting."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.hash.update(view)
        self.target.write(view)
        self.size += len(view)
        return len(view)


def _write_layer(entries: list[_Entry], scratch: Path, index: int, media_type: str) -> LayerFile:
    """Entries only for what the instruction copies: folders above the destination are not
    listed, so the base's (``/tmp`` at 1777, a user's home) keep their owners and modes; a
    runtime creates missing ones."""
    listed = {entry.path: entry for entry in entries}
    scratch.mkdir(parents=True, exist_ok=True)
    path = scratch / f"layer-{index}.tar.gz"
    with path.open("wb") as out:
        compressed = _HashingWriter(out)
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=compressed, compresslevel=GZIP_LEVEL, mtime=0
        ) as zipped:
            uncompressed = _HashingWriter(zipped)  # type: ignore[arg-type]
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name in sorted(listed):
                    _add(tar, listed[name])
    return LayerFile(
        path=path,
        digest="sha256:" + compressed.hash.hexdigest(),
        diff_id="sha256:" + uncompressed.hash.hexdigest(),
        size=compressed.size,
        media_type=media_type,
    )


def _add(tar: tarfile.TarFile, entry: _Entry) -> None:
    info = tarfile.TarInfo(entry.path + ("/" if entry.kind == "dir" else ""))
    info.mtime = 0
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif entry.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.linkname = entry.link
        tar.addfile(info)
    else:
        assert entry.source is not None
        info.size = entry.source.stat().st_size
        with entry.source.open("rb") as handle:
            tar.addfile(info, handle)
