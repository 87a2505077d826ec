"""The OpenAPI document of ``/api/v1`` (a test checks it against the routes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, schema: str | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _limit(maximum: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


SPACE_PARAM = {"name": "space", "in": "path", "required": True, "schema": {"type": "string"}}
COMMON_ERRORS = {"401": _error("no valid credentials"), "404": _error("no such space")}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Spacedock management API", "version": "1"},
    "components": {
        "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                            "detail": {},
                        },
                    }
                },
            },
            "Space": {
                "type": "object",
                "required": ["id", "name", "anonymous_pull"],
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "anonymous_pull": {"type": "boolean"},
                    "created_at": {"type": "string", "format": "date-time"},
                },
            },
            "SpaceInput": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "anonymous_pull": {"type": "boolean"},
                },
            },
            "SpaceList": {
                "type": "object",
                "properties": {
                    "spaces": {"type": "array", "items": {"$ref": "#/components/schemas/Space"}}
                },
            },
            "RepositoryPage": {
                "type": "object",
                "properties": {
                    "repositories": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "full_name": {"type": "string"},
                                "created_at": {"type": "string", "format": "date-time"},
                            },
                        },
                    },
                    "next_cursor": {"type": ["string", "null"]},
                },
            },
            "VersionList": {
                "type": "object",
                "properties": {
                    "repository": {"type": "string"},
                    "versions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "tag": {"type": "string"},
                                "prerelease": {"type": "boolean"},
                                "digest": {"type": "string"},
                                "size": {"type": "integer"},
                                "pushed_at": {"type": "string", "format": "date-time"},
                            },
                        },
                    },
                },
            },
        },
    },
    "security": [{"basic": []}],
    "paths": {
        "/api/v1/spaces": {
            "get": {
                "summary": "List spaces",
                "responses": {"200": _ok("the spaces", "SpaceList"), "401": COMMON_ERRORS["401"]},
            },
            "post": {
                "summary": "Create a space (next free spaces-N when id is absent)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/SpaceInput"}}
                    },
                },
                "responses": {
                    "201": _ok("created", "Space"),
                    "409": _error("id taken"),
                    "422": _error("invalid fields"),
                    "401": COMMON_ERRORS["401"],
                },
            },
        },
        "/api/v1/spaces/{space}": {
            "parameters": [SPACE_PARAM],
            "get": {
                "summary": "Read a space",
                "responses": {"200": _ok("the space", "Space"), **COMMON_ERRORS},
            },
            "patch": {
                "summary": "Rename a space or change anonymous pull",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/SpaceInput"}}
                    },
                },
                "responses": {
                    "200": _ok("the space", "Space"),
                    "422": _error("invalid fields"),
                    **COMMON_ERRORS,
                },
            },
            "delete": {
                "summary": "Delete an empty space",
                "responses": {
                    "204": _ok("deleted"),
                    "409": _error("default or not empty"),
                    **COMMON_ERRORS,
                },
            },
        },
        "/api/v1/spaces/{space}/repositories": {
            "parameters": [SPACE_PARAM],
            "get": {
                "summary": "The feed view: repositories, searched by name",
                "parameters": [
                    {"name": "q", "in": "query", "schema": {"type": "string"}},
                    _limit(500),
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _ok("a page of repositories", "RepositoryPage"),
                    **COMMON_ERRORS,
                },
            },
        },
        "/api/v1/spaces/{space}/repositories/{repository}/versions": {
            "parameters": [
                SPACE_PARAM,
                {
                    "name": "repository",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "may contain /",
                },
            ],
            "get": {
                "summary": "Tags as Octopus versions, newest first",
                "parameters": [
                    {"name": "prerelease", "in": "query", "schema": {"type": "boolean"}},
                    _limit(10_000),
                ],
                "responses": {"200": _ok("the versions", "VersionList"), **COMMON_ERRORS},
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _ok("the OpenAPI document")},
            },
        },
    },
}


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)
