"""The management API's OpenAPI document describes exactly the routes the app serves."""

from __future__ import annotations

from services.registry.app import create_app
from services.registry.management.routes import DOCUMENT
from shared.settings import Settings

METHODS = ("get", "post", "put", "patch", "delete")


def test_openapi_paths_and_methods_are_the_served_routes() -> None:
    """Every /api/v1 route and method is documented, and every documented one is served."""
    app = create_app(Settings.from_env({}))  # builds the router; opens nothing until startup
    served = {
        (route.resource.canonical, route.method)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1")
        and route.method != "HEAD"  # added by aiohttp for each GET
    }
    documented = {
        (path, method.upper())
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in METHODS
    }
    assert served and documented == served


def test_every_operation_documents_its_responses() -> None:
    """Each operation has a summary and at least one success response."""
    for path, item in DOCUMENT["paths"].items():
        for method in METHODS:
            if method in item:
                operation = item[method]
                assert operation["summary"], (path, method)
                assert any(code.startswith("2") for code in operation["responses"]), (path, method)
