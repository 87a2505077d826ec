"""The web UI: server-rendered pages on the management API's domain models.

``setup(app)`` mounts it on the registry application. Pages call the models directly
(``services.registry.{spaces,feed,registry,retention}``) and check roles with the management
API's own guard, so the UI allows exactly what the API allows. The gate
(``middleware.ui_pages``) reads the session, checks CSRF and origin on every change and turns
failures into HTML; templates escape everything they show.
"""

from __future__ import annotations

from aiohttp import web

from services.registry.keys import access_key, metadata_key, settings_key
from services.registry.ui import (
    admin,
    builds,
    manifests,
    repositories,
    retention,
    sign_in,
    spaces,
)
from services.registry.ui.middleware import (
    SIGN_IN_PATH,
    STATIC_PREFIX,
    own_origins_key,
    security_headers,
    sessions_key,
    ui_pages,
)
from services.registry.ui.render import TEMPLATES, environment, templates_key
from services.registry.ui.security import origin_of
from services.registry.ui.sessions import BrowserSessions, Lifetimes

STATIC = TEMPLATES.parent / "static"
SPACE = "/spaces/{space}"
# Repository names hold slashes; a digest never does, and always holds a colon, which no
# repository name component may, so the manifest route cannot swallow a repository path.
REPOSITORY = SPACE + "/repositories/{repository:[^{}]+?}"
MANIFEST = REPOSITORY + "/manifests/{digest:[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+}"


def setup(app: web.Application) -> None:
    """Add the UI's routes, gate, headers and resources to the registry ``app``."""
    app.middlewares.append(ui_pages)
    app.on_response_prepare.append(security_headers)
    app[templates_key] = environment()
    app[own_origins_key] = frozenset({origin_of(app[settings_key].public_url)})
    app.on_startup.append(_open_sessions)
    router = app.router
    router.add_get("/", spaces.home)
    router.add_get(SIGN_IN_PATH, sign_in.sign_in_form)
    router.add_post(SIGN_IN_PATH, sign_in.sign_in)
    router.add_post("/sign-out", sign_in.sign_out)
    router.add_get(SPACE, spaces.space_page)
    router.add_post(f"{SPACE}/pin", repositories.pin)
    router.add_post(f"{SPACE}/unpin", repositories.unpin)
    router.add_get(MANIFEST, manifests.manifest_page)
    router.add_get(REPOSITORY, repositories.repository_page)
    retention.add_routes(router, SPACE)
    admin.add_routes(app, SPACE)
    builds.add_routes(router)
    router.add_static(STATIC_PREFIX.rstrip("/"), STATIC)


async def _open_sessions(app: web.Application) -> None:
    """After the registry's resources are open (``cleanup_ctx`` runs first)."""
    app[sessions_key] = BrowserSessions(app[metadata_key].sessions, app[access_key], Lifetimes())
