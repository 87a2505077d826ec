"""The web UI's gate: every UI request is read with its session, every change is checked for
CSRF and origin, every failure becomes an HTML page, and every response carries the
browser-safety headers.

Which paths are the UI's is fixed here; the registry (``/v2``), the management API
(``/api``), ``/auth`` and the probes never pass through it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_request import FileField
from multidict import MultiDictProxy
from pymongo.errors import PyMongoError

from services.registry.keys import principal_key, settings_key
from services.registry.management.errors import ApiError, Forbidden, NotFound
from services.registry.ui import security
from services.registry.ui.render import page, signed_in_key
from services.registry.ui.sessions import BrowserSessions
from shared.oci import errors
from shared.storage.port import StorageError

log = structlog.get_logger("spacedock.ui")

SIGN_IN_PATH = "/sign-in"
STATIC_PREFIX = "/ui/static/"
_UI_PATHS = frozenset({"/", SIGN_IN_PATH, "/sign-out", "/spaces", "/users"})
_UI_PREFIXES = ("/spaces/", "/users/", "/ui/")
# Errors whose meaning is "there is nothing here for you": shown as the same 404 page, so a
# stranger cannot tell a space without a role from one that does not exist (as the API).
_NOT_FOUND = (
    NotFound,
    errors.NameUnknown,
    errors.NameInvalid,
    errors.ManifestUnknown,
    errors.BlobUnknown,
    errors.DigestInvalid,
)

sessions_key = web.AppKey("ui_sessions", BrowserSessions)
own_origins_key = web.AppKey("ui_own_origins", frozenset)


def is_ui_path(path: str) -> bool:
    return path in _UI_PATHS or path.startswith(_UI_PREFIXES)


@web.middleware
async def ui_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_ui_path(request.path) or request.path.startswith(STATIC_PREFIX):
        return await handler(request)
    try:
        return await _gate(request, handler)
    except _NOT_FOUND:
        return _error_page(request, 404, "Not found", "There is nothing here, or not for you.")
    except Forbidden as exc:
        return _error_page(request, 403, "Not allowed", exc.message)
    except ApiError as exc:
        return _error_page(request, exc.status, "Cannot do that", exc.message)
    except errors.RegistryError as exc:
        return _error_page(request, exc.status, "Cannot do that", exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_page(request, exc.status, exc.reason, "")
    except (PyMongoError, StorageError) as exc:
        log.warning("ui_dependency_unavailable", error=str(exc), kind=type(exc).__name__)
        return _error_page(request, 503, "Unavailable", "The registry cannot answer right now.")
    except Exception:
        log.exception("ui_unhandled_error", method=request.method, path=request.path)
        return _error_page(request, 500, "Something went wrong", "The error was logged.")


async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    signed_in = await request.app[sessions_key].resolve(
        request.cookies.get(security.SESSION_COOKIE)
    )
    if request.method == "POST" and not security.origin_allowed(
        request.headers.get("Origin"), own_origins(request)
    ):
        return _error_page(request, 403, "Not allowed", "This form came from another site.")
    if signed_in is not None:
        request[signed_in_key] = signed_in
        request[principal_key] = signed_in.principal
    if request.path == SIGN_IN_PATH:  # the sign-in form checks its own token
        return await handler(request)
    if signed_in is None:
        return sign_in_redirect(request)
    if request.method == "POST":
        given = security.text_field(
            await read_form(request), security.CSRF_FIELD, security.MAX_TOKEN_LENGTH
        )
        if not security.csrf_matches(signed_in.csrf_token, given):
            return _error_page(
                request, 403, "Not allowed", "The form is out of date; reload the page."
            )
    return await handler(request)


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """The posted form; a body that is no form (bytes that are not UTF-8, broken multipart)
    is the client's mistake: 400. Read once: handlers after the gate get it again from
    aiohttp's cache."""
    try:
        return await request.post()
    except (ValueError, LookupError) as exc:  # UnicodeDecodeError is a ValueError
        raise web.HTTPBadRequest(reason="Unreadable form") from exc


def own_origins(request: web.Request) -> frozenset[str]:
    """The registry's public origin, and the one this request was addressed to (what a
    browser that reached it directly, not through the public URL, sends)."""
    return request.app[own_origins_key] | {f"{request.scheme}://{request.host}".lower()}


def sign_in_redirect(request: web.Request) -> web.Response:
    """To the sign-in page, and back here after it (a change is not replayed: back to the
    page's own address only for reads)."""
    back = request.path_qs if request.method == "GET" else "/"
    target = SIGN_IN_PATH if back == "/" else f"{SIGN_IN_PATH}?{urlencode({'next': back})}"
    return see_other(target)


def see_other(location: str) -> web.Response:
    """Where to go after a form (303: the browser follows with a GET)."""
    return web.Response(status=303, headers={"Location": location})


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every UI response (pages, errors, redirects, static files)."""
    if not is_ui_path(request.path):
        return
    response.headers.update(security.SECURITY_HEADERS)
    if request.path.startswith(STATIC_PREFIX):
        response.headers["Cache-Control"] = "no-cache"
    else:
        response.headers["Cache-Control"] = "no-store"


def secure_cookies(request: web.Request) -> bool:
    return request.app[settings_key].public_url.startswith("https://")


def _error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return page(request, "error.html", status=status, title=title, message=message)
