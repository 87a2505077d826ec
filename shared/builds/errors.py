"""Build error codes as exceptions: one class per code, rendered in one place.

A failed build reports ``{"code", "message"}`` (``as_dict``): in its ``build.failed`` event
(AMQP), in its result, and under ``error`` when the management API shows it (HTTP). The code
is for programs and never changes; the message is for people. When the registry refuses a
request the way a build would, the answer is ``http_status`` with the management API's
``api_code``.

Every module of the builder, the registry's upload check (``sdi_check``) and ``spacedock
sdi preview`` raise these classes themselves (``raise ArchivePathTraversal(message)``): a code
is written here and nowhere else. A few groups (``ArchiveError``, ``FeatureFailed``) let a
module catch, or name, a family of errors at once; a group is never raised itself, and is not
in ``CATALOGUE``. The errors pickle as themselves, so a child process (the configuration
features, the upload check) hands its error back whole.
"""

from __future__ import annotations

from typing import Any, ClassVar


class BuildError(Exception):
    """Why a build failed: a code of the catalogue below and a message."""

    code: ClassVar[str] = "internal_error"
    http_status: ClassVar[int] = 422  # a request a build would refuse cannot be processed
    api_code: ClassVar[str] = "INVALID"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_dict(self) -> dict[str, Any]:
        """The error as events, results and build documents carry it."""
        return {"code": self.code, "message": self.message}


class RequestInvalid(BuildError, ValueError):
    """The request cannot be read: not JSON, unknown fields, a bad name or value, sealed
    values that do not open for this build."""

    code = "request_invalid"


class InternalError(BuildError):
    """A fault of the builder itself; the message names the exception, nothing more."""

    code, http_status, api_code = "internal_error", 500, "UNKNOWN"


class TimedOut(BuildError):
    """The build ran past ``SPACEDOCK_BUILD_TIMEOUT_SECONDS``."""

    code = "timeout"


class Cancelled(BuildError):
    """Cancelled (``DELETE …/builds/{id}``) before or while it ran: the build's status is
    ``cancelled``, not ``failed``."""

    code = "cancelled"


class SealingUnavailable(BuildError, RuntimeError):
    """Sensitive values to seal, and no ``SPACEDOCK_SEALING_KEY`` to seal them with: the
    registry does not queue the build (never a build's result)."""

    code, http_status, api_code = "sealing_unavailable", 503, "UNAVAILABLE"


# What the build is made of: the SDI, its packages and their archives.
class PackageMissing(BuildError):
    code = "package_missing"


class SdiInvalid(BuildError):
    """``sdi.yaml`` cannot be read, or names what it may not."""

    code = "sdi_invalid"


class ArchiveError(BuildError):
    """The group of the refusals below: an archive, or the tree extracted from it, that a
    build will not use (extraction, and every later reading of the tree, raise them)."""


class ArchiveInvalid(ArchiveError):
    code = "archive_invalid"


class ArchiveAbsolutePath(ArchiveError):
    code = "archive_absolute_path"


class ArchivePathTraversal(ArchiveError):
    code = "archive_path_traversal"


class ArchiveLinkEscape(ArchiveError):
    code = "archive_link_escape"


class ArchiveSpecialFile(ArchiveError):
    code = "archive_special_file"


class ArchiveTooLarge(ArchiveError):
    """Past ``SPACEDOCK_BUILD_MAX_EXTRACT_BYTES`` or ``SPACEDOCK_BUILD_MAX_FILES``."""

    code = "archive_too_large"


# The configuration features.
class FeatureFailed(BuildError):
    """The group of the four below: one of the features could not do its work (a template,
    a transform, a file it cannot rewrite, its share of the features' output budget)."""


class SubstitutionFailed(FeatureFailed):
    code = "substitution_failed"


class ConfigTransformFailed(FeatureFailed):
    code = "config_transform_failed"


class ConfigVariablesFailed(FeatureFailed):
    code = "config_variables_failed"


class StructuredVariablesFailed(FeatureFailed):
    code = "structured_variables_failed"


class FeaturesFailed(BuildError):
    """The features did not finish (their time limit, or their process failed)."""

    code = "features_failed"


class SensitiveValueInImage(BuildError):
    """A sensitive value would reach the image's config, history or labels."""

    code = "sensitive_value_in_image"


# The Dockerfile and the images it names.
class DockerfileMissing(BuildError):
    code = "dockerfile_missing"


class DockerfileInvalid(BuildError):
    code = "dockerfile_invalid"


class DockerfileUnsupported(BuildError):
    code = "dockerfile_unsupported"


class DockerfileFailed(BuildError):
    """A step of a Docker-strategy build failed."""

    code = "dockerfile_failed"


class StrategyUnavailable(BuildError):
    """The request insists on a strategy this Dockerfile cannot be built with."""

    code = "strategy_unavailable"


class OnbuildBase(BuildError):
    code = "onbuild_base"


class CopySourceMissing(BuildError):
    code = "copy_source_missing"


class CopySourceOutsideContext(BuildError):
    code = "copy_source_outside_context"


class BaseImageDenied(BuildError):
    """A base the build's space may not read, or from a registry not allowed."""

    code = "base_image_denied"


class BaseImageMissing(BuildError):
    code = "base_image_missing"


# The services a build uses.
class DockerUnavailable(BuildError):
    code = "docker_unavailable"


class RegistryFault(BuildError):
    """The registry did not answer as it should (not a refusal of the image)."""

    code = "registry_error"


class PushRefused(BuildError):
    code = "push_refused"


CATALOGUE: dict[str, type[BuildError]] = {
    kind.code: kind
    for kind in (
        RequestInvalid, InternalError, TimedOut, Cancelled, SealingUnavailable,
        PackageMissing, SdiInvalid, ArchiveInvalid, ArchiveAbsolutePath, ArchivePathTraversal,
        ArchiveLinkEscape, ArchiveSpecialFile, ArchiveTooLarge,
        SubstitutionFailed, ConfigTransformFailed, ConfigVariablesFailed,
        StructuredVariablesFailed, FeaturesFailed, SensitiveValueInImage,
        DockerfileMissing, DockerfileInvalid, DockerfileUnsupported, DockerfileFailed,
        StrategyUnavailable, OnbuildBase, CopySourceMissing, CopySourceOutsideContext,
        BaseImageDenied, BaseImageMissing,
        DockerUnavailable, RegistryFault, PushRefused,
    )
}  # fmt: skip
