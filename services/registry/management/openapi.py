"""The OpenAPI document of ``/api/v1``, built from the same operation table as the router
(``management.routes``), so the two cannot drift apart; a test checks it anyway."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.typedefs import Handler

from services.registry.identity import passwords
from services.registry.identity.access import MAX_BUILD_CREDENTIAL_SECONDS
from services.registry.management import spaces, users
from shared.build_requests import BUILD_ID_RE, MAX_VALUE_LENGTH, MAX_VARIABLES
from shared.oci.names import MAX_NAME_LENGTH, NAME_RE, SPACE_RE, TAG_RE
from shared.retention import MAX_PATTERN_LENGTH, MAX_RETAIN_DAYS

ERROR_DESCRIPTIONS = {
    400: "malformed request",
    401: "no valid credentials",
    403: "the caller's role is too low, or its credential cannot do this",
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
    also_ok: tuple[int, ...] = ()  # other success statuses, with the same schema
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
        success["content"] = {media_type: {"schema": binary} for media_type in PACKAGE_TYPES}
    elif schema == "html":
        success["content"] = {"text/html": {"schema": {"type": "string"}}}
    elif schema is not None:
        success["content"] = _json(schema)
    responses: dict[str, Any] = {str(code): success for code in sorted({status, *op.also_ok})}
    codes = set(op.errors) | ({400} if op.query or op.body else set())
    if not op.public:
        codes |= {401, 403}  # 403: a token without the scope, wherever the role would do
    for code in sorted(codes):
        responses[str(code)] = {"description": ERROR_DESCRIPTIONS[code], "content": _json("Error")}
    document: dict[str, Any] = {"summary": op.summary, "responses": responses}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in re.findall(r"{(\w+)}", op.path)
    ] + list(op.query)
    if parameters:
        document["parameters"] = parameters
    if op.body is not None:
        # A missing JSON body reads as {}: it may be left out where no field is required.
        required = bool(SCHEMAS[op.body].get("required"))
        document["requestBody"] = {"required": required, "content": _body_content(op.body)}
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


def _input(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    """An object the server takes only these fields of: any other is a 422."""
    return {**_object(required, **properties), "additionalProperties": False}


def _list(key: str, item: str) -> dict[str, Any]:
    return _object([key], **{key: {"type": "array", "items": _ref(item)}})


def _matching(regex: re.Pattern[str], max_length: int, description: str = "") -> dict[str, Any]:
    """A string the server's ``regex.fullmatch`` accepts, as an anchored JSON Schema pattern."""
    pattern = regex.pattern.removeprefix("^").removesuffix("$")
    schema: dict[str, Any] = {
        "type": "string",
        "pattern": f"^(?:{pattern})$",
        "minLength": 1,
        "maxLength": max_length,
    }
    if description:
        schema["description"] = description
    return schema


def _count(maximum: int = 1_000_000) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "maximum": maximum}


STRING = {"type": "string"}
BOOLEAN = {"type": "boolean"}
INTEGER = {"type": "integer"}
TIME = {"type": "string", "format": "date-time"}
ROLE = {"type": "string", "enum": ["reader", "writer", "admin"]}
BUILD_STATUS = {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]}
PACKAGE_TYPES = ("application/zip", "application/gzip")

SPACE_ID = _matching(
    SPACE_RE, spaces.MAX_ID_LENGTH, "lowercase letters and digits joined by single dashes"
)
USERNAME = _matching(
    users.USERNAME_RE,
    63,
    "lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
)
TAG = _matching(TAG_RE, 128)
# A repository inside a space: the name without its first component.
REPOSITORY = _matching(NAME_RE, MAX_NAME_LENGTH - 2, "the repository's name inside the space")
BUILD_ID = _matching(BUILD_ID_RE, 128)
PASSWORD = {"type": "string", "minLength": passwords.MIN_LENGTH, "maxLength": passwords.MAX_LENGTH}
# A variable's value: a string; a number, boolean or null is taken as its text.
VARIABLE = {"type": ["string", "number", "boolean", "null"], "maxLength": MAX_VALUE_LENGTH}
VARIABLES = {
    "type": "object",
    "maxProperties": MAX_VARIABLES,
    "propertyNames": {"minLength": 1},
    "additionalProperties": VARIABLE,
}
SPACE_NAME = {"type": "string", "maxLength": spaces.MAX_NAME_LENGTH, "pattern": r"\S"}
TEXT = {"type": ["string", "number"], "pattern": r"\S", "description": "not blank"}

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "space": {**SPACE_ID, "examples": ["spaces-1"]},
    "repository": {**REPOSITORY, "examples": ["mywebapp"]},
    "tag": {**TAG, "examples": ["1.0.0"]},
    "username": {**USERNAME, "examples": ["admin"]},
    "build_id": BUILD_ID,
    "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
    "id": {
        "type": "string",
        "minLength": 1,
        "description": "a package id",
        "examples": ["mywebapp"],
    },
    "version": {**TAG, "examples": ["1.0.0"]},
}

RETENTION_SECTIONS = {
    "deployment_tags": _input(
        pattern={
            "type": "string",
            "format": "regex",
            "minLength": 1,
            "maxLength": MAX_PATTERN_LENGTH,
            "description": "a regular expression: tags it finds are deployment tags",
        },
        retain_days=_count(MAX_RETAIN_DAYS),
        keep_last=_count(),
    ),
    "untagged_manifests": _input(retain_hours=_count()),
    "gc": _input(grace_minutes=_count()),
}

SCHEMAS: dict[str, Any] = {
    "Error": _object(
        ["error"],
        error=_object(["code", "message"], code=STRING, message=STRING, detail={}),
    ),
    "Space": _object(
        ["id", "name", "anonymous_pull"],
        id=SPACE_ID,
        name=STRING,
        anonymous_pull=BOOLEAN,
        created_at=TIME,
    ),
    "SpaceInput": _input(
        ["name"],
        id={
            "oneOf": [SPACE_ID, {"type": "null"}],
            "description": "the next free spaces-N when absent or null",
        },
        name=SPACE_NAME,
        anonymous_pull=BOOLEAN,
    ),
    "SpaceUpdate": _input(
        name=SPACE_NAME,
        anonymous_pull=BOOLEAN,
    ),
    "SpaceList": _list("spaces", "Space"),
    "Repository": _object(
        ["name", "full_name", "created_at"], name=STRING, full_name=STRING, created_at=TIME
    ),
    "RepositoryPage": _object(
        ["repositories", "next_cursor"],
        repositories={"type": "array", "items": _ref("Repository")},
        next_cursor={"type": ["string", "null"]},
    ),
    "Version": _object(
        ["tag", "prerelease", "digest", "size", "pushed_at"],
        tag=STRING,
        prerelease=BOOLEAN,
        digest=STRING,
        size=INTEGER,
        pushed_at=TIME,
    ),
    "VersionList": _object(
        ["repository", "versions", "next_cursor"],
        repository=STRING,
        versions={"type": "array", "items": _ref("Version")},
        next_cursor={"type": ["string", "null"]},
    ),
    "User": _object(
        ["username", "superuser"],
        username=STRING,
        superuser=BOOLEAN,
        service={"type": ["string", "null"]},
        global_role={"type": ["string", "null"], "enum": [*ROLE["enum"], None]},
        created_at=TIME,
        memberships={
            "type": "array",
            "items": _object(["space", "role"], space=STRING, role=ROLE),
        },
    ),
    "UserInput": _input(
        ["username", "password"], username=USERNAME, password=PASSWORD, superuser=BOOLEAN
    ),
    "UserUpdate": _input(["password"], password=PASSWORD),
    "UserList": _list("users", "User"),
    "ApiKey": _object(["id", "name", "created_at"], id=STRING, name=STRING, created_at=TIME),
    "ApiKeyCreated": _object(
        ["id", "name", "key"],
        id=STRING,
        name=STRING,
        created_at=TIME,
        key={"type": "string", "description": "shown only in this response"},
    ),
    "ApiKeyInput": _input(name={"type": "string", "maxLength": users.MAX_KEY_NAME}),
    "ApiKeyList": _list("api_keys", "ApiKey"),
    "Member": _object(["username", "role"], space=STRING, username=STRING, role=ROLE),
    "MemberInput": _input(["role"], role=ROLE),
    "MemberList": _object(
        ["space", "members"], space=STRING, members={"type": "array", "items": _ref("Member")}
    ),
    "BuildRequest": _input(
        ["sdi", "deployment"],
        build_id={**BUILD_ID, "description": "a new one when absent"},
        space={**SPACE_ID, "description": "the path's space, when given"},
        sdi=_input(["id", "version"], id=TEXT, version=TEXT),
        image=_input(repository=REPOSITORY, tag=TAG),
        deployment={
            **_object(["id"], id=TEXT),
            "description": "the deployment the image is for; its id is the default tag's suffix",
        },
        variables=VARIABLES,
        sensitive_variables=VARIABLES,
        packages=VARIABLES,
        platform={"type": "string", "pattern": "^[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?$"},
        build_args=VARIABLES,
        strategy={"type": "string", "enum": ["auto", "assembled", "docker"]},
    ),
    "BuildCredentialInput": _input(
        ttl_seconds={"type": "integer", "minimum": 1, "maximum": MAX_BUILD_CREDENTIAL_SECONDS}
    ),
    "BuildCredential": _object(
        ["username", "password", "space", "expires_in"],
        username=STRING,
        password={"type": "string", "description": "shown only in this response"},
        space=STRING,
        expires_in=INTEGER,
    ),
    "BuildAccepted": _object(["build_id", "status"], build_id=STRING, status=BUILD_STATUS),
    "Build": _object(
        ["build_id", "space", "status"],
        build_id=STRING,
        space=STRING,
        status=BUILD_STATUS,
        created_at={"type": ["string", "null"], "format": "date-time"},
        started_at={"type": ["string", "null"], "format": "date-time"},
        finished_at={"type": ["string", "null"], "format": "date-time"},
        result={"type": ["object", "null"]},
        error={"type": ["object", "null"]},
        request={"type": ["object", "null"]},
    ),
    "BuildPage": _object(
        ["builds", "next_cursor"],
        builds={"type": "array", "items": _ref("Build")},
        next_cursor={"type": ["string", "null"]},
    ),
    "BuildLogs": _object(
        ["build_id", "status", "logs"],
        build_id=STRING,
        status=BUILD_STATUS,
        logs={"type": "array", "items": STRING},
    ),
    "RetentionPolicyInput": _input(None, **RETENTION_SECTIONS),
    "RetentionPolicy": _object(
        ["space", "deployment_tags", "untagged_manifests", "gc"],
        space=STRING,
        **RETENTION_SECTIONS,
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
