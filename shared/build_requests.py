"""Build requests (PRODUCT.md §7), validated the same way whether they come over AMQP or
through ``POST /api/v1/spaces/{space}/builds`` (pure).

A build is named by its space and ``build_id`` together (``build_key``): the same id in two
spaces is two builds. Sensitive values arrive in clear (``sensitive_variables``, from the
deployment server over AMQP) or sealed for the build (``sealed_sensitive_variables``, only in
the commands the registry records in its outbox, which is MongoDB).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

# The catalogue's errors (shared.builds.errors), still named here for those that import them.
from shared.builds.errors import RequestInvalid as RequestInvalid
from shared.builds.errors import SealingUnavailable as SealingUnavailable
from shared.oci.errors import NameInvalid
from shared.oci.names import SPACE_RE, RepositoryName, is_tag
from shared.sealing import SealBroken, Sealer
from shared.storable import unstorable

BUILD_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_VARIABLES = 10_000
MAX_VALUE_LENGTH = 1024 * 1024
FIELDS = {
    "build_id", "space", "sdi", "image", "deployment", "variables", "sensitive_variables",
    "packages", "platform", "build_args", "strategy",
}  # fmt: skip
SEALED = "sealed_sensitive_variables"
COMMAND_FIELDS = FIELDS | {SEALED}  # what a builder reads; POST takes FIELDS only


def build_key(space: str, build_id: str) -> str:
    """The one name of a build: ``<space>/<build_id>`` (a space id holds no ``/``)."""
    return f"{space}/{build_id}"


@dataclass(frozen=True, slots=True)
class BuildRequest:
    build_id: str
    space: str
    sdi_id: str
    sdi_version: str
    repository: str  # inside the space
    tag: str
    deployment: dict[str, Any]
    variables: dict[str, str | None]  # None: defined with no value
    sensitive_variables: dict[str, str] = field(repr=False)
    packages: dict[str, str]
    platform: str = "linux/amd64"
    build_args: dict[str, str] = field(default_factory=dict)
    strategy: str = "auto"  # or "assembled" / "docker" to insist on one

    @property
    def full_repository(self) -> str:
        return f"{self.space}/{self.repository}"

    @property
    def key(self) -> str:
        return build_key(self.space, self.build_id)

    def _shown(self) -> dict[str, Any]:
        return {
            "build_id": self.build_id,
            "space": self.space,
            "sdi": {"id": self.sdi_id, "version": self.sdi_version},
            "image": {"repository": self.repository, "tag": self.tag},
            "deployment": self.deployment,
            "variables": self.variables,
            "packages": self.packages,
            "platform": self.platform,
            "strategy": self.strategy,
        }

    def public(self) -> dict[str, Any]:
        """The request as it may be stored and shown: sensitive values replaced by names.
        It is what a repeated request with the same ``build_id`` is compared with."""
        return {
            **self._shown(),
            "build_args": self.build_args,
            "sensitive_variables": sorted(self.sensitive_variables),
        }

    def command(self, sealer: Sealer | None) -> dict[str, Any]:
        """The request as the registry records it for the builders (in MongoDB, through the
        outbox): complete, with its sensitive values sealed for this build, never in clear."""
        data: dict[str, Any] = {**self._shown(), "build_args": self.build_args}
        if self.sensitive_variables:
            if sealer is None:
                raise SealingUnavailable(
                    "sensitive variables need SPACEDOCK_SEALING_KEY (shared by registry and "
                    "builder) to reach the builder"
                )
            data[SEALED] = sealer.seal(self.sensitive_variables, context=self.key)
        return data


def build_id_of(data: Any) -> str | None:
    """The request's build id when it has a usable one (to report a failure against)."""
    if isinstance(data, dict):
        value = data.get("build_id")
        if isinstance(value, str) and BUILD_ID_RE.fullmatch(value):
            return value
    return None


def parse_build_request(
    data: Any,
    *,
    space: str | None = None,
    sealer: Sealer | None = None,
    deployment_required: bool = False,
) -> BuildRequest:
    """The request ``data`` makes; sealed sensitive values are opened with ``sealer``.

    ``deployment_required``: the request must name its deployment (``deployment.id``), as
    ``POST …/builds`` and ``spacedock builds start`` do; over AMQP the deployment server
    always sends one, and a request without it builds with the SDI version as its tag."""
    if not isinstance(data, dict):
        raise RequestInvalid("a build request is a JSON object")
    problem = unstorable(data)
    if problem is not None:  # over AMQP it would be a failed insert, redelivered for ever
        raise RequestInvalid(f"the request cannot be stored: {problem}")
    unknown = sorted(set(data) - COMMAND_FIELDS)
    if unknown:
        raise RequestInvalid(f"unknown fields: {', '.join(unknown)}")
    build_id = data.get("build_id")
    if build_id is None:
        build_id = f"build-{uuid.uuid4().hex}"
    elif not isinstance(build_id, str) or not BUILD_ID_RE.fullmatch(build_id):
        raise RequestInvalid("build_id must be 1-128 letters, digits, '.', '_' or '-'")
    request_space = data.get("space", space)
    if space is not None and request_space != space:
        raise RequestInvalid(f"space {request_space!r} does not match the path's {space!r}")
    if not isinstance(request_space, str) or not SPACE_RE.fullmatch(request_space):
        raise RequestInvalid("space must be a space id such as spaces-1")
    sdi = _object(data.get("sdi"), "sdi", {"id", "version"}, required=True)
    sdi_id, sdi_version = _text(sdi.get("id"), "sdi.id"), _text(sdi.get("version"), "sdi.version")
    deployment = _object(data.get("deployment"), "deployment", None, required=False)
    if deployment_required:
        if "id" not in deployment:
            raise RequestInvalid(
                "deployment is required: the deployment the image is for, with its id, e.g. "
                '{"id": "deployments-75", "environment": "Production"}'
            )
        _text(deployment["id"], "deployment.id")
    image = _object(data.get("image"), "image", {"repository", "tag"}, required=False)
    repository = image.get("repository", sdi_id.lower())
    deployment_id = deployment.get("id")
    default_tag = f"{sdi_version}-{deployment_id}" if deployment_id else sdi_version
    tag = image.get("tag", default_tag)
    if not isinstance(repository, str) or not isinstance(tag, str):
        raise RequestInvalid("image.repository and image.tag must be strings")
    try:
        RepositoryName.parse(f"{request_space}/{repository}")
    except NameInvalid as exc:
        raise RequestInvalid(f"image.repository {repository!r} is not a repository name") from exc
    if not is_tag(tag):
        raise RequestInvalid(f"image.tag {tag!r} is not a valid tag")
    platform = data.get("platform", "linux/amd64")
    if not isinstance(platform, str) or not re.fullmatch(
        r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?", platform
    ):
        raise RequestInvalid("platform must look like linux/amd64")
    strategy = data.get("strategy", "auto")
    if strategy not in ("auto", "assembled", "docker"):
        raise RequestInvalid("strategy must be auto, assembled or docker")
    return BuildRequest(
        strategy=strategy,
        build_id=build_id,
        space=request_space,
        sdi_id=sdi_id,
        sdi_version=sdi_version,
        repository=repository,
        tag=tag,
        deployment=deployment,
        variables=variable_values(data.get("variables"), "variables"),
        sensitive_variables=_sensitive(data, build_key(request_space, build_id), sealer),
        packages=_strings(data.get("packages"), "packages"),
        platform=platform,
        build_args=_strings(data.get("build_args"), "build_args"),
    )


def _sensitive(data: dict[str, Any], key: str, sealer: Sealer | None) -> dict[str, str]:
    """The clear values, or the sealed ones opened for the build ``key`` and nothing else."""
    if SEALED not in data:
        return _strings(data.get("sensitive_variables"), "sensitive_variables")
    if data.get("sensitive_variables") is not None:
        raise RequestInvalid(f"give sensitive_variables or {SEALED}, not both")
    if sealer is None:
        raise RequestInvalid(f"{SEALED} cannot be opened: SPACEDOCK_SEALING_KEY is not set")
    sealed = data[SEALED]
    if not isinstance(sealed, str):
        raise RequestInvalid(f"{SEALED} must be a string")
    try:
        opened = sealer.open(sealed, context=key)
    except SealBroken as exc:
        raise RequestInvalid(f"{SEALED} {exc}") from exc
    return _strings(opened, "sensitive_variables")


def _object(value: Any, where: str, allowed: set[str] | None, *, required: bool) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise RequestInvalid(f"{where} must be an object")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise RequestInvalid(f"{where}: unknown fields {', '.join(unknown)}")
    return value


def _text(value: Any, where: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise RequestInvalid(f"{where} is required")
    return value.strip()


def variable_values(value: Any, where: str) -> dict[str, str | None]:
    """An object of names to values as the deployment server sends variables: true/false
    become "True"/"False", numbers their text, and null stays null (a variable defined with
    no value)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_VARIABLES:
        raise RequestInvalid(f"{where} must be an object of at most {MAX_VARIABLES} entries")
    result: dict[str, str | None] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            item = "True" if item else "False"
        elif isinstance(item, (int, float)):
            item = str(item)
        if item is not None and (not isinstance(item, str) or len(item) > MAX_VALUE_LENGTH):
            raise RequestInvalid(f"{where}.{str(key)[:100]} must be a string")
        if not key:
            raise RequestInvalid(f"{where} holds an empty name")
        result[str(key)] = item
    return result


def _strings(value: Any, where: str) -> dict[str, str]:
    return {key: item or "" for key, item in variable_values(value, where).items()}
