"""OCI error rendering: every failure leaves as an OCI error body, in one place."""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from services.registry.keys import auth_key
from shared.oci import errors
from shared.storage.port import StorageError

log = structlog.get_logger("spacedock.registry")


@web.middleware
async def oci_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as an OCI error body; only server faults are 5xx."""
    try:
        return await handler(request)
    except errors.RegistryError as exc:
        return render(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 405:
            return render(request, errors.Unsupported(detail={"method": request.method}))
        if exc.status == 404:
            return render(request, errors.NameUnknown("no such endpoint"))
        if exc.status == 413:
            return render(request, errors.SizeInvalid("request body too large"))
        return render(request, errors.RegistryError(exc.reason), status=exc.status)
    except HttpProcessingError:
        # A body cut short or malformed: the client's fault, and nothing was committed.
        return render(request, errors.BlobUploadInvalid("request body incomplete or malformed"))
    except (ConnectionFailure, StorageError) as exc:
        log.warning("dependency_unavailable", error=str(exc), kind=type(exc).__name__)
        return render(request, errors.Unavailable())
    except (OperationFailure, PyMongoError) as exc:
        log.error("metadata_error", error=str(exc), kind=type(exc).__name__)
        return render(request, errors.Unavailable("metadata operation failed"))
    except (ConnectionResetError, ConnectionAbortedError):
        raise  # the client is gone: nothing to answer
    except Exception:
        log.exception("unhandled_error", method=request.method, path=request.path)
        return render(request, errors.RegistryError("internal server error"), status=500)


def render(
    request: web.Request, error: errors.RegistryError, status: int | None = None
) -> web.Response:
    headers = {}
    if isinstance(error, errors.Unauthorized):
        headers.update(request.app[auth_key].challenge())
    if status is None and error.status >= 500:
        log.error("server_error", code=error.code, message=error.message)
    return web.json_response(
        errors.error_body(error), status=status or error.status, headers=headers
    )
