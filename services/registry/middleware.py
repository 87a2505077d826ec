"""The two middlewares: one line per request (log and metrics), and OCI error rendering."""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from services.registry.keys import auth_key, metrics_key
from shared.oci import errors
from shared.storage.port import StorageError

log = structlog.get_logger("spacedock.registry")


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        return response
    finally:
        elapsed = time.perf_counter() - started
        status = response.status if response is not None else 500
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        bytes_in = request.content.total_bytes
        bytes_out = response.body_length if response is not None else 0
        metrics = request.app[metrics_key]
        metrics.requests.labels(route_name, request.method, str(status)).inc()
        metrics.latency.labels(route_name, request.method).observe(elapsed)
        if bytes_in:
            metrics.bytes_in.inc(bytes_in)
        if bytes_out:
            metrics.bytes_out.inc(bytes_out)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=status,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            duration_ms=round(elapsed * 1000, 2),
            repository=request.match_info.get("name"),
        )


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
