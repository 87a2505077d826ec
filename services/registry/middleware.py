"""Error rendering in one place: OCI bodies for the registry, JSON errors for the API."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from bson.errors import InvalidDocument
from multidict import CIMultiDict
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from services.registry.identity.access import Challenged
from services.registry.keys import access_key
from services.registry.management.errors import ApiError, api_error_body
from shared.oci import errors
from shared.storage.port import StorageError

log = structlog.get_logger("spacedock.registry")
TOKEN_PATH = "/auth/token"
CLIENT_CLOSED_REQUEST = 499


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
            unsupported = render(request, errors.Unsupported(detail={"method": request.method}))
            if "Allow" in exc.headers:  # RFC 9110: a 405 lists the methods the path has
                unsupported.headers["Allow"] = exc.headers["Allow"]
            return unsupported
        if exc.status == 404:
            return render(request, errors.NameUnknown("no such endpoint"))
        if exc.status == 413:
            return render(request, errors.SizeInvalid("request body too large"))
        return render(request, errors.RegistryError(exc.reason), status=exc.status)
    except HttpProcessingError:
        if _client_gone(request):
            return _client_closed(request)
        # A body cut short or malformed: the client's fault, and nothing was committed.
        return render(request, errors.BlobUploadInvalid("request body incomplete or malformed"))
    except (ConnectionFailure, StorageError) as exc:
        log.warning("dependency_unavailable", error=str(exc), kind=type(exc).__name__)
        _abort_if_answering(request)
        return render(request, errors.Unavailable())
    except (OperationFailure, PyMongoError) as exc:
        log.error("metadata_error", error=str(exc), kind=type(exc).__name__)
        _abort_if_answering(request)
        return render(request, errors.Unavailable("metadata operation failed"))
    except InvalidDocument as exc:  # what BSON cannot hold (a NUL in a key, say) came in
        _abort_if_answering(request)
        return render(request, Unstorable(f"the request holds what cannot be stored: {exc}"))
    except (ConnectionResetError, ConnectionAbortedError):
        if _client_gone(request):
            return _client_closed(request)
        raise
    except Exception:
        log.exception("unhandled_error", method=request.method, path=request.path)
        _abort_if_answering(request)
        return render(request, errors.RegistryError("internal server error"), status=500)


class Unstorable(errors.RegistryError):
    code, status, default_message = "BAD_REQUEST", 400, "the request cannot be stored"


def _abort_if_answering(request: web.Request) -> None:
    """A failure after the response began (a storage read mid-blob) cannot be answered: a
    second response would land inside the first one's body. The connection is dropped, so
    the client sees a short body, not a corrupt one."""
    writer = request.writer
    if writer is not None and writer.output_size > 0:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("failed after the response began; connection dropped")


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _client_closed(request: web.Request) -> web.Response:
    """The client hung up mid-request (a PATCH cut short, say): nothing can be answered, and
    this is no server fault; the response only tells the access log (nginx's 499)."""
    log.info("client_disconnected", method=request.method, path=request.path)
    return web.Response(status=CLIENT_CLOSED_REQUEST, reason="Client Closed Request")


def protocol_error_body(status: int, message: str) -> dict[str, Any]:
    """The body for an error aiohttp answers before routing (a request line or header its
    parser refuses): the path is not known, so it carries both envelopes, OCI's ``errors``
    and the management API's ``error``."""
    code = "BAD_REQUEST" if status < 500 else "UNKNOWN"
    return {"errors": [{"code": code, "message": message}], **api_error_body(code, message)}


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
