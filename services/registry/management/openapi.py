"""The OpenAPI document of ``/api/v1``, built from the same operation table as the router
(``management.routes``), so the two cannot drift apart; a test checks it anyway."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.typedefs import Handler

ERROR_DESCRIPTIONS = {
    400: "malformed request",
    401: "no valid credentials",
    403: "the caller's role is too low",
    404: "not found, or not visible to the caller",
    409: "conflicts with the current state",
    422: "invalid fields",
    503: "the server is not configured for this (the message says what is missing)",
}


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # as OpenAPI writes it: /api/v1/spaces/{space}
    handler: Handler
    summary: str
    ok: tuple[int, str | None]  # success status and response schema
    body: str | None = None  # request schema
    query: tuple[dict[str, Any], ...] = ()
    errors: tuple[int, ...] = ()
    public: bool = False
    path_patterns: dict[str, str] = field(default_factory=dict)  # {name: regex} for the router

    @property
    def route_path(self) -> str:
        path = self.path
        for name, pattern in self.path_patterns.items():
            path = path.replace(f"{{{name}}}", f"{{{name}:{pattern}}}")
        return path


def query_param(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "schema": schema}
    if description:
        param["description"] = description
    return param


def limit_param(maximum: int) -> dict[str, Any]:
    return query_param("limit", {"type": "integer", "minimum": 1, "maximum": maximum})


def _ref(schema: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{schema}"}


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(schema)}}


def _operation(op: Operation) -> dict[str, Any]:
    status, schema = op.ok
    success: dict[str, Any] = {"description": "success"}
    if schema == "binary":
        binary = {"type": "string", "format": "binary"}
        success["content"] = {"application/octet-stream": {"schema": binary}}
    elif schema is not None:
        success["content"] = _json(schema)
    responses: dict[str, Any] = {str(status): success}
    codes = set(op.errors) | ({400} if op.query or op.body else set())
    if not op.public:
        codes.add(401)
    for code in sorted(codes):
        responses[str(code)] = {"description": ERROR_DESCRIPTIONS[code], "content": _json("Error")}
    document: dict[str, Any] = {"summary": op.summary, "responses": responses}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ] + list(op.query)
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        document["requestBody"] = {"required": True, "content": _body_content(op.body)}
    if op.public:
        document["security"] = []
    return document


def _body_content(schema: str) -> dict[str, Any]:
    if schema == "PackageUpload":
        return {"multipart/form-data": {"schema": _ref(schema)}}
    return _json(schema)


def build_document(operations: Iterable[Operation]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Spacedock management API", "version": "1"},
        "components": {
            "securitySchemes": {
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "a username with its password or one of its API keys",
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a token from /auth/token",
                },
            },
            "schemas": SCHEMAS,
        },
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
    }


def _object(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _input(**properties: Any) -> dict[str, Any]:
    return {**_object(**properties), "additionalProperties": False}


def _list(key: str, item: str) -> dict[str, Any]:
    return _object([key], **{key: {"type": "array", "items": _ref(item)}})


STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
INTEGER = {"type": "integer"}
TIME = {"type": "string", "format": "date-time"}
ROLE = {"type": "string", "enum": ["reader", "writer", "admin"]}

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        ["error"],
        error=_object(["code", "message"], code=STRING, message=STRING, detail={}),
    ),
    "Space": _object(
        ["id", "name", "anonymous_pull"],
        id=STRING,
        name=STRING,
        anonymous_pull=BOOLEAN,
        created_at=TIME,
    ),
    "SpaceInput": _input(id=STRING, name=STRING, anonymous_pull=BOOLEAN),
    "SpaceList": _list("spaces", "Space"),
    "Repository": _object(name=STRING, full_name=STRING, created_at=TIME),
    "RepositoryPage": _object(
        ["repositories"],
        repositories={"type": "array", "items": _ref("Repository")},
        next_cursor={"type": ["string", "null"]},
    ),
    "Version": _object(tag=STRING, prerelease=BOOLEAN, digest=STRING, size=INTEGER, pushed_at=TIME),
    "VersionList": _object(repository=STRING, versions={"type": "array", "items": _ref("Version")}),
    "User": _object(
        ["username"],
        username=STRING,
        superuser=BOOLEAN,
        service={"type": ["string", "null"]},
        global_role={"type": ["string", "null"]},
        created_at=TIME,
        memberships={
            "type": "array",
            "items": _object(space=STRING, role=ROLE),
        },
    ),
    "UserInput": _input(username=STRING, password=STRING, superuser=BOOLEAN),
    "UserUpdate": _input(password=STRING),
    "UserList": _list("users", "User"),
    "ApiKey": _object(["id", "name"], id=STRING, name=STRING, created_at=TIME),
    "ApiKeyCreated": _object(
        ["id", "key"],
        id=STRING,
        name=STRING,
        created_at=TIME,
        key={"type": "string", "description": "shown only in this response"},
    ),
    "ApiKeyInput": _input(name=STRING),
    "ApiKeyList": _list("api_keys", "ApiKey"),
    "Member": _object(["username", "role"], space=STRING, username=STRING, role=ROLE),
    "MemberInput": _input(role=ROLE),
    "MemberList": _object(space=STRING, members={"type": "array", "items": _ref("Member")}),
    "BuildRequest": _object(
        ["sdi"],
        build_id=STRING,
        space=STRING,
        sdi=_object(["id", "version"], id=STRING, version=STRING),
        image=_object(repository=STRING, tag=STRING),
        deployment={"type": "object"},
        variables={"type": "object", "additionalProperties": STRING},
        sensitive_variables={"type": "object", "additionalProperties": STRING},
        packages={"type": "object", "additionalProperties": STRING},
        platform=STRING,
        build_args={"type": "object", "additionalProperties": STRING},
        strategy={"type": "string", "enum": ["auto", "assembled", "docker"]},
    ),
    "BuildCredentialInput": _input(ttl_seconds=INTEGER),
    "BuildCredential": _object(
        ["username", "password", "space", "expires_in"],
        username=STRING,
        password={"type": "string", "description": "shown only in this response"},
        space=STRING,
        expires_in=INTEGER,
    ),
    "BuildAccepted": _object(["build_id", "status"], build_id=STRING, status=STRING),
    "Build": _object(
        ["build_id", "status"],
        build_id=STRING,
        space=STRING,
        status={
            "type": "string",
            "enum": ["queued", "running", "succeeded", "failed", "cancelled"],
        },
        created_at=TIME,
        started_at={"type": ["string", "null"], "format": "date-time"},
        finished_at={"type": ["string", "null"], "format": "date-time"},
        result={"type": ["object", "null"]},
        error={"type": ["object", "null"]},
        request={"type": "object"},
    ),
    "BuildLogs": _object(
        ["build_id", "logs"],
        build_id=STRING,
        status=STRING,
        logs={"type": "array", "items": STRING},
    ),
    "RetentionPolicyInput": _input(
        deployment_tags=_object(pattern=STRING, retain_days=INTEGER, keep_last=INTEGER),
        untagged_manifests=_object(retain_hours=INTEGER),
        gc=_object(grace_minutes=INTEGER),
    ),
    "RetentionPolicy": _object(
        ["deployment_tags", "untagged_manifests", "gc"],
        space=STRING,
        deployment_tags=_object(pattern=STRING, retain_days=INTEGER, keep_last=INTEGER),
        untagged_manifests=_object(retain_hours=INTEGER),
        gc=_object(grace_minutes=INTEGER),
    ),
    "RetentionRun": _object(
        ["dry_run", "removed", "manifests_removed", "blobs_removed", "bytes_freed"],
        space=STRING,
        dry_run=BOOLEAN,
        removed={"type": "array", "items": _object(repository=STRING, tag=STRING, digest=STRING)},
        manifests_removed=INTEGER,
        manifests={"type": "array", "items": _object(repository=STRING, digest=STRING)},
        blobs_removed=INTEGER,
        bytes_freed=INTEGER,
    ),
    "Pin": _object(
        ["repository", "tag", "pinned"],
        repository=STRING,
        tag=STRING,
        pinned=BOOLEAN,
        pinned_by={"type": ["string", "null"]},
        pinned_at=TIME,
    ),
    "PackageUpload": _object(
        ["file"],
        file={
            "type": "string",
            "format": "binary",
            "description": "named <id>.<version>.<zip|tar.gz|tgz>",
        },
    ),
    "Package": _object(
        ["id", "version", "repository", "tag", "digest"],
        id=STRING,
        version=STRING,
        repository=STRING,
        tag=STRING,
        digest=STRING,
        size=INTEGER,
        reference=STRING,
    ),
}
