"""The ``spacedock`` management verbs against a running registry, as an operator types them:
what they answer, and the exit code of every way they fail."""

from __future__ import annotations

import io
import json
import os
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.commands import run
from tests.support.oci import Client
from tests.support.processes import BIN, Registry, Service, free_port, start_registry

OK, FAILED, USAGE, TIMEOUT, UNREACHABLE = 0, 1, 2, 3, 4


@pytest.fixture(scope="module")
def cli_registry(
    tmp_path_factory: pytest.TempPathFactory, mongo_server: Service
) -> Iterator[Registry]:
    """A registry alone: no builder and no broker, so a build it accepts stays queued."""
    registry = start_registry(
        tmp_path_factory.mktemp("cli"),
        f"mongodb://127.0.0.1:{mongo_server.port}/cli_{uuid.uuid4().hex[:8]}",
    )
    yield registry
    registry.stop()


def environment(registry: Registry, **env: str) -> dict[str, str]:
    """The caller's environment without any SPACEDOCK_ variable of the test run, pointed at
    ``registry`` as its admin, with ``env`` laid over it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SPACEDOCK_")}
    return {
        **clean,
        "SPACEDOCK_REGISTRY_URL": registry.url,
        "SPACEDOCK_PASSWORD": registry.password,
        "SPACEDOCK_DATA_DIR": str(registry.data_dir),
        **env,
    }


def cli(registry: Registry, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``spacedock ARGS`` with no terminal (stdin is empty): nothing can be asked."""
    return run(
        [str(BIN / "spacedock"), *args], stdin="", env=environment(registry, **env), timeout=60
    )


def spacedock(registry: Registry, *args: str, **env: str) -> tuple[int, Any, str]:
    """Exit code, the JSON answer (None when nothing was printed) and stderr."""
    result = cli(registry, *args, **env)
    output = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, output, result.stderr


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_an_operator_sets_up_a_space_a_member_and_a_key(cli_registry: Registry) -> None:
    code, space, _ = spacedock(cli_registry, "spaces", "create", "Team C")
    assert code == OK and space["id"].startswith("spaces-")
    username = f"ops-{uuid.uuid4().hex[:6]}"
    code, user, err = spacedock(
        cli_registry, "users", "create", username, SPACEDOCK_NEW_PASSWORD="a-long-password"
    )
    assert code == OK, err
    assert user["username"] == username
    code, member, _ = spacedock(cli_registry, "members", "set", space["id"], username, "writer")
    assert code == OK and member["role"] == "writer"
    code, key, _ = spacedock(cli_registry, "keys", "create", username, "--name", "ci")
    assert code == OK and key["key"].startswith("sdk_")

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
    assert code == OK and [k["id"] for k in keys["api_keys"]] == [key["id"]]
    assert spacedock(cli_registry, "keys", "revoke", username, key["id"])[0] == OK
    refused = requests.get(f"{cli_registry.url}/v2/", auth=(username, key["key"]), timeout=10)
    assert refused.status_code == 401


def test_each_way_of_failing_has_its_exit_code_and_one_line(cli_registry: Registry) -> None:
    code, output, err = spacedock(cli_registry, "spaces", "show", "no-such-space")
    assert code == FAILED and output is None
    assert "404 NOT_FOUND" in err and "does not exist" in err
    code, _, err = spacedock(cli_registry, "users", "list", SPACEDOCK_PASSWORD="wrong")
    assert code == FAILED and "401" in err
    nobody = f"http://127.0.0.1:{free_port()}"
    code, _, err = spacedock(cli_registry, "spaces", "list", SPACEDOCK_REGISTRY_URL=nobody)
    assert code == UNREACHABLE and f"cannot reach {nobody}" in err
    code, _, err = spacedock(cli_registry, "spaces", "list", "--url", "registry.example")
    assert code == USAGE and "not an http(s) URL" in err
    code, _, err = spacedock(cli_registry, "spaces", "list", SPACEDOCK_LISTEN="nowhere")
    assert code == USAGE and "SPACEDOCK_LISTEN" in err
    code, _, err = spacedock(cli_registry, "users", "create", "nopass")
    assert code == USAGE and "SPACEDOCK_NEW_PASSWORD" in err
    assert cli(cli_registry, "nothing").returncode == USAGE
    # An argument is one path segment: it names a space, never another route.
    code, _, err = spacedock(cli_registry, "spaces", "show", "../users")
    assert code == FAILED and "space ../users does not exist" in err
    assert spacedock(cli_registry, "spaces", "show", "..")[0] == USAGE


def test_without_credentials_or_a_terminal_it_names_the_variable(
    cli_registry: Registry,
) -> None:
    env = environment(cli_registry)
    del env["SPACEDOCK_PASSWORD"]  # and the data dir holds no generated password
    result = run([str(BIN / "spacedock"), "spaces", "list"], stdin="", env=env, timeout=60)
    assert result.returncode == USAGE
    assert result.stderr.count("\n") == 1 and "SPACEDOCK_PASSWORD" in result.stderr
    assert "Traceback" not in result.stderr


def test_packages_go_up_and_come_down(cli_registry: Registry, tmp_path: Path) -> None:
    package_id = f"clitool{uuid.uuid4().hex[:6]}"
    archive = tmp_path / f"{package_id}.4.0.0.zip"
    archive.write_bytes(zip_bytes({"run.sh": b"#!/bin/sh\necho hi\n" * 1000}))
    pushed = cli(cli_registry, "package", "push", "spaces-1", str(archive))
    assert pushed.returncode == OK, pushed.stderr
    body = json.loads(pushed.stdout)
    assert body["repository"] == f"spaces-1/packages/{package_id}" and body["tag"] == "4.0.0"
    # Off a terminal: one plain line when done, with bytes and rate.
    assert pushed.stderr.startswith(f"pushed {archive.name}: ") and "/s\n" in pushed.stderr

    code, _, err = spacedock(cli_registry, "package", "push", "spaces-1", str(archive))
    assert code == FAILED and "409" in err
    assert "--replace" in err and "?replace" not in err
    replaced = spacedock(cli_registry, "package", "push", "spaces-1", str(archive), "--replace")
    assert replaced[0] == OK

    code, versions, _ = spacedock(cli_registry, "package", "versions", "spaces-1", package_id)
    assert code == OK and [v["tag"] for v in versions["versions"]] == ["4.0.0"]

    target = tmp_path / "copy.zip"
    code, saved, err = spacedock(
        cli_registry, "package", "download", "spaces-1", package_id, "4.0.0", "-o", str(target)
    )
    assert code == OK, err
    assert target.read_bytes() == archive.read_bytes() and saved["size"] == target.stat().st_size
    into = tmp_path / "downloads"
    into.mkdir()
    code, saved, _ = spacedock(
        cli_registry, "package", "download", "spaces-1", package_id, "4.0.0", "-o", str(into)
    )
    assert code == OK and Path(saved["file"]) == into / archive.name
    assert sorted(p.name for p in into.iterdir()) == [archive.name]  # no partial file left
    to_stdout = subprocess.run(
        [str(BIN / "spacedock"), "package", "download", "spaces-1", package_id, "4.0.0", "-o", "-"],
        env=environment(cli_registry),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert to_stdout.returncode == OK and to_stdout.stdout == archive.read_bytes()
    code, _, err = spacedock(
        cli_registry, "package", "download", "spaces-1", package_id, "9.9.9", "-o", str(target)
    )
    assert code == FAILED and "404" in err
    assert target.read_bytes() == archive.read_bytes()  # a failed download leaves it be


def test_a_package_named_without_a_dot_before_its_version_is_refused(
    cli_registry: Registry, tmp_path: Path
) -> None:
    archive = tmp_path / "myapp-1.0.0.zip"
    archive.write_bytes(zip_bytes({"a.txt": b"a"}))
    code, _, err = spacedock(cli_registry, "package", "push", "spaces-1", str(archive))
    assert code == FAILED and "422" in err
    assert "<id>.<version>" in err  # the server's message, shown as it is


def test_feed_verbs_list_repositories_and_versions(cli_registry: Registry) -> None:
    client = Client.for_registry(cli_registry.url, cli_registry.auth)
    name = f"feedcli-{uuid.uuid4().hex[:6]}"
    for tag in ("1.2.0-deployments-9", "1.2.0", "1.10.0"):
        client.push_image(f"spaces-1/{name}", tag, [tag.encode()])
    code, listed, _ = spacedock(cli_registry, "feed", "repositories", "spaces-1", "-q", name)
    assert code == OK and [r["name"] for r in listed["repositories"]] == [name]
    code, versions, _ = spacedock(cli_registry, "feed", "versions", "spaces-1", name)
    assert [v["tag"] for v in versions["versions"]] == ["1.10.0", "1.2.0", "1.2.0-deployments-9"]
    code, stable, _ = spacedock(
        cli_registry, "feed", "versions", "spaces-1", name, "--no-prerelease"
    )
    assert [v["tag"] for v in stable["versions"]] == ["1.10.0", "1.2.0"]


def test_retention_is_shown_set_dry_run_pinned_and_run(cli_registry: Registry) -> None:
    code, space, _ = spacedock(cli_registry, "spaces", "create", "Retained")
    assert code == OK
    space_id = space["id"]
    client = Client.for_registry(cli_registry.url, cli_registry.auth)
    tags = [f"1.0.0-deployments-{n}" for n in (1, 2, 3)]
    for tag in tags:
        client.push_image(f"{space_id}/team/app", tag, [f"layer of {tag}".encode() * 100])

    code, policy, _ = spacedock(cli_registry, "retention", "show", space_id)
    assert code == OK and policy["deployment_tags"]["keep_last"] == 10
    code, policy, _ = spacedock(
        cli_registry, "retention", "set", space_id, "--keep-last", "1", "--retain-days", "0",
        "--untagged-hours", "0",
    )  # fmt: skip
    assert code == OK
    assert policy["deployment_tags"] == {
        "pattern": r"^.+-deployments-\d+$",  # not given: kept as it was
        "retain_days": 0,
        "keep_last": 1,
    }
    assert policy["untagged_manifests"] == {"retain_hours": 0}
    assert policy["gc"] == {"grace_minutes": 60}
    assert spacedock(cli_registry, "retention", "set", space_id)[0] == USAGE

    code, report, err = spacedock(cli_registry, "retention", "run", space_id, "--dry-run")
    assert code == OK and report["dry_run"] is True
    assert sorted(t["tag"] for t in report["removed"]) == tags[:2]
    assert report["bytes_freed"] > 0
    assert f"would remove {space_id}/team/app:{tags[0]}" in err and "freeing" in err

    code, pin, _ = spacedock(cli_registry, "tags", "pin", space_id, "team/app", tags[0])
    assert code == OK and pin["pinned"] is True
    _, report, _ = spacedock(cli_registry, "retention", "run", space_id, "--dry-run")
    assert [t["tag"] for t in report["removed"]] == [tags[1]]
    assert spacedock(cli_registry, "tags", "unpin", space_id, "team/app", tags[0])[0] == OK
    code, _, err = spacedock(cli_registry, "tags", "unpin", space_id, "team/app", tags[0])
    assert code == FAILED and "404" in err
    code, _, err = spacedock(cli_registry, "tags", "pin", space_id, "team/app", "9-deployments-9")
    assert code == FAILED and "404" in err

    code, report, err = spacedock(cli_registry, "retention", "run", space_id)
    assert code == OK and report["dry_run"] is False
    assert sorted(t["tag"] for t in report["removed"]) == tags[:2]
    assert f"removed {space_id}/team/app:{tags[0]}" in err
    left = client.request("GET", f"/v2/{space_id}/team/app/tags/list").json()["tags"]
    assert left == [tags[2]]


def test_waiting_for_a_build_that_does_not_finish_times_out_with_3(
    cli_registry: Registry,
) -> None:
    """No builder runs beside this registry: the build stays queued until cancelled."""
    build_id = f"cli-timeout-{uuid.uuid4().hex[:8]}"
    start = (
        "builds", "start", "spaces-1", "never-built-sdi:1.0.0", "--deployment", "deployments-5",
        "--environment", "Dev", "--build-id", build_id,
    )  # fmt: skip
    waited = cli(cli_registry, *start, "--wait", "--timeout", "2")
    assert waited.returncode == TIMEOUT, waited.stderr
    assert f"build {build_id}: queued" in waited.stderr
    assert f"build {build_id} is still queued after 2 s" in waited.stderr

    code, listed, _ = spacedock(cli_registry, "builds", "list", "spaces-1", "--status", "queued")
    assert code == OK and build_id in [b["build_id"] for b in listed["builds"]]
    code, cancelled, _ = spacedock(cli_registry, "builds", "cancel", "spaces-1", build_id)
    assert code == OK and cancelled["status"] == "cancelled"
    followed = cli(cli_registry, "builds", "logs", "spaces-1", build_id, "--follow")
    assert followed.returncode == FAILED
    assert f"build {build_id}: cancelled" in followed.stderr
    again = cli(cli_registry, *start, "--wait")  # the same build_id: that build, cancelled
    assert again.returncode == FAILED and json.loads(again.stdout)["status"] == "cancelled"
    code, _, err = spacedock(cli_registry, "builds", "cancel", "spaces-1", build_id)
    assert code == FAILED and "409" in err
    code, _, err = spacedock(cli_registry, "builds", "show", "spaces-1", "no-such-build")
    assert code == FAILED and "404" in err


def test_builds_are_listed_newest_first_up_to_the_limit(cli_registry: Registry) -> None:
    prefix = f"cli-list-{uuid.uuid4().hex[:6]}"
    for n in range(3):
        code, _, err = spacedock(
            cli_registry, "builds", "start", "spaces-1", "listed-sdi:1.0.0", "--deployment",
            f"deployments-{n}", "--environment", "Dev", "--build-id", f"{prefix}-{n}",
        )  # fmt: skip
        assert code == OK, err
    code, listed, err = spacedock(cli_registry, "builds", "list", "spaces-1", "--limit", "2")
    assert code == OK, err
    assert [b["build_id"] for b in listed["builds"]] == [f"{prefix}-2", f"{prefix}-1"]
    for n in range(3):
        spacedock(cli_registry, "builds", "cancel", "spaces-1", f"{prefix}-{n}")
    _, cancelled, _ = spacedock(cli_registry, "builds", "list", "spaces-1", "--status", "cancelled")
    assert {f"{prefix}-{n}" for n in range(3)} <= {b["build_id"] for b in cancelled["builds"]}
    assert {b["status"] for b in cancelled["builds"]} == {"cancelled"}
