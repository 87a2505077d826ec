"""Error rendering in one place: OCI bodies for the registry, JSON errors for the API."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from services.registry.keys import auth_key
from services.registry.management.errors import ApiError, api_error_body
from shared.oci import errors
from shared.storage.port import StorageError

log = structlog.get_logger("spacedock.registry")


@web.middleware
async def error_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as an error body (OCI's under /v2, the management API's under
    /api); only server faults are 5xx."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(request, api_error_body(exc.code, exc.message, exc.detail), exc.status)
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
    if status is None and error.status >= 500:
        log.error("server_error", code=error.code, message=error.message)
    status = status or error.status
    if request.path.startswith("/api/"):
        code = "NOT_FOUND" if status == 404 else error.code
        return _json(request, api_error_body(code, error.message, error.detail), status)
    return _json(request, errors.error_body(error), status)


def _json(request: web.Request, body: dict[str, Any], status: int) -> web.Response:
    headers = request.app[auth_key].challenge() if status == 401 else {}
    return web.json_response(body, status=status, headers=headers)
