"""The docker CLI with Docker token authentication: a member logs in with an API key, pushes
and pulls with tokens scoped to a space, is refused elsewhere, and keeps working after its
tokens expire."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.accounts import Account, Admin
from tests.support.commands import run, succeed
from tests.support.docker_cli import remove_images
from tests.support.processes import Registry, Service, start_registry

TOKEN_TTL = 4


@pytest.fixture(scope="module")
def short_token_registry(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[Registry]:
    registry = start_registry(
        tmp_path_factory.mktemp("docker-tokens"),
        f"mongodb://127.0.0.1:{mongo_server.port}/docker_tokens_{uuid.uuid4().hex[:8]}",
        extra_env={"SPACEDOCK_TOKEN_TTL_SECONDS": str(TOKEN_TTL)},
    )
    yield registry
    registry.stop()


@pytest.fixture
def member(short_token_registry: Registry) -> tuple[Account, str, str]:
    """A writer in a new space, and another space it has no role in."""
    admin = Admin(short_token_registry.url, short_token_registry.auth)
    own, other = admin.space("docker"), admin.space("elsewhere")
    account = admin.user("dev")
    admin.grant(own, account, "writer")
    return account, own, other


def test_docker_uses_scoped_tokens_and_renews_them_after_expiry(
    short_token_registry: Registry,
    busybox_image: str,
    docker_env: dict[str, str],
    member: tuple[Account, str, str],
) -> None:
    registry = short_token_registry
    account, own, other = member
    log = registry.service.log_tail
    succeed(
        ["docker", "login", "--username", account.username, "--password-stdin", registry.host],
        stdin=account.api_key + "\n",
        env=docker_env,
        diagnose=log,
    )
    first, second = f"{registry.host}/{own}/app:1.0", f"{registry.host}/{own}/app:2.0"
    refused = f"{registry.host}/{other}/app:1.0"
    try:
        for reference in (first, second, refused):
            succeed(["docker", "tag", busybox_image, reference])
        succeed(["docker", "push", first], env=docker_env, diagnose=log)

        # Docker exchanged its key for tokens at the realm of the challenge.
        lines = [json.loads(line) for line in log(400).splitlines() if line.startswith("{")]
        exchanges = [line for line in lines if line.get("path") == "/auth/token"]
        assert exchanges and all(line["status"] == 200 for line in exchanges)

        time.sleep(TOKEN_TTL + 3)  # every token docker held has expired
        succeed(["docker", "push", second], env=docker_env, diagnose=log)
        remove_images(first)
        succeed(["docker", "pull", first], env=docker_env, diagnose=log)
        output = succeed(["docker", "run", "--rm", first, "echo", "pulled with a token"]).stdout
        assert "pulled with a token" in output

        denied = run(["docker", "push", refused], env=docker_env)
        assert denied.returncode != 0
        assert "requested access to the resource is denied" in denied.stderr, denied.stderr
    finally:
        remove_images(first, second, refused)
