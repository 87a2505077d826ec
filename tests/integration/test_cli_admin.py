"""The ``spacedock`` admin verbs against a running registry, as an operator types them."""

from __future__ import annotations

import io
import json
import os
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.commands import run
from tests.support.oci import Client
from tests.support.processes import BIN, Registry, Service, start_registry


@pytest.fixture(scope="module")
def cli_registry(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[Registry]:
    registry = start_registry(
        tmp_path_factory.mktemp("cli"),
        f"mongodb://127.0.0.1:{mongo_server.port}/cli_{uuid.uuid4().hex[:8]}",
    )
    yield registry
    registry.stop()


def spacedock(registry: Registry, *args: str, **env: str) -> tuple[int, Any, str]:
    environment = {
        **os.environ,
        "SPACEDOCK_REGISTRY_URL": registry.url,
        "SPACEDOCK_PASSWORD": registry.password,
        "SPACEDOCK_DATA_DIR": str(Path(registry.data_dir)),
        **env,
    }
    result = run([str(BIN / "spacedock"), *args], env=environment, timeout=60)
    output = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, output, result.stderr


def test_an_operator_sets_up_a_space_a_member_and_a_key(cli_registry: Registry) -> None:
    code, space, _ = spacedock(cli_registry, "spaces", "create", "Team C")
    assert code == 0 and space["id"].startswith("spaces-")
    username = f"ops-{uuid.uuid4().hex[:6]}"
    code, user, err = spacedock(
        cli_registry, "users", "create", username, SPACEDOCK_NEW_PASSWORD="a-long-password"
    )
    assert code == 0, err
    assert user["username"] == username
    code, member, _ = spacedock(cli_registry, "members", "set", space["id"], username, "writer")
    assert code == 0 and member["role"] == "writer"
    code, key, _ = spacedock(cli_registry, "keys", "create", username, "--name", "ci")
    assert code == 0 and key["key"].startswith("sdk_")

    pushed = requests.post(
        f"{cli_registry.url}/v2/{space['id']}/app/blobs/uploads/",
        auth=(username, key["key"]),
        timeout=10,
    )
    assert pushed.status_code == 202

    # The member lists its own account with its key (never the secret), then it is revoked.
    code, keys, _ = spacedock(
        cli_registry, "keys", "list", username, "--user", username, SPACEDOCK_PASSWORD=key["key"]
    )
    assert code == 0 and [k["id"] for k in keys["api_keys"]] == [key["id"]]
    assert spacedock(cli_registry, "keys", "revoke", username, key["id"])[0] == 0
    refused = requests.get(f"{cli_registry.url}/v2/", auth=(username, key["key"]), timeout=10)
    assert refused.status_code == 401


def test_failures_print_the_api_message_and_exit_1(cli_registry: Registry) -> None:
    code, output, err = spacedock(cli_registry, "spaces", "show", "no-such-space")
    assert code == 1 and output is None
    assert "404 NOT_FOUND" in err and "does not exist" in err
    code, _, err = spacedock(cli_registry, "users", "list", SPACEDOCK_PASSWORD="wrong")
    assert code == 1 and "401" in err
    code, _, err = spacedock(
        cli_registry, "spaces", "list", SPACEDOCK_REGISTRY_URL="http://127.0.0.1:9"
    )
    assert code == 1 and "cannot reach" in err


def test_package_push_uploads_a_file(cli_registry: Registry, tmp_path: Path) -> None:
    archive = tmp_path / "clitool.4.0.0.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        handle.writestr("run.sh", "#!/bin/sh\necho hi\n")
    archive.write_bytes(buffer.getvalue())
    code, body, err = spacedock(cli_registry, "package", "push", "spaces-1", str(archive))
    assert code == 0, err
    assert body["repository"] == "spaces-1/packages/clitool" and body["tag"] == "4.0.0"
    code, _, err = spacedock(cli_registry, "package", "push", "spaces-1", str(archive))
    assert code == 1 and "409" in err
    assert spacedock(cli_registry, "package", "push", "spaces-1", str(archive), "--replace")[0] == 0
    download = requests.get(
        f"{cli_registry.url}/api/v1/spaces/spaces-1/packages/clitool/4.0.0",
        auth=cli_registry.auth,
        timeout=10,
    )
    assert download.content == archive.read_bytes()


def test_feed_verbs_list_repositories_and_versions(cli_registry: Registry) -> None:
    client = Client.for_registry(cli_registry.url, cli_registry.auth)
    name = f"feedcli-{uuid.uuid4().hex[:6]}"
    for tag in ("1.2.0-deployments-9", "1.2.0", "1.10.0"):
        client.push_image(f"spaces-1/{name}", tag, [tag.encode()])
    code, listed, _ = spacedock(cli_registry, "feed", "repositories", "spaces-1", "-q", name)
    assert code == 0 and [r["name"] for r in listed["repositories"]] == [name]
    code, versions, _ = spacedock(cli_registry, "feed", "versions", "spaces-1", name)
    assert [v["tag"] for v in versions["versions"]] == ["1.10.0", "1.2.0", "1.2.0-deployments-9"]
    code, stable, _ = spacedock(
        cli_registry, "feed", "versions", "spaces-1", name, "--no-prerelease"
    )
    assert [v["tag"] for v in stable["versions"]] == ["1.10.0", "1.2.0"]
