"""The docker CLI, used as a new user would, logs in to, pushes to and pulls from the registry."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import run, succeed
from tests.support.docker_cli import remove_images
from tests.support.oci import DOCKER_LIST, DOCKER_MANIFEST, Client
from tests.support.oci_layout import tar_of
from tests.support.processes import Registry

PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")


@pytest.fixture
def logged_in(registry: Registry, docker_env: dict[str, str]) -> dict[str, str]:
    """``docker_env`` after a successful ``docker login`` to the registry."""
    login(registry, docker_env)
    return docker_env


@pytest.fixture
def image(registry: Registry, repo: str) -> Iterator[str]:
    """A fresh image name on the registry; local images named after it (``<name>``,
    ``<name>-copy``, ...) are removed afterwards."""
    name = f"{registry.host}/{repo}"
    yield name
    listed = run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout.split()
    remove_images(*[reference for reference in listed if reference.startswith(name)])


def login(registry: Registry, env: dict[str, str]) -> None:
    succeed(
        ["docker", "login", "--username", registry.username, "--password-stdin", registry.host],
        stdin=registry.password + "\n",
        env=env,
        diagnose=registry.service.log_tail,
    )


def build(reference: str, context: Path, base: str, files: dict[str, bytes]) -> None:
    """``docker build`` an image that copies ``files`` onto ``base``."""
    context.mkdir()
    for name, content in files.items():
        (context / name).write_bytes(content)
    copies = "".join(f"COPY {name} /{name}\n" for name in files)
    (context / "Dockerfile").write_text(f"FROM {base}\n{copies}")
    succeed(["docker", "build", "--tag", reference, str(context)])


def push(registry: Registry, reference: str, env: dict[str, str]) -> tuple[str, str]:
    """``docker push``; return its output and the manifest digest it reports."""
    output = succeed(["docker", "push", reference], env=env, diagnose=registry.service.log_tail)
    match = PUSHED_DIGEST.search(output.stdout)
    assert match is not None, output.stdout
    return output.stdout, match.group(1)


def write_build_context(context: Path, base: str) -> None:
    """A Dockerfile with several COPY, ADD and RUN layers on ``base``, and its files."""
    context.mkdir()
    (context / "greeting.txt").write_text("hello from spacedock\n")
    (context / "data.tar").write_bytes(tar_of({"inner.txt": b"unpacked by ADD\n"}))
    (context / "payload.bin").write_bytes(os.urandom(1 << 20))
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        "COPY greeting.txt /app/greeting.txt\n"
        "ADD data.tar /app/data/\n"
        'RUN ["/bin/sh", "-c", "echo built by docker > /app/built.txt"]\n'
        "COPY payload.bin /app/payload.bin\n"
        'CMD ["/bin/sh", "-c", "cat /app/greeting.txt /app/data/inner.txt /app/built.txt; '
        'wc -c < /app/payload.bin"]\n'
    )


def test_built_image_is_pushed_pulled_and_run(
    registry: Registry,
    client: Client,
    busybox_image: str,
    logged_in: dict[str, str],
    image: str,
    tmp_path: Path,
) -> None:
    """An image built with several layers, pushed, deleted locally and pulled back runs as built."""
    env, diagnose = logged_in, registry.service.log_tail
    reference = f"{image}:1.0"
    write_build_context(tmp_path / "context", busybox_image)
    succeed(["docker", "build", "--tag", reference, str(tmp_path / "context")], env=env)

    _, digest = push(registry, reference, env)

    repo = image.removeprefix(f"{registry.host}/")
    stored = client.request("GET", f"/v2/{repo}/manifests/1.0", headers={"Accept": DOCKER_MANIFEST})
    assert stored.status_code == 200, stored.text
    assert stored.headers["Content-Type"] == DOCKER_MANIFEST
    assert stored.headers["Docker-Content-Digest"] == digest
    assert len(stored.json()["layers"]) == 5  # the base, two COPY, one ADD and one RUN

    remove_images(reference)
    assert run(["docker", "image", "inspect", reference]).returncode != 0

    succeed(["docker", "pull", reference], env=env, diagnose=diagnose)
    inspected = succeed(["docker", "image", "inspect", reference]).stdout
    assert f"{image}@{digest}" in json.loads(inspected)[0]["RepoDigests"]

    output = succeed(["docker", "run", "--rm", reference], env=env).stdout
    assert output.splitlines() == [
        "hello from spacedock",
        "unpacked by ADD",
        "built by docker",
        str(1 << 20),
    ]


def test_login_with_a_wrong_password_fails(registry: Registry, docker_env: dict[str, str]) -> None:
    """``docker login`` with a wrong password fails as unauthorized and stores no credentials."""
    result = run(
        ["docker", "login", "--username", registry.username, "--password-stdin", registry.host],
        stdin="not-the-password\n",
        env=docker_env,
    )
    assert result.returncode != 0, result.stdout
    assert "401" in result.stderr or "unauthorized" in result.stderr.lower(), result.stderr
    config = Path(docker_env["DOCKER_CONFIG"]) / "config.json"
    auths = json.loads(config.read_text()).get("auths", {}) if config.exists() else {}
    assert registry.host not in auths


def test_push_without_login_is_refused(
    registry: Registry, busybox_image: str, docker_env: dict[str, str], image: str
) -> None:
    """``docker push`` without logging in first is refused for lack of credentials."""
    reference = f"{image}:probe"
    succeed(["docker", "tag", busybox_image, reference])
    result = run(["docker", "push", reference], env=docker_env)
    assert result.returncode != 0, result.stdout
    message = result.stderr.lower()
    # docker fetches an anonymous token, which holds no push scope: the registry says DENIED.
    assert "requested access to the resource is denied" in message, result.stderr


def test_a_name_without_a_space_fails_at_once_saying_how_names_are_formed(
    registry: Registry, busybox_image: str, logged_in: dict[str, str]
) -> None:
    """docker retries most errors for tens of seconds; this one it shows at once."""
    reference = f"{registry.host}/app-{os.getpid()}:1"
    succeed(["docker", "tag", busybox_image, reference])
    try:
        started = time.monotonic()
        result = run(["docker", "push", reference], env=logged_in, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        remove_images(reference)
    assert result.returncode != 0, result.stdout
    assert "<space>/<name>" in result.stderr, result.stderr
    assert elapsed < 15, (elapsed, result.stderr)


def test_pull_of_an_unknown_tag_fails(
    registry: Registry, logged_in: dict[str, str], image: str
) -> None:
    """``docker pull`` of a tag that was never pushed fails with a not-found error."""
    result = run(["docker", "pull", f"{image}:never-pushed"], env=logged_in)
    assert result.returncode != 0, result.stdout
    assert "not found" in result.stderr or "manifest unknown" in result.stderr, result.stderr


def test_push_to_another_repository_mounts_the_layers(
    registry: Registry,
    client: Client,
    busybox_image: str,
    logged_in: dict[str, str],
    image: str,
    tmp_path: Path,
) -> None:
    """Pushing an image already in one repository to another mounts its layers, uploading none."""
    build(f"{image}:1", tmp_path / "context", busybox_image, {"unique.txt": os.urandom(64)})
    push(registry, f"{image}:1", logged_in)

    succeed(["docker", "tag", f"{image}:1", f"{image}-copy:1"])
    output, digest = push(registry, f"{image}-copy:1", logged_in)

    layer_lines = [line for line in output.splitlines() if re.match(r"[0-9a-f]{12}: ", line)]
    outcomes = {line.split(": ", 1)[1] for line in layer_lines if "Preparing" not in line}
    assert "Pushed" not in outcomes, output
    repo = image.removeprefix(f"{registry.host}/")
    assert f"Mounted from {repo}" in outcomes, output
    copied = client.request(
        "GET", f"/v2/{repo}-copy/manifests/1", headers={"Accept": DOCKER_MANIFEST}
    )
    assert copied.headers["Docker-Content-Digest"] == digest
    for layer in copied.json()["layers"]:
        blob = client.request("HEAD", f"/v2/{repo}-copy/blobs/{layer['digest']}")
        assert blob.status_code == 200, layer


def test_manifest_list_is_pushed_and_resolved_for_the_engine_platform(
    registry: Registry,
    client: Client,
    busybox_image: str,
    logged_in: dict[str, str],
    image: str,
    tmp_path: Path,
) -> None:
    """A manifest list made with ``docker manifest`` is stored, and pulls as the engine's image."""
    env = logged_in
    native = succeed(["docker", "version", "--format", "{{.Server.Arch}}"]).stdout.strip()
    foreign = "arm64" if native != "arm64" else "amd64"
    for arch in (native, foreign):
        build(f"{image}:{arch}", tmp_path / arch, busybox_image, {"arch.txt": arch.encode()})
        push(registry, f"{image}:{arch}", env)
    listed = f"{image}:list"
    succeed(
        [
            "docker",
            "manifest",
            "create",
            "--insecure",
            listed,
            f"{image}:{native}",
            f"{image}:{foreign}",
        ],
        env=env,
        diagnose=registry.service.log_tail,
    )
    succeed(
        ["docker", "manifest", "annotate", "--arch", foreign, listed, f"{image}:{foreign}"], env=env
    )
    pushed = succeed(
        ["docker", "manifest", "push", "--purge", "--insecure", listed],
        env=env,
        diagnose=registry.service.log_tail,
    )
    digest = pushed.stdout.strip().splitlines()[-1]

    repo = image.removeprefix(f"{registry.host}/")
    stored = client.request("GET", f"/v2/{repo}/manifests/list", headers={"Accept": DOCKER_LIST})
    assert stored.status_code == 200, stored.text
    assert stored.headers["Content-Type"] == DOCKER_LIST
    assert stored.headers["Docker-Content-Digest"] == digest
    platforms = [entry["platform"]["architecture"] for entry in stored.json()["manifests"]]
    assert sorted(platforms) == sorted([native, foreign])

    remove_images(f"{image}:{native}", f"{image}:{foreign}")
    succeed(["docker", "pull", listed], env=env, diagnose=registry.service.log_tail)
    output = succeed(["docker", "run", "--rm", listed, "cat", "/arch.txt"]).stdout
    assert output == native
