"""Every ``/api/v1`` operation in one table: the router and the OpenAPI document both come
from it."""

from __future__ import annotations

from aiohttp import web

from services.registry.management import (
    build_credentials,
    builds,
    docs,
    feed,
    members,
    packages,
    retention,
    spaces,
    users,
)
from services.registry.management.openapi import (
    BUILD_STATUS,
    Operation,
    build_document,
    limit_param,
    query_param,
)

OPENAPI_PATH = "/api/v1/openapi.json"
SPACE = "/api/v1/spaces/{space}"
USER = "/api/v1/users/{username}"
ANY_DEPTH = {"repository": ".+"}


async def openapi_document(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "GET", OPENAPI_PATH, openapi_document, "This document", (200, None), public=True
    ),
    Operation("GET", docs.DOCS_PATH, docs.docs_page, "This document as a page for people",
              (200, "html"), public=True),
    # spaces
    Operation("GET", "/api/v1/spaces", spaces.list_spaces, "Spaces the caller has a role in",
              (200, "SpaceList")),
    Operation("POST", "/api/v1/spaces", spaces.create_space,
              "Create a space (next free spaces-N when id is absent); superusers",
              (201, "Space"), body="SpaceInput", errors=(403, 409, 422)),
    Operation("GET", SPACE, spaces.get_space, "Read a space (reader)", (200, "Space"),
              errors=(404,)),
    Operation("PATCH", SPACE, spaces.update_space,
              "Rename a space or change anonymous pull (admin)", (200, "Space"),
              body="SpaceUpdate", errors=(403, 404, 422)),
    Operation("DELETE", SPACE, spaces.delete_space,
              "Delete an empty space other than the default; superusers", (204, None),
              errors=(403, 404, 409)),
    # the feed view
    Operation("GET", f"{SPACE}/repositories", feed.list_repositories,
              "The feed view: repositories, searched by name (reader)", (200, "RepositoryPage"),
              query=(query_param("q", {"type": "string"}, "case-insensitive substring"),
                     limit_param(500), query_param("cursor", {"type": "string"})),
              errors=(404,)),
    Operation("GET", f"{SPACE}/repositories/{{repository}}/versions", feed.list_versions,
              "Tags as Octopus versions, newest first (reader)", (200, "VersionList"),
              query=(query_param("prerelease", {"type": "boolean"}), limit_param(10_000),
                     query_param("cursor", {"type": "string"}, "next_cursor of the page before")),
              errors=(404,), path_patterns=ANY_DEPTH),
    # packages
    Operation("POST", f"{SPACE}/packages", packages.upload_package,
              "Upload <id>.<version>.<zip|tar.gz|tgz>, stored as an OCI artifact in "
              "<space>/packages/<id>:<version> (writer)", (201, "Package"),
              body="PackageUpload",
              query=(query_param("replace", {"type": "boolean"},
                                 "replace an existing version (409 PACKAGE_EXISTS otherwise)"),),
              errors=(403, 404, 409, 422)),
    Operation("GET", f"{SPACE}/packages/{{id}}/versions", packages.list_package_versions,
              "A package's versions in Octopus order, newest first (reader)",
              (200, "VersionList"),
              query=(query_param("prerelease", {"type": "boolean"}), limit_param(10_000),
                     query_param("cursor", {"type": "string"}, "next_cursor of the page before")),
              errors=(404,)),
    Operation("GET", f"{SPACE}/packages/{{id}}/{{version}}", packages.download_package,
              "Download a package file (reader)", (200, "binary"), errors=(404, 409)),
    # builds
    Operation("GET", f"{SPACE}/builds", builds.list_builds,
              "The space's builds, newest first (reader)", (200, "BuildPage"),
              query=(query_param("status", BUILD_STATUS, "only builds with this status"),
                     limit_param(builds.MAX_PAGE),
                     query_param("cursor", {"type": "string"},
                                 "the next_cursor of the previous page")),
              errors=(404,)),
    Operation("POST", f"{SPACE}/builds", builds.create_build,
              "Request a Source Docker Image build (writer); a known build_id returns that "
              "build when the inputs are the same, and is a 409 (BUILD_ID_TAKEN) otherwise",
              (202, "BuildAccepted"), body="BuildRequest", errors=(403, 404, 409, 422, 503)),
    Operation("GET", f"{SPACE}/builds/{{build_id}}", builds.get_build,
              "A build's status, timestamps, result and error (reader)", (200, "Build"),
              errors=(404,)),
    Operation("GET", f"{SPACE}/builds/{{build_id}}/logs", builds.get_build_logs,
              "A build's log lines (reader)", (200, "BuildLogs"), errors=(404,)),
    Operation("DELETE", f"{SPACE}/builds/{{build_id}}", builds.cancel_build,
              "Cancel a queued or running build (writer)", (202, "BuildAccepted"),
              errors=(403, 404, 409)),
    Operation("POST", f"{SPACE}/build-credentials", build_credentials.create_build_credential,
              "A password for one build, confined to this space (the builder's service "
              "account only)", (201, "BuildCredential"), body="BuildCredentialInput",
              errors=(403, 404, 422)),
    # retention
    Operation("GET", f"{SPACE}/retention", retention.get_retention,
              "The space's retention policy (reader); defaults when none was set",
              (200, "RetentionPolicy"), errors=(404,)),
    Operation("PUT", f"{SPACE}/retention", retention.put_retention,
              "Set the retention policy (admin); missing fields take their defaults",
              (200, "RetentionPolicy"), body="RetentionPolicyInput", errors=(403, 404, 422)),
    Operation("POST", f"{SPACE}/retention/run", retention.run_retention_now,
              "Apply the policy now, or with dry_run=true say what would go (admin)",
              (200, "RetentionRun"),
              query=(query_param("dry_run", {"type": "boolean"}),), errors=(403, 404)),
    Operation("PUT", f"{SPACE}/repositories/{{repository}}/tags/{{tag}}/pin", retention.pin_tag,
              "Pin a tag: retention never removes it (writer); 200 when it already was",
              (201, "Pin"), also_ok=(200,), errors=(400, 403, 404), path_patterns=ANY_DEPTH),
    Operation("DELETE", f"{SPACE}/repositories/{{repository}}/tags/{{tag}}/pin",
              retention.unpin_tag, "Unpin a tag (admin)", (204, None), errors=(400, 403, 404),
              path_patterns=ANY_DEPTH),
    # members
    Operation("GET", f"{SPACE}/members", members.list_members, "Members and roles (admin)",
              (200, "MemberList"), errors=(403, 404)),
    Operation("PUT", f"{SPACE}/members/{{username}}", members.put_member,
              "Give a user a role in the space (admin); 201 when the user had none",
              (200, "Member"), also_ok=(201,), body="MemberInput", errors=(403, 404, 422)),
    Operation("DELETE", f"{SPACE}/members/{{username}}", members.delete_member,
              "Take a user's role in the space away (admin)", (204, None), errors=(403, 404)),
    # users and API keys
    Operation("GET", "/api/v1/users", users.list_users, "Every account; superusers",
              (200, "UserList"), errors=(403,)),
    Operation("POST", "/api/v1/users", users.create_user, "Create a user; superusers",
              (201, "User"), body="UserInput", errors=(403, 409, 422)),
    Operation("GET", USER, users.get_user, "Read an account and its roles (self or superuser)",
              (200, "User"), errors=(404,)),
    Operation("PATCH", USER, users.update_user,
              "Change the password (self or superuser, with the password); ends the old "
              "one's tokens; a service account has none (409)",
              (200, "User"), body="UserUpdate", errors=(403, 404, 409, 422)),
    Operation("DELETE", USER, users.delete_user, "Delete a user and its keys; superusers",
              (204, None), errors=(403, 404, 409)),
    Operation("GET", f"{USER}/api-keys", users.list_api_keys,
              "The account's API keys, without secrets (self or superuser)",
              (200, "ApiKeyList"), errors=(404,)),
    Operation("POST", f"{USER}/api-keys", users.create_api_key,
              "Create an API key, shown once (self or superuser, with the password); the "
              "body and its name are optional", (201, "ApiKeyCreated"),
              body="ApiKeyInput", errors=(403, 404, 409, 422)),
    Operation("DELETE", f"{USER}/api-keys/{{key_id}}", users.delete_api_key,
              "Revoke an API key (self or superuser); a service account's key is its "
              "service's setting (409)", (204, None), errors=(403, 404, 409)),
)  # fmt: skip

DOCUMENT = build_document(OPERATIONS)


def add_routes(router: web.UrlDispatcher) -> None:
    for op in OPERATIONS:
        router.add_route(op.method, op.route_path, op.handler)
