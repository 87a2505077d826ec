"""OCI error codes as exceptions, rendered in one place by each service's HTTP layer.

Every error a client can cause is one of these; anything else is a server fault.
"""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """An error with an OCI code, an HTTP status and an optional detail."""

    code = "UNKNOWN"
    status = 500
    default_message = "unknown error"

    def __init__(self, message: str | None = None, detail: Any = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


class BlobUnknown(RegistryError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, default_message = (
        "DIGEST_INVALID",
        400,
        "provided digest did not match uploaded content",
    )


class ManifestBlobUnknown(RegistryError):
    code, status, default_message = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    )


class ManifestInvalid(RegistryError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(RegistryError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, default_message = (
        "SIZE_INVALID",
        400,
        "provided length did not match content length",
    )


class ManifestTooLarge(SizeInvalid):
    status, default_message = 413, "manifest exceeds the size limit"


class RangeInvalid(RegistryError):
    """A chunk out of order (upload) or a range that cannot be satisfied (blob GET)."""

    code, status, default_message = "RANGE_INVALID", 416, "requested range not satisfiable"


class PaginationInvalid(RegistryError):
    code, status, default_message = "PAGINATION_NUMBER_INVALID", 400, "invalid number of results"


class Unauthorized(RegistryError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class TooManyRequests(RegistryError):
    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class Unavailable(RegistryError):
    """A dependency (metadata or storage) cannot be reached; the client may retry."""

    code, status, default_message = "UNAVAILABLE", 503, "service unavailable"


def error_body(*errors: RegistryError) -> dict[str, Any]:
    """The OCI error envelope for one or more errors."""
    return {"errors": [error.as_dict() for error in errors]}
