"""One build, from request to pushed image: fetch the SDI and its packages from the feed,
extract them safely, run the configuration features, then build with the ``assembled``
strategy when the Dockerfile allows it and the ``docker`` strategy otherwise."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.builder.archives import ArchiveError, extract
from services.builder.assemble import AssembleError, BaseImage, assemble, base_reference
from services.builder.docker_engine import DockerBuildError, DockerEngine, DockerJob
from services.builder.dockerfile import DockerfileError, parse_dockerfile
from services.builder.features.pipeline import run_features
from services.builder.features.variables import VariableSet, system_variables
from services.builder.isolation import IsolatedFailure, run_isolated
from services.builder.redaction import holds_secret
from services.builder.registry_client import Manifest, RegistryClient, RegistryRefused
from services.builder.sdi import SdiInvalid, parse_sdi
from shared.build_requests import BuildRequest
from shared.oci import media_types as mt
from shared.versions import try_parse_version

Log = Callable[[str], None]


class BuildFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    image: str  # <host>/<repository>:<tag>
    digest: str
    strategy: str


@dataclass(frozen=True, slots=True)
class BuildEnvironment:
    client: RegistryClient
    public_host: str
    registry_host: str
    docker: DockerEngine | None
    credentials: tuple[str, str]


async def run_build(
    request: BuildRequest, workspace: Path, env: BuildEnvironment, log: Log
) -> BuildOutcome:
    variables = _variables(request)
    context = workspace / "context"
    await _fetch_and_extract(
        env.client, request, request.sdi_id, request.sdi_version, context, workspace, log
    )
    sdi_file = context / "sdi.yaml"
    try:
        spec = parse_sdi(sdi_file.read_text() if sdi_file.is_file() else None)
    except (SdiInvalid, UnicodeDecodeError) as exc:
        raise BuildFailed("sdi_invalid", str(exc)) from exc
    for package in spec.packages:
        version = request.packages.get(package.id) or package.version
        await _fetch_and_extract(
            env.client, request, package.id, version, context / package.extract_to, workspace, log
        )
    # The features run the SDI's own expressions: in a child process that the time limit and
    # cancellation can stop (a thread could not be).
    try:
        outcome, code, message, changed, lines = await run_isolated(
            run_features,
            context,
            spec.features,
            variables,
            _text(request.deployment.get("environment")),
            _text(request.deployment.get("tenant")),
        )
    except IsolatedFailure as exc:
        raise BuildFailed("features_failed", str(exc)) from exc
    for line in lines:
        log(line)
    if outcome != "ok":
        raise BuildFailed(code, message)
    log(f"configuration features changed {len(changed)} file(s)")

    dockerfile_path = context / "Dockerfile"
    if not dockerfile_path.is_file():
        raise BuildFailed("dockerfile_missing", "the SDI has no Dockerfile at its root")
    try:
        dockerfile = parse_dockerfile(dockerfile_path.read_text())
        base = base_reference(dockerfile, request.build_args)
    except (DockerfileError, UnicodeDecodeError) as exc:
        raise BuildFailed("dockerfile_invalid", str(exc)) from exc
    blocker = dockerfile.assembled_blocker()
    base_repository = await _own_repository(base, env)
    if blocker is None and base_repository is None:
        blocker = f"the base image {base} is not in this registry"
    if request.strategy == "assembled" and blocker is not None:
        raise BuildFailed(
            "strategy_unavailable", f"the assembled strategy cannot build this: {blocker}"
        )
    if request.strategy == "docker" and blocker is None:
        blocker = "the request asks for the docker strategy"
    target = f"{request.space}/{request.repository}"
    if blocker is None:
        assert base_repository is not None
        log(f"strategy: assembled (base {base_repository.repository}:{base_repository.reference})")
        digest = await _assembled(
            request, context, workspace, dockerfile, base_repository, env, variables, log
        )
        strategy = "assembled"
    else:
        log(f"strategy: docker ({blocker})")
        if env.docker is None:
            raise BuildFailed("docker_unavailable", f"this build needs a Docker engine: {blocker}")
        try:
            job = DockerJob(
                context=context,
                repository=f"{env.registry_host}/{target}",
                tag=request.tag,
                build_args=request.build_args,
                platform=request.platform,
                credentials=env.credentials,
                secrets=variables.secrets(),
            )
            digest = await env.docker.build_and_push(job, log)
        except DockerBuildError as exc:
            raise BuildFailed(exc.code, str(exc)) from exc
        strategy = "docker"
    return BuildOutcome(f"{env.public_host}/{target}:{request.tag}", digest, strategy)


def _variables(request: BuildRequest) -> VariableSet:
    variables = VariableSet(request.variables, request.sensitive_variables)
    for name, value in system_variables(request.deployment, request.space).items():
        variables.set(name, value)
    return variables


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


async def _fetch_and_extract(
    client: RegistryClient,
    request: BuildRequest,
    package_id: str,
    version: str | None,
    destination: Path,
    workspace: Path,
    log: Log,
) -> None:
    try:
        if version is None:
            version = await _newest(client, request.space, package_id)
        archive = workspace / f"{package_id}.{version}.archive"
        await client.download_package(request.space, package_id, version, archive)
    except RegistryRefused as exc:
        if exc.status == 404:
            raise BuildFailed(
                "package_missing", f"package {package_id} {version or ''} is not in {request.space}"
            ) from exc
        raise BuildFailed("registry_error", f"fetching {package_id}: {exc}") from exc
    log(f"fetched {package_id} {version}")
    try:
        written = await asyncio.to_thread(extract, archive, destination)
    except ArchiveError as exc:
        raise BuildFailed(exc.code, f"{package_id} {version}: {exc}") from exc
    finally:
        archive.unlink(missing_ok=True)
    log(f"extracted {len(written)} file(s) of {package_id} {version}")


async def _newest(client: RegistryClient, space: str, package_id: str) -> str:
    versions = await client.package_versions(space, package_id)
    stable = [v["tag"] for v in versions if not v["prerelease"]]
    chosen = (stable or [v["tag"] for v in versions] or [None])[0]
    if chosen is None or try_parse_version(chosen) is None:
        raise BuildFailed("package_missing", f"package {package_id} has no versions in {space}")
    return str(chosen)


@dataclass(frozen=True, slots=True)
class BaseLocation:
    """A base image in this registry, with its manifest when finding it fetched it already."""

    repository: str
    reference: str  # a tag or a digest
    manifest: Manifest | None = None


async def _own_repository(reference: str, env: BuildEnvironment) -> BaseLocation | None:
    """Where ``reference`` is in this registry, if it names an image here: by its host, or,
    for a name without one (``spaces-1/base:1.0``), when this registry has it
    (``bitnami/nginx`` is left to the engine, which reads it as Docker Hub's)."""
    first, _, rest = reference.partition("/")
    if first in {env.public_host, env.registry_host}:
        return BaseLocation(*_split_reference(rest))
    if "." in first or ":" in first or first == "localhost" or not rest:
        return None
    repository, tag_or_digest = _split_reference(reference)
    try:
        manifest = await env.client.manifest(repository, tag_or_digest)
    except RegistryRefused:
        return None
    return BaseLocation(repository, tag_or_digest, manifest)


def _split_reference(name: str) -> tuple[str, str]:
    if "@" in name:
        repository, _, digest = name.partition("@")
        return repository, digest
    repository, colon, tag = name.rpartition(":")
    if not colon or "/" in tag:
        return name, "latest"
    return repository, tag


async def _assembled(
    request: BuildRequest,
    context: Path,
    workspace: Path,
    dockerfile: Any,
    base_location: BaseLocation,
    env: BuildEnvironment,
    variables: VariableSet,
    log: Log,
) -> str:
    client = env.client
    base_repository, base_reference_text = base_location.repository, base_location.reference
    try:
        base = await _resolve_base(client, base_location, request.platform)
    except RegistryRefused as exc:
        code = "base_image_missing" if exc.status in (401, 403, 404) else "registry_error"
        raise BuildFailed(
            code, f"base image {base_repository}:{base_reference_text}: {exc}"
        ) from exc
    started = time.monotonic()
    try:
        image = await asyncio.to_thread(
            assemble, dockerfile, context, base, request.build_args, workspace / "layers"
        )
    except AssembleError as exc:
        raise BuildFailed(exc.code, str(exc)) from exc
    except DockerfileError as exc:
        raise BuildFailed("dockerfile_invalid", str(exc)) from exc
    if holds_secret(json.loads(image.config), variables.secrets()):
        raise BuildFailed(
            "sensitive_value_in_image",
            "a sensitive variable's value would be in the image config (ENV, LABEL or "
            "history); keep it in the files the SDI changes",
        )
    log(f"assembled {len(image.new_layers)} layer(s) in {time.monotonic() - started:.2f}s")
    target = f"{request.space}/{request.repository}"

    async def base_layer(digest: str) -> None:
        # One request either way: a mount of a blob the target already holds is a no-op.
        if not await client.mount(target, digest, base_repository):
            raise BuildFailed("push_refused", f"could not mount base layer {digest}")

    try:  # every blob at once, then the manifest that needs them all
        await asyncio.gather(
            *(base_layer(str(layer["digest"])) for layer in image.base_layers),
            *(client.upload(target, new.digest, path=new.path) for new in image.new_layers),
            client.upload(target, image.config_digest, data=image.config),
        )
        digest = await client.put_manifest(
            target, request.tag, image.manifest, image.manifest_media_type
        )
    except RegistryRefused as exc:
        raise BuildFailed("push_refused", f"pushing {target}:{request.tag}: {exc}") from exc
    log(f"pushed {target}:{request.tag} {digest}")
    return digest or image.digest


async def _resolve_base(client: RegistryClient, location: BaseLocation, platform: str) -> BaseImage:
    repository, reference = location.repository, location.reference
    manifest = location.manifest or await client.manifest(repository, reference)
    if manifest.media_type in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST):
        wanted = dict(zip(("os", "architecture", "variant"), platform.split("/"), strict=False))
        entries = manifest.json().get("manifests") or []
        chosen = next(
            (
                entry
                for entry in entries
                if all((entry.get("platform") or {}).get(k) == v for k, v in wanted.items())
            ),
            None,
        )
        if chosen is None:
            raise RegistryRefused(404, f"no {platform} image in {repository}:{reference}")
        manifest = await client.manifest(repository, str(chosen["digest"]))
    document = manifest.json()
    config = json.loads(await client.blob(repository, str(document["config"]["digest"])))
    return BaseImage(document, manifest.media_type, config)


def registry_host(url: str) -> str:
    return urlsplit(url).netloc
