"""The ``docker`` strategy: build with a Docker engine (the ``docker`` SDK, run on a thread:
it blocks) and push, with the build's own credential.

Each build sends its credential with its own requests (``X-Registry-Config`` on the build,
``X-Registry-Auth`` on the push): nothing is logged in on the shared engine or read from the
machine's Docker config, so concurrent builds of different spaces never see each other's
authority. The engine pulls every base again (``pull``), so an image it holds from another
space's build is only used when this build's credential may read it. ``RUN`` steps have no
network and run under memory, CPU and process limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import structlog
from docker import auth
from docker.errors import APIError, BuildError, DockerException, ImageNotFound

from services.builder.cgroups import ProcessLimits
from services.builder.redaction import holds_secret
from shared.builds.errors import (
    Cancelled,
    DockerfileFailed,
    DockerUnavailable,
    PushRefused,
    SensitiveValueInImage,
)

Log = Callable[[str], None]
logger = structlog.get_logger("spacedock.builder")


@dataclass(frozen=True, slots=True)
class DockerLimits:
    """What one build's ``RUN`` steps may use."""

    memory_bytes: int = 2 * 1024**3
    cpus: float = 1.0
    # A cgroup's pids.max where the engine allows one (see cgroups.py), and RLIMIT_NPROC,
    # which binds the steps that run as another user than root.
    processes: int = 4096


@dataclass(frozen=True, slots=True)
class DockerJob:
    """What to build (``context``) and where to push it, as whom."""

    context: Path
    repository: str  # with the registry's host, as the engine reaches it
    tag: str
    build_args: dict[str, str]
    platform: str
    credentials: tuple[str, str] = field(repr=False)
    secrets: Sequence[str] = field(repr=False)
    # Every host the engine may reach this registry by (its credential is sent for each).
    registry_hosts: tuple[str, ...] = ()
    limits: DockerLimits = field(default_factory=DockerLimits)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


class DockerEngine:
    def __init__(
        self, base_url: str | None = None, cgroup_parent: str | None = "spacedock-builds"
    ) -> None:
        self._base_url = base_url
        self._client: docker.DockerClient | None = None
        self._cgroups = ProcessLimits(cgroup_parent) if cgroup_parent else None
        self._cgroups_usable: bool | None = None
        self._stale_cgroups: set[str] = set()
        self._warned = False

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = (
                    docker.DockerClient(base_url=self._base_url)
                    if self._base_url
                    else docker.from_env()
                )
            except DockerException as exc:
                raise DockerUnavailable(f"no Docker engine: {exc}") from exc
        return self._client

    async def build_and_push(self, job: DockerJob, log: Log) -> str:
        """Build the job's context, push it; the pushed manifest's digest."""
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def log_from_thread(line: str) -> None:
            loop.call_soon_threadsafe(log, line)

        try:
            return await asyncio.to_thread(self._build_and_push, job, log_from_thread, stop)
        except asyncio.CancelledError:
            # The engine cannot be interrupted mid-step; the build ends there and is never
            # pushed.
            stop.set()
            raise

    def _build_and_push(self, job: DockerJob, log: Log, stop: threading.Event) -> str:
        client = self._docker()
        try:
            image = self._build(client, job, log, stop)
            if stop.is_set():
                raise Cancelled("the build was stopped before its push")
            history = client.api.history(job.reference)
            if holds_secret([image.attrs.get("Config"), history], job.secrets):
                raise SensitiveValueInImage(
                    "a sensitive variable's value would be in the image config or history "
                    "(ENV, LABEL, a RUN line)",
                )
            return self._push(client, job, log)
        finally:  # whatever happened, the engine keeps no copy of a per-deployment image
            with contextlib.suppress(ImageNotFound, APIError):
                client.images.remove(job.reference, noprune=False)

    def _build(
        self, client: docker.DockerClient, job: DockerJob, log: Log, stop: threading.Event
    ) -> Any:
        lines = _Lines(log)
        name = f"build-{uuid.uuid4().hex}"
        cgroup = self._process_cgroup(client, name, job.limits.processes)
        try:
            for chunk in self._build_stream(client, job, cgroup):
                lines.add(chunk.get("stream"))
                if "error" in chunk:
                    raise DockerfileFailed(str(chunk["error"]).strip())
                if stop.is_set():
                    raise Cancelled("the build was stopped")
            return client.images.get(job.reference)
        except (BuildError, APIError, DockerException) as exc:
            raise DockerfileFailed(str(exc)) from exc
        finally:
            lines.flush()
            if cgroup is not None:
                self._release_cgroup(name)

    def _process_cgroup(self, client: docker.DockerClient, name: str, processes: int) -> str | None:
        """A cgroup of the build's own, holding ``processes`` tasks at most, when the engine
        is local and uses the ``cgroupfs`` driver (else ``RLIMIT_NPROC`` alone applies, which
        does not bind root: said once in the log)."""
        if self._cgroups is None:
            return None
        if self._cgroups_usable is None:
            try:
                driver = client.info().get("CgroupDriver")
            except (APIError, DockerException):
                return None  # asked again next time
            local = str(client.api.base_url).startswith(("http+docker://localhost", "unix"))
            self._cgroups_usable = driver == "cgroupfs" and local
            if self._cgroups_usable:
                self._cgroups.sweep(older_than=3600)
        cgroup = None
        if self._cgroups_usable:
            for stale in list(self._stale_cgroups):  # steps that were still ending last time
                if self._cgroups.remove(stale):
                    self._stale_cgroups.discard(stale)
            cgroup = self._cgroups.create(name, processes)
        if cgroup is None and not self._warned:
            self._warned = True
            logger.warning(
                "build_process_limit_unavailable",
                reason="no cgroup of its own for a build (a remote engine, another cgroup "
                "driver, or a cgroup filesystem this builder cannot write): RUN steps as root "
                "have no process limit",
            )
        return cgroup

    def _release_cgroup(self, name: str) -> None:
        if self._cgroups is not None and not self._cgroups.remove(name):
            self._stale_cgroups.add(name)

    @staticmethod
    def _build_stream(client: docker.DockerClient, job: DockerJob, cgroup: str | None) -> Any:
        """The engine's build, asked for directly: the SDK's ``build`` would send every
        credential the client or the machine's Docker config holds, and has no way to say
        CPU quota or process limits."""
        api = client.api
        username, password = job.credentials
        hosts = job.registry_hosts or (job.repository.split("/", 1)[0],)
        registries = {host: {"username": username, "password": password} for host in hosts}
        limits = job.limits
        params: dict[str, Any] = {
            "t": job.reference,
            "pull": True,
            # The engine's layer cache is shared by every space: a step cached from another
            # space's build would hand over what that build made (keys, tokens) and reuse it.
            "nocache": True,
            "rm": True,
            "forcerm": True,
            "networkmode": "none",
            "platform": job.platform,
            "memory": limits.memory_bytes,
            "memswap": limits.memory_bytes,  # no swap beyond the memory limit
            "cpuperiod": 100_000,
            "cpuquota": int(limits.cpus * 100_000),
            "ulimits": json.dumps(
                [{"Name": "nproc", "Soft": limits.processes, "Hard": limits.processes}]
            ),
        }
        if cgroup is not None:
            params["cgroupparent"] = cgroup
        if job.build_args:
            params["buildargs"] = json.dumps(job.build_args)
        context = docker.utils.tar(str(job.context), exclude=_dockerignore(job.context))
        headers = {
            "Content-Type": "application/tar",
            "X-Registry-Config": auth.encode_header(registries),
        }
        response = api.post(
            api._url("/build"), params=params, data=context, headers=headers, stream=True,
            timeout=None,
        )  # fmt: skip
        try:
            api._raise_for_status(response)
            yield from api._stream_helper(response, decode=True)
        finally:
            response.close()
            context.close()

    def _push(self, client: docker.DockerClient, job: DockerJob, log: Log) -> str:
        credential = {"username": job.credentials[0], "password": job.credentials[1]}
        digest = ""
        try:
            for chunk in client.api.push(
                job.repository, tag=job.tag, stream=True, decode=True, auth_config=credential
            ):
                self._log_chunk(chunk, log)
                if "error" in chunk:
                    raise PushRefused(str(chunk["error"]).strip())
                aux = chunk.get("aux") or {}
                digest = str(aux.get("Digest") or digest)
        except (APIError, DockerException) as exc:
            raise PushRefused(str(exc)) from exc
        if not digest:
            raise PushRefused("the engine reported no digest for the push")
        return digest

    @staticmethod
    def _log_chunk(chunk: dict[str, Any], log: Log) -> None:
        text = chunk.get("stream") or chunk.get("status")
        if isinstance(text, str) and text.strip():
            log(text.rstrip())


class _Lines:
    """A RUN step's output, logged a whole line at a time: the engine sends it in pieces as
    they are written, and a sensitive value cut between two pieces would escape masking."""

    LIMIT = 64 * 1024  # a line longer than this is logged in pieces all the same

    def __init__(self, log: Log) -> None:
        self._log = log
        self._pending = ""

    def add(self, text: object) -> None:
        if not isinstance(text, str):
            return
        self._pending += text
        *complete, self._pending = self._pending.split("\n")
        for line in complete:
            self._emit(line)
        if len(self._pending) > self.LIMIT:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, ""
        self._emit(pending)

    def _emit(self, line: str) -> None:
        if line.strip():
            self._log(line.rstrip())


def _dockerignore(context: Path) -> list[str] | None:
    """The patterns of ``.dockerignore`` when it is a regular file of the context."""
    path = context / ".dockerignore"
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        text = path.read_text(errors="replace")
    except OSError:
        return None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
