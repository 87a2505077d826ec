"""The ``spacedock`` admin verbs: the management API from a terminal.

Credentials: ``--user`` (default ``$SPACEDOCK_USERNAME`` or ``admin``) with
``$SPACEDOCK_PASSWORD`` (a password or an API key); for ``admin`` on the machine that runs
``make run``, the generated password in the data dir is used when nothing else is given.
Output is the API's JSON; a failure prints the API's message and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from shared.settings import Settings

PASSWORD_FILE = "admin-password"


class AdminError(Exception):
    pass


def add_verbs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the admin verbs on the ``spacedock`` parser."""
    spaces = _group(commands, "spaces", "list, create, show, change and delete spaces")
    _verb(spaces, "list", _spaces_list)
    create = _verb(spaces, "create", _spaces_create)
    create.add_argument("name")
    create.add_argument("--id", help="e.g. spaces-7; the next free spaces-N when absent")
    create.add_argument("--anonymous-pull", action="store_true")
    _verb(spaces, "show", _spaces_show).add_argument("space")
    update = _verb(spaces, "update", _spaces_update)
    update.add_argument("space")
    update.add_argument("--name")
    update.add_argument("--anonymous-pull", choices=["true", "false"])
    _verb(spaces, "delete", _spaces_delete).add_argument("space")

    users = _group(commands, "users", "accounts")
    _verb(users, "list", _users_list)
    user_create = _verb(users, "create", _users_create)
    user_create.add_argument("username")
    user_create.add_argument("--superuser", action="store_true")
    _verb(users, "show", _users_show).add_argument("username")
    _verb(users, "passwd", _users_passwd).add_argument("username")
    _verb(users, "delete", _users_delete).add_argument("username")

    keys = _group(commands, "keys", "API keys (a new key is shown once)")
    _verb(keys, "list", _keys_list).add_argument("username")
    key_create = _verb(keys, "create", _keys_create)
    key_create.add_argument("username")
    key_create.add_argument("--name", default="")
    key_revoke = _verb(keys, "revoke", _keys_revoke)
    key_revoke.add_argument("username")
    key_revoke.add_argument("key_id")

    feed = _group(commands, "feed", "the feed view: repositories and versions")
    repositories = _verb(feed, "repositories", _feed_repositories)
    repositories.add_argument("space")
    repositories.add_argument("-q", "--query", help="case-insensitive part of the name")
    versions = _verb(feed, "versions", _feed_versions)
    versions.add_argument("space")
    versions.add_argument("repository", help="the name inside the space, e.g. mywebapp")
    versions.add_argument("--no-prerelease", action="store_true")

    package = _group(commands, "package", "packages in a space's feed")
    push = _verb(package, "push", _package_push)
    push.add_argument("space")
    push.add_argument("file", help="<id>.<version>.<zip|tar.gz|tgz>")
    push.add_argument("--replace", action="store_true", help="replace an existing version")

    builds = _group(commands, "builds", "Source Docker Image builds")
    start = _verb(builds, "start", _builds_start)
    start.add_argument("space")
    start.add_argument("sdi", help="<id>:<version> of the SDI package")
    start.add_argument("--deployment", required=True, help="e.g. deployments-75")
    start.add_argument("--environment", required=True)
    start.add_argument("--project")
    start.add_argument("--release")
    start.add_argument("--tenant")
    start.add_argument("--repository", help="default: the SDI id")
    start.add_argument("--tag", help="default: <sdi version>-<deployment>")
    start.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    start.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE")
    start.add_argument("--package", action="append", default=[], metavar="ID=VERSION")
    start.add_argument("--strategy", choices=["auto", "assembled", "docker"], default="auto")
    start.add_argument("--build-id")
    start.add_argument("--wait", action="store_true", help="until the build has finished")
    for name, run_verb in (
        ("show", _builds_show),
        ("logs", _builds_logs),
        ("cancel", _builds_cancel),
    ):
        verb = _verb(builds, name, run_verb)
        verb.add_argument("space")
        verb.add_argument("build_id")

    members = _group(commands, "members", "roles in a space")
    _verb(members, "list", _members_list).add_argument("space")
    member_set = _verb(members, "set", _members_set)
    member_set.add_argument("space")
    member_set.add_argument("username")
    member_set.add_argument("role", choices=["reader", "writer", "admin"])
    member_remove = _verb(members, "remove", _members_remove)
    member_remove.add_argument("space")
    member_remove.add_argument("username")


def _group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser = commands.add_parser(name, help=help_text)
    return parser.add_subparsers(dest="verb", required=True)


Verb = Callable[["Api", argparse.Namespace], Any]


def _verb(
    group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, run: Verb
) -> argparse.ArgumentParser:
    parser = group.add_parser(name)
    parser.add_argument("--url", help="the registry (default: $SPACEDOCK_REGISTRY_URL)")
    parser.add_argument("--user", default=os.environ.get("SPACEDOCK_USERNAME") or "admin")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, settings: Settings) -> int:
    api = Api(args.url or settings.registry_url, args.user, _secret(args.user, settings))
    try:
        result = args.run(api, args)
    except AdminError as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def _secret(user: str, settings: Settings) -> str:
    secret = os.environ.get("SPACEDOCK_PASSWORD")
    if secret:
        return secret
    if user == "admin":
        if settings.admin_password:
            return settings.admin_password
        path = settings.data_dir / PASSWORD_FILE
        if path.exists():
            return path.read_text().strip()
    return getpass.getpass(f"password or API key of {user}: ")


class Api:
    def __init__(self, url: str, user: str, secret: str) -> None:
        self.base = url.rstrip("/") + "/api/v1"
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._send(method, path, data, headers, suffix)

    def upload(self, path: str, file: Path, query: dict[str, str]) -> Any:
        """POST ``file`` as the multipart field ``file``, streamed from disk."""
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{file.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        headers = {
            **self.headers,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + file.stat().st_size + len(tail)),
        }

        def body() -> Iterator[bytes]:
            yield head
            with file.open("rb") as handle:
                while chunk := handle.read(1024 * 1024):
                    yield chunk
            yield tail

        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._send("POST", path, body(), headers, suffix)

    def _send(
        self,
        method: str,
        path: str,
        data: bytes | Iterable[bytes] | None,
        headers: dict[str, str],
        suffix: str = "",
    ) -> Any:
        url = self.base + urllib.parse.quote(path) + suffix
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AdminError(_message(exc)) from exc
        except urllib.error.URLError as exc:
            raise AdminError(f"cannot reach {self.base}: {exc.reason}") from exc
        return json.loads(raw) if raw else None


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        error = json.loads(exc.read())["error"]
        return f"{exc.code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{exc.code} {exc.reason}"


def _new_password(username: str) -> str:
    from_env = os.environ.get("SPACEDOCK_NEW_PASSWORD")
    if from_env:
        return from_env
    first = getpass.getpass(f"new password for {username}: ")
    if first != getpass.getpass("again: "):
        raise AdminError("the passwords differ")
    return first


def _spaces_list(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", "/spaces")


def _spaces_create(api: Api, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"name": args.name, "anonymous_pull": args.anonymous_pull}
    if args.id:
        body["id"] = args.id
    return api.call("POST", "/spaces", body)


def _spaces_show(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", f"/spaces/{args.space}")


def _spaces_update(api: Api, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {}
    if args.name is not None:
        body["name"] = args.name
    if args.anonymous_pull is not None:
        body["anonymous_pull"] = args.anonymous_pull == "true"
    return api.call("PATCH", f"/spaces/{args.space}", body)


def _spaces_delete(api: Api, args: argparse.Namespace) -> Any:
    return api.call("DELETE", f"/spaces/{args.space}")


def _users_list(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", "/users")


def _users_create(api: Api, args: argparse.Namespace) -> Any:
    body = {
        "username": args.username,
        "password": _new_password(args.username),
        "superuser": args.superuser,
    }
    return api.call("POST", "/users", body)


def _users_show(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", f"/users/{args.username}")


def _users_passwd(api: Api, args: argparse.Namespace) -> Any:
    return api.call("PATCH", f"/users/{args.username}", {"password": _new_password(args.username)})


def _users_delete(api: Api, args: argparse.Namespace) -> Any:
    return api.call("DELETE", f"/users/{args.username}")


def _keys_list(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", f"/users/{args.username}/api-keys")


def _keys_create(api: Api, args: argparse.Namespace) -> Any:
    return api.call("POST", f"/users/{args.username}/api-keys", {"name": args.name})


def _keys_revoke(api: Api, args: argparse.Namespace) -> Any:
    return api.call("DELETE", f"/users/{args.username}/api-keys/{args.key_id}")


def _feed_repositories(api: Api, args: argparse.Namespace) -> Any:
    """Every page of the space's repositories."""
    repositories: list[Any] = []
    cursor = None
    while True:
        query = {"limit": "500", **({"q": args.query} if args.query else {})}
        if cursor:
            query["cursor"] = cursor
        page = api.call("GET", f"/spaces/{args.space}/repositories", query=query)
        repositories += page["repositories"]
        cursor = page["next_cursor"]
        if not cursor:
            return {"repositories": repositories}


def _feed_versions(api: Api, args: argparse.Namespace) -> Any:
    query = {"prerelease": "false"} if args.no_prerelease else {}
    path = f"/spaces/{args.space}/repositories/{args.repository}/versions"
    return api.call("GET", path, query=query)


def _package_push(api: Api, args: argparse.Namespace) -> Any:
    file = Path(args.file)
    if not file.is_file():
        raise AdminError(f"{file} is not a file")
    query = {"replace": "true"} if args.replace else {}
    return api.upload(f"/spaces/{args.space}/packages", file, query)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise AdminError(f"{what} {item!r}: expected NAME=VALUE")
        pairs[name] = value
    return pairs


def _builds_start(api: Api, args: argparse.Namespace) -> Any:
    sdi_id, colon, sdi_version = args.sdi.rpartition(":")
    if not colon or not sdi_id:
        raise AdminError("the SDI is <id>:<version>, e.g. mywebapp-sdi:1.2.0")
    deployment = {
        key: value
        for key, value in {
            "id": args.deployment,
            "environment": args.environment,
            "project": args.project,
            "release": args.release,
            "tenant": args.tenant,
        }.items()
        if value is not None
    }
    body: dict[str, Any] = {
        "sdi": {"id": sdi_id, "version": sdi_version},
        "deployment": deployment,
        "variables": _pairs(args.var, "--var"),
        "sensitive_variables": _pairs(args.secret, "--secret"),
        "packages": _pairs(args.package, "--package"),
        "strategy": args.strategy,
    }
    if args.build_id:
        body["build_id"] = args.build_id
    if args.repository or args.tag:
        body["image"] = {k: v for k, v in (("repository", args.repository), ("tag", args.tag)) if v}
    accepted = api.call("POST", f"/spaces/{args.space}/builds", body)
    if not args.wait:
        return accepted
    while True:
        status = api.call("GET", f"/spaces/{args.space}/builds/{accepted['build_id']}")
        if status["status"] in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(1)


def _builds_show(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", f"/spaces/{args.space}/builds/{args.build_id}")


def _builds_logs(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", f"/spaces/{args.space}/builds/{args.build_id}/logs")


def _builds_cancel(api: Api, args: argparse.Namespace) -> Any:
    return api.call("DELETE", f"/spaces/{args.space}/builds/{args.build_id}")


def _members_list(api: Api, args: argparse.Namespace) -> Any:
    return api.call("GET", f"/spaces/{args.space}/members")


def _members_set(api: Api, args: argparse.Namespace) -> Any:
    return api.call("PUT", f"/spaces/{args.space}/members/{args.username}", {"role": args.role})


def _members_remove(api: Api, args: argparse.Namespace) -> Any:
    return api.call("DELETE", f"/spaces/{args.space}/members/{args.username}")
