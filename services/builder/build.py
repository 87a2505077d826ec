"""One build, from request to pushed image: fetch the SDI and its packages from the feed,
extract them safely, run the configuration features, then build with the ``assembled``
strategy when the Dockerfile allows it and the ``docker`` strategy otherwise.

A build acts with the authority of the space it builds for (PRODUCT.md §8): it asks the
registry for a credential confined to that space and uses it for every read and push, the
Docker engine's included; the builder's own service account only obtains that credential.
Everything the SDI brings is hostile: package names are checked before they reach a URL or a
path, the extracted tree is judged as a whole, the features run in a child process with a
time budget, and every image the Dockerfile names is checked before anything is fetched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.builder.archives import ArchiveError, Limits, extract, verify_tree
from services.builder.assemble import BaseImage, assemble
from services.builder.docker_engine import DockerEngine, DockerJob, DockerLimits
from services.builder.dockerfile import Dockerfile, parse_dockerfile
from services.builder.features.pipeline import FeatureRun, run_features
from services.builder.features.variables import VariableSet, system_variables
from services.builder.images import ImageReference, check_hosts, images_used, trigger_problems
from services.builder.isolation import IsolatedFailure, IsolatedTimeout, run_isolated
from services.builder.redaction import holds_secret
from services.builder.registry_client import Manifest, RegistryClient, RegistryRefused
from services.builder.tree import read_regular
from shared.build_requests import BuildRequest
from shared.builds.errors import (
    BaseImageDenied,
    BaseImageMissing,
    DockerfileInvalid,
    DockerfileMissing,
    DockerfileUnsupported,
    DockerUnavailable,
    FeaturesFailed,
    PackageMissing,
    PushRefused,
    RegistryFault,
    SdiInvalid,
    SensitiveValueInImage,
    StrategyUnavailable,
    SubstitutionFailed,
)
from shared.oci import media_types as mt
from shared.packages import PackageNameInvalid, check_package_reference
from shared.sdi import parse_sdi
from shared.versions import try_parse_version

Log = Callable[[str], None]
MAX_DOCKERFILE_BYTES = 1024 * 1024
MAX_VERSIONS = 10_000  # of a package, as the feed lists them at most


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    image: str  # <host>/<repository>:<tag>
    digest: str
    strategy: str


@dataclass(frozen=True, slots=True)
class BuildPolicy:
    """What an operator allows a build (``SPACEDOCK_BUILD_*``)."""

    allowed_registries: tuple[str, ...] = ()
    docker_limits: DockerLimits = field(default_factory=DockerLimits)
    extraction: Limits = field(default_factory=Limits)
    features_seconds: float = 30.0  # the configuration features' time budget
    credential_seconds: int = 1800 + 600


@dataclass(frozen=True, slots=True)
class BuildEnvironment:
    service: RegistryClient  # the builder's service account: it only obtains credentials
    registry_url: str
    public_host: str
    registry_host: str
    docker: DockerEngine | None
    policy: BuildPolicy = field(default_factory=BuildPolicy)
    # Told how long each build's configuration features took, in seconds (a metric).
    features_timed: Callable[[float], None] = lambda _seconds: None

    @property
    def own_hosts(self) -> tuple[str, ...]:
        """Every name images of this registry go by."""
        return tuple(dict.fromkeys(h.lower() for h in (self.registry_host, self.public_host)))


@dataclass(frozen=True, slots=True)
class BaseLocation:
    """An image in this registry, with its manifest when finding it fetched it already."""

    repository: str
    reference: str  # a tag or a digest
    manifest: Manifest | None = None


async def run_build(
    request: BuildRequest, workspace: Path, env: BuildEnvironment, log: Log
) -> BuildOutcome:
    _check_package(request.sdi_id, request.sdi_version, "the request's sdi")
    for package_id, version in request.packages.items():
        _check_package(package_id, version, "the request's packages")
    try:
        username, password = await env.service.build_credential(
            request.space, env.policy.credential_seconds
        )
    except RegistryRefused as exc:
        raise RegistryFault(f"no credential for {request.space}: {exc}") from exc
    async with RegistryClient(env.registry_url, username, password) as client:
        build = _Build(request, workspace, env, client, (username, password), log)
        return await build.run()


def _check_package(package_id: str, version: str | None, where: str) -> None:
    try:
        check_package_reference(package_id, version)
    except PackageNameInvalid as exc:
        raise SdiInvalid(f"{where}: {exc}") from exc


class _Build:
    def __init__(
        self,
        request: BuildRequest,
        workspace: Path,
        env: BuildEnvironment,
        client: RegistryClient,
        credentials: tuple[str, str],
        log: Log,
    ) -> None:
        self.request = request
        self.workspace = workspace
        self.context = workspace / "context"
        self.env = env
        self.client = client  # acts in the build's space alone
        self.credentials = credentials
        self.log = log
        self.variables = _variables(request)
        self.budget = env.policy.extraction.budget()
        self._downloads = 0
        self.sdi_version = request.sdi_version or ""  # the one fetched, once it is

    async def run(self) -> BuildOutcome:
        request = self.request
        self.sdi_version = await self._fetch_and_extract(
            request.sdi_id, request.sdi_version, self.context
        )
        spec = parse_sdi(self._read_regular("sdi.yaml"))
        for package in spec.packages:
            version = request.packages.get(package.id) or package.version
            await self._fetch_and_extract(package.id, version, self.context / package.extract_to)
        await self._judge_tree()
        await self._run_features(spec)

        dockerfile = self._dockerfile()
        images = images_used(dockerfile, request.build_args)
        blocker = dockerfile.assembled_blocker()
        self._insist_on_assembled(blocker)
        located = await self._locate(images, single_base=blocker is None)
        first = next((image for image in images if image.stage_base), None)
        base = located.get(first) if first is not None and dockerfile.stages == 1 else None
        if blocker is None and base is None:
            name = "scratch" if first is None else first.text
            blocker = f"the base image {name} is not in this registry"
        self._insist_on_assembled(blocker)
        if request.strategy == "docker" and blocker is None:
            blocker = "the request asks for the docker strategy"
        target = f"{request.space}/{request.repository}"
        if blocker is None:
            assert base is not None
            self.log(f"strategy: assembled (base {base.repository}:{base.reference})")
            digest = await self._assembled(dockerfile, base)
            strategy = "assembled"
        else:
            self.log(f"strategy: docker ({blocker})")
            digest = await self._docker(blocker, located)
            strategy = "docker"
        return BuildOutcome(f"{self.env.public_host}/{target}:{request.tag}", digest, strategy)

    def _insist_on_assembled(self, blocker: str | None) -> None:
        if self.request.strategy == "assembled" and blocker is not None:
            raise StrategyUnavailable(f"the assembled strategy cannot build this: {blocker}")

    # from the feed to a tree -----------------------------------------------------------------

    async def _fetch_and_extract(
        self, package_id: str, version: str | None, destination: Path
    ) -> str:
        """Fetch and extract ``package_id`` at ``version`` (the newest if None); the version."""
        space = self.request.space
        try:
            if version is None:
                version = await self._newest(package_id)
            # The file's name is the builder's own: a package id never becomes a path.
            self._downloads += 1
            archive = self.workspace / f"download-{self._downloads}.archive"
            await self.client.download_package(space, package_id, version, archive)
        except RegistryRefused as exc:
            if exc.status == 404:
                raise PackageMissing(
                    f"package {package_id} {version or ''} is not in {space}"
                ) from exc
            raise RegistryFault(f"fetching {package_id}: {exc}") from exc
        self.log(f"fetched {package_id} {version}")
        try:
            written = await asyncio.to_thread(extract, archive, destination, self.budget)
        except ArchiveError as exc:  # the same refusal, naming the package
            raise type(exc)(f"{package_id} {version}: {exc.message}") from exc
        finally:
            archive.unlink(missing_ok=True)
        self.log(f"extracted {len(written)} file(s) of {package_id} {version}")
        return version

    async def _newest(self, package_id: str) -> str:
        space = self.request.space
        versions = await self.client.package_versions(space, package_id, limit=MAX_VERSIONS)
        stable = [v["tag"] for v in versions if not v["prerelease"]]
        chosen = (stable or [v["tag"] for v in versions] or [None])[0]
        if chosen is None or try_parse_version(chosen) is None:
            raise PackageMissing(f"package {package_id} has no versions in {space}")
        _check_package(package_id, str(chosen), "the feed")
        return str(chosen)

    async def _sdi_pushed_at(self) -> dt.datetime | None:
        """When the SDI's version was pushed: the assembled image's date, an input like the
        others, so the same inputs still give the same digest."""
        space, sdi_id = self.request.space, self.request.sdi_id
        try:
            versions = await self.client.package_versions(space, sdi_id, limit=MAX_VERSIONS)
        except RegistryRefused as exc:
            raise RegistryFault(f"versions of {sdi_id}: {exc}") from exc
        for entry in versions:
            if entry.get("tag") == self.sdi_version:
                try:
                    return dt.datetime.fromisoformat(str(entry["pushed_at"]))
                except (KeyError, ValueError):
                    return None
        return None

    async def _judge_tree(self) -> None:
        """Links are judged one by one as they are extracted; a later one can change what an
        earlier one means (``a -> b/../..`` before ``b -> .``), so the whole tree is judged
        again once every package is in it."""
        await asyncio.to_thread(verify_tree, self.context)

    def _read_regular(self, name: str) -> str | None:
        content = read_regular(self.context, name, MAX_DOCKERFILE_BYTES)
        if content is None:
            return None
        try:
            return content.decode()
        except UnicodeDecodeError as exc:
            if name == "sdi.yaml":
                raise SdiInvalid(f"{name} is not UTF-8 text") from exc
            raise DockerfileInvalid(f"{name} is not UTF-8 text") from exc

    # the configuration features -------------------------------------------------------------

    async def _run_features(self, spec: Any) -> None:
        """The SDI's own expressions run in a child process that the time budget, the build's
        time limit and cancellation can stop (a thread could not be)."""
        deployment = self.request.deployment
        started = time.monotonic()
        try:
            features: FeatureRun = await run_isolated(
                run_features,
                self.context,
                spec.features,
                self.variables,
                _text(deployment.get("environment")),
                _text(deployment.get("tenant")),
                timeout=self.env.policy.features_seconds,
            )
        except IsolatedTimeout as exc:
            raise SubstitutionFailed(
                f"the configuration features took longer than {exc.seconds:g}s (a runaway "
                "template or regular expression?); SPACEDOCK_BUILD_FEATURES_SECONDS sets the "
                "budget",
            ) from exc
        except IsolatedFailure as exc:
            raise FeaturesFailed(str(exc)) from exc
        finally:
            self.env.features_timed(time.monotonic() - started)
        for line in features.lines:
            self.log(line)
        if features.error is not None:
            raise features.error
        self.log(f"configuration features changed {len(features.changed)} file(s)")

    def _dockerfile(self) -> Dockerfile:
        text = self._read_regular("Dockerfile")
        if text is None:
            raise DockerfileMissing("the SDI has no Dockerfile at its root")
        if holds_secret([text], self.variables.secrets()):
            raise SensitiveValueInImage(
                "the Dockerfile holds a sensitive variable's value (or an encoding of it), "
                "which would reach the image config, its history or the build log; keep it in "
                "the files the SDI changes",
            )
        return parse_dockerfile(text)

    # images ---------------------------------------------------------------------------------

    async def _locate(
        self, images: list[ImageReference], *, single_base: bool
    ) -> dict[ImageReference, BaseLocation]:
        """Which images are this registry's, each checked with the build's credential before
        anything is fetched; images of other registries must be allowed by the operator.
        A name without a host (``spaces-1/base:1.0``) is this registry's when the assembled
        strategy can build and the build may read it here; otherwise it is Docker Hub's."""
        own_hosts = self.env.own_hosts
        located: dict[ImageReference, BaseLocation] = {}
        elsewhere: list[ImageReference] = []
        for image in images:
            if image.host in own_hosts:
                located[image] = BaseLocation(image.repository, image.reference)
            elif single_base and not image.written_host:
                here = await self._bare_name_here(image)
                if here is None:
                    elsewhere.append(image)
                else:
                    located[image] = here
            else:
                elsewhere.append(image)
        check_hosts(elsewhere, own_hosts, self.env.policy.allowed_registries)
        for image, location in located.items():
            if location.manifest is None:
                await self._may_read(image, location)
        return located

    async def _bare_name_here(self, image: ImageReference) -> BaseLocation | None:
        try:
            manifest = await self.client.manifest(image.repository, image.reference)
        except RegistryRefused:
            return None  # not here, or not readable: Docker Hub's name, judged as such
        return BaseLocation(image.repository, image.reference, manifest)

    async def _may_read(self, image: ImageReference, location: BaseLocation) -> None:
        status = await self.client.manifest_status(location.repository, location.reference)
        if status in (401, 403):
            raise BaseImageDenied(
                f"{image.display}: a build in {self.request.space} may use images of its own "
                "space and of spaces that allow anonymous pull",
            )
        if status == 404:
            raise BaseImageMissing(f"{image.display} is not in this registry")
        if status >= 400:
            raise RegistryFault(f"{image.display}: the registry answered {status}")

    # strategies -------------------------------------------------------------------------------

    async def _assembled(self, dockerfile: Dockerfile, location: BaseLocation) -> str:
        request, client = self.request, self.client
        try:
            base = await _resolve_base(client, location, request.platform)
        except RegistryRefused as exc:
            where = f"base image {location.repository}:{location.reference}"
            raise _unreadable_base(exc, where) from exc
        created = await self._sdi_pushed_at()
        started = time.monotonic()
        image = await asyncio.to_thread(
            functools.partial(assemble, created=created), dockerfile, self.context, base,
            request.build_args, self.workspace / "layers",
        )  # fmt: skip
        if holds_secret(json.loads(image.config), self.variables.secrets()):
            raise SensitiveValueInImage(
                "a sensitive variable's value would be in the image config (ENV, LABEL or "
                "history); keep it in the files the SDI changes",
            )
        self.log(f"assembled {len(image.new_layers)} layer(s) in {time.monotonic() - started:.2f}s")
        target = request.full_repository

        async def base_layer(digest: str) -> None:
            # One request either way: a mount of a blob the target already holds is a no-op.
            if not await client.mount(target, digest, location.repository):
                raise PushRefused(f"could not mount base layer {digest}")

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
            raise PushRefused(f"pushing {target}:{request.tag}: {exc}") from exc
        self.log(f"pushed {target}:{request.tag} {digest}")
        return digest or image.digest

    async def _docker(self, blocker: str, located: dict[ImageReference, BaseLocation]) -> str:
        env, request = self.env, self.request
        if env.docker is None:
            raise DockerUnavailable(f"this build needs a Docker engine: {blocker}")
        await self._refuse_remote_triggers(located)
        job = DockerJob(
            context=self.context,
            repository=f"{env.registry_host}/{request.full_repository}",
            tag=request.tag,
            build_args=request.build_args,
            platform=request.platform,
            credentials=self.credentials,
            secrets=self.variables.secrets(),
            registry_hosts=env.own_hosts,
            limits=env.policy.docker_limits,
        )
        return await env.docker.build_and_push(job, self.log)

    async def _refuse_remote_triggers(self, located: dict[ImageReference, BaseLocation]) -> None:
        """A stage base's ONBUILD triggers run in this build: an ``ADD`` of a URL among them
        would make the engine fetch from the builder's network. (Bases of the registries an
        operator allows are the operator's to trust.)"""
        for image, location in located.items():
            if not image.stage_base:
                continue
            try:
                base = await _resolve_base(self.client, location, self.request.platform)
            except RegistryRefused as exc:  # unread triggers are not run
                raise _unreadable_base(exc, image.display) from exc
            triggers = (base.config.get("config") or {}).get("OnBuild") or []
            refused = trigger_problems([t for t in triggers if isinstance(t, str)])
            if refused:
                raise DockerfileUnsupported(
                    f"{image.display}: its ONBUILD trigger {refused[0]!r} would add a URL or "
                    "copy from another image; builds do not fetch from the network",
                )


def _variables(request: BuildRequest) -> VariableSet:
    variables = VariableSet(request.variables, request.sensitive_variables)
    for name, value in system_variables(request.deployment, request.space).items():
        variables.set(name, value)
    return variables


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _unreadable_base(refused: RegistryRefused, where: str) -> BaseImageMissing | RegistryFault:
    """A base the registry would not hand over: missing to this build's credential (not
    there, or not its to read), or a fault of the registry."""
    if refused.status in (401, 403, 404):
        return BaseImageMissing(f"{where}: {refused}")
    return RegistryFault(f"{where}: {refused}")


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
