"""Error rendering in one place: OCI bodies for the registry, JSON errors for the API."""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from multidict import CIMultiDict
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from services.registry.identity.access import Challenged
from services.registry.keys import access_key
from services.registry.management.errors import ApiError, api_error_body
from shared.oci import errors
from shared.storage.port import StorageError

log = structlog.get_logger("spacedock.registry")
TOKEN_PATH = "/auth/token"


@web.middleware
async def error_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as an error body (OCI's under /v2, the management API's under
    /api); only server faults are 5xx."""
    try:
        return await handler(request)
    except ApiError as exc:
        body = api_error_body(exc.code, exc.message, exc.detail)
        return web.json_response(body, status=exc.status)
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
    headers = CIMultiDict[str]()
    if status == 401 or isinstance(error, Challenged):
        for challenge in _challenges(request, error):
            headers.add("WWW-Authenticate", challenge)
    if request.path.startswith("/api/"):
        code = "NOT_FOUND" if status == 404 else error.code
        body = api_error_body(code, error.message, error.detail)
    else:
        body = errors.error_body(error)
    return web.json_response(body, status=status, headers=headers)


def _challenges(request: web.Request, error: errors.RegistryError) -> list[str]:
    """Bearer for registry clients; the token endpoint and the management API also offer
    Basic, which is what people with curl or a browser have."""
    if request.path.startswith(TOKEN_PATH):
        return ['Basic realm="spacedock"']
    scope = error.scope if isinstance(error, Challenged) else None
    reason = error.error if isinstance(error, Challenged) else None
    return request.app[access_key].challenge(
        scope=scope, error=reason, basic=request.path.startswith("/api/")
    )
