"""The ``docker`` strategy: build with a Docker engine (the ``docker`` SDK, run on a thread:
it blocks) and push with the builder's service account."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, DockerException, ImageNotFound

Log = Callable[[str], None]


class DockerBuildError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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

    async def build_and_push(
        self,
        context: Path,
        repository: str,
        tag: str,
        build_args: dict[str, str],
        platform: str,
        credentials: tuple[str, str],
        secrets: Sequence[str],
        log: Log,
    ) -> str:
        """Build ``context``, push ``repository:tag``; the pushed manifest's digest."""
        loop = asyncio.get_running_loop()

        def log_from_thread(line: str) -> None:
            loop.call_soon_threadsafe(log, line)

        return await asyncio.to_thread(
            self._build_and_push, context, repository, tag, build_args, platform,
            credentials, secrets, log_from_thread,
        )  # fmt: skip

    def _build_and_push(
        self,
        context: Path,
        repository: str,
        tag: str,
        build_args: dict[str, str],
        platform: str,
        credentials: tuple[str, str],
        secrets: Sequence[str],
        log: Log,
    ) -> str:
        client = self._docker()
        reference = f"{repository}:{tag}"
        username, password = credentials
        auth = {"username": username, "password": password}
        registry = repository.split("/", 1)[0]
        try:
            client.login(username=username, password=password, registry=registry, reauth=True)
            for chunk in client.api.build(
                path=str(context), tag=reference, buildargs=build_args or None,
                platform=platform, rm=True, forcerm=True, decode=True, pull=False,
            ):  # fmt: skip
                self._log_chunk(chunk, log)
                if "error" in chunk:
                    raise DockerBuildError("dockerfile_failed", str(chunk["error"]).strip())
            image = client.images.get(reference)
        except BuildError as exc:
            raise DockerBuildError("dockerfile_failed", str(exc)) from exc
        except (APIError, DockerException) as exc:
            raise DockerBuildError("dockerfile_failed", str(exc)) from exc
        try:
            config = str(image.attrs.get("Config") or {})
            if any(secret and secret in config for secret in secrets):
                raise DockerBuildError(
                    "sensitive_value_in_image",
                    "a sensitive variable's value would be in the image config (ENV or LABEL)",
                )
            digest = ""
            for chunk in client.api.push(
                repository, tag=tag, stream=True, decode=True, auth_config=auth
            ):
                self._log_chunk(chunk, log)
                if "error" in chunk:
                    raise DockerBuildError("push_refused", str(chunk["error"]).strip())
                aux = chunk.get("aux") or {}
                digest = str(aux.get("Digest") or digest)
            if not digest:
                raise DockerBuildError("push_refused", "the engine reported no digest for the push")
            return digest
        except (APIError, DockerException) as exc:
            raise DockerBuildError("push_refused", str(exc)) from exc
        finally:
            with contextlib.suppress(ImageNotFound, APIError):
                client.images.remove(reference, noprune=False)

    @staticmethod
    def _log_chunk(chunk: dict[str, Any], log: Log) -> None:
        text = chunk.get("stream") or chunk.get("status")
        if isinstance(text, str) and text.strip():
            log(text.rstrip())
