"""OCI error codes, HTTP statuses and the ``{"errors": [...]}`` envelope."""

from __future__ import annotations

import json

import pytest

from shared.oci import errors
from shared.oci.errors import RegistryError, error_body


@pytest.mark.parametrize(
    ("error_class", "status", "code"),
    [
        (errors.BlobUnknown, 404, "BLOB_UNKNOWN"),
        (errors.BlobUploadInvalid, 400, "BLOB_UPLOAD_INVALID"),
        (errors.BlobUploadUnknown, 404, "BLOB_UPLOAD_UNKNOWN"),
        (errors.DigestInvalid, 400, "DIGEST_INVALID"),
        (errors.ManifestBlobUnknown, 400, "MANIFEST_BLOB_UNKNOWN"),
        (errors.ManifestInvalid, 400, "MANIFEST_INVALID"),
        (errors.ManifestUnknown, 404, "MANIFEST_UNKNOWN"),
        (errors.NameInvalid, 400, "NAME_INVALID"),
        (errors.NameUnknown, 404, "NAME_UNKNOWN"),
        (errors.SizeInvalid, 400, "SIZE_INVALID"),
        (errors.ManifestTooLarge, 413, "SIZE_INVALID"),
        (errors.RangeInvalid, 416, "RANGE_INVALID"),
        (errors.PaginationInvalid, 400, "PAGINATION_NUMBER_INVALID"),
        (errors.Unauthorized, 401, "UNAUTHORIZED"),
        (errors.Denied, 403, "DENIED"),
        (errors.Unsupported, 405, "UNSUPPORTED"),
        (errors.TooManyRequests, 429, "TOOMANYREQUESTS"),
        (errors.Unavailable, 503, "UNAVAILABLE"),
        (errors.RegistryError, 500, "UNKNOWN"),
    ],
)
def test_each_error_has_its_oci_code_and_http_status(
    error_class: type[RegistryError], status: int, code: str
) -> None:
    """Every error class carries the distribution-spec code and HTTP status it answers with."""
    error = error_class()
    assert error.status == status
    assert error.code == code
    assert error.as_dict()["code"] == code


def test_every_error_is_a_registry_error() -> None:
    """All OCI errors derive from RegistryError so one handler renders them."""
    for value in vars(errors).values():
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, RegistryError), value


def test_manifest_too_large_is_a_size_invalid() -> None:
    """ManifestTooLarge is caught by handlers of SizeInvalid."""
    assert issubclass(errors.ManifestTooLarge, errors.SizeInvalid)


def test_default_message_is_used_without_one() -> None:
    """An error raised without a message reports its class's default message."""
    error = errors.BlobUnknown()
    assert error.message == "blob unknown to registry"
    assert str(error) == "blob unknown to registry"


def test_given_message_replaces_the_default() -> None:
    """An explicit message is reported instead of the default."""
    error = errors.ManifestInvalid("schemaVersion must be 2")
    assert error.message == "schemaVersion must be 2"
    assert str(error) == "schemaVersion must be 2"


def test_as_dict_omits_detail_when_absent() -> None:
    """Without a detail the error object has only code and message."""
    assert errors.NameUnknown().as_dict() == {
        "code": "NAME_UNKNOWN",
        "message": "repository name not known to registry",
    }


@pytest.mark.parametrize("detail", [{"name": "x/y"}, [1, 2], "text", 0, False, {}])
def test_as_dict_includes_any_given_detail(detail: object) -> None:
    """A detail, even a falsy one, is included verbatim."""
    assert errors.NameInvalid(detail=detail).as_dict()["detail"] == detail


def test_error_body_wraps_one_error() -> None:
    """error_body of one error is ``{"errors": [{code, message, detail}]}``."""
    body = error_body(errors.BlobUnknown(detail={"digest": "sha256:abc"}))
    assert body == {
        "errors": [
            {
                "code": "BLOB_UNKNOWN",
                "message": "blob unknown to registry",
                "detail": {"digest": "sha256:abc"},
            }
        ]
    }


def test_error_body_keeps_several_errors_in_order() -> None:
    """error_body of several errors lists them in the order given."""
    body = error_body(errors.Unauthorized(), errors.Denied("no"), errors.NameUnknown())
    assert [entry["code"] for entry in body["errors"]] == ["UNAUTHORIZED", "DENIED", "NAME_UNKNOWN"]
    assert body["errors"][1]["message"] == "no"


def test_error_body_is_json_serialisable() -> None:
    """The envelope survives a JSON round trip unchanged."""
    body = error_body(errors.RangeInvalid(detail={"range": "bytes=9-", "size": 3}))
    assert json.loads(json.dumps(body)) == body
