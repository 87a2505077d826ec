"""The ``docker`` strategy: build with a Docker engine (the ``docker`` SDK, run on a thread:
it blocks) and push with the builder's service account."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, DockerException, ImageNotFound

from services.builder.redaction import holds_secret

Log = Callable[[str], None]


class DockerBuildError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DockerJob:
    """What to build (``context``) and where to push it, as whom."""

    context: Path
    repository: str  # with the registry's host, as the engine reaches it
    tag: str
    build_args: dict[str, str]
    platform: str
    credentials: tuple[str, str]
    secrets: Sequence[str] = field(repr=False)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


class DockerEngine:
    def __init__(self, base_url: str | None = None) -> None:
        self._base_url = base_url
        self._client: docker.DockerClient | None = None

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = (
                    docker.DockerClient(base_url=self._base_url)
                    if self._base_url
                    else docker.from_env()
                )
            except DockerException as exc:
                raise DockerBuildError("docker_unavailable", f"no Docker engine: {exc}") from exc
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
                raise DockerBuildError("cancelled", "the build was stopped before its push")
            history = client.api.history(job.reference)
            if holds_secret([image.attrs.get("Config"), history], job.secrets):
                raise DockerBuildError(
                    "sensitive_value_in_image",
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
        username, password = job.credentials
        try:
            # The base image may be in the registry: the engine pulls it as the builder.
            registry = job.repository.split("/", 1)[0]
            client.login(username=username, password=password, registry=registry, reauth=True)
            for chunk in client.api.build(
                path=str(job.context), tag=job.reference, buildargs=job.build_args or None,
                platform=job.platform, rm=True, forcerm=True, decode=True, pull=False,
            ):  # fmt: skip
                self._log_chunk(chunk, log)
                if "error" in chunk:
                    raise DockerBuildError("dockerfile_failed", str(chunk["error"]).strip())
                if stop.is_set():
                    raise DockerBuildError("cancelled", "the build was stopped")
            return client.images.get(job.reference)
        except (BuildError, APIError, DockerException) as exc:
            raise DockerBuildError("dockerfile_failed", str(exc)) from exc

    def _push(self, client: docker.DockerClient, job: DockerJob, log: Log) -> str:
        auth = {"username": job.credentials[0], "password": job.credentials[1]}
        digest = ""
        try:
            for chunk in client.api.push(
                job.repository, tag=job.tag, stream=True, decode=True, auth_config=auth
            ):
                self._log_chunk(chunk, log)
                if "error" in chunk:
                    raise DockerBuildError("push_refused", str(chunk["error"]).strip())
                aux = chunk.get("aux") or {}
                digest = str(aux.get("Digest") or digest)
        except (APIError, DockerException) as exc:
            raise DockerBuildError("push_refused", str(exc)) from exc
        if not digest:
            raise DockerBuildError("push_refused", "the engine reported no digest for the push")
        return digest

    @staticmethod
    def _log_chunk(chunk: dict[str, Any], log: Log) -> None:
        text = chunk.get("stream") or chunk.get("status")
        if isinstance(text, str) and text.strip():
            log(text.rstrip())
