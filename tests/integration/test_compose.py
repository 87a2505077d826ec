"""docker-compose.yml describes the real stack of PRODUCT.md §3, configures it correctly, and
publishes nothing an operator did not choose: no default secret, ports on loopback unless told
otherwise, every image pinned.

The file is read back through ``docker-compose config``, so anchors, merges, ``${VAR:-default}``
and ``${VAR:?message}`` are resolved by Compose itself, exactly as ``docker compose up`` would.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SPACEDOCK_SERVICES = ("registry", "builder", "reaper")
BACKING_SERVICES = ("mongodb", "rabbitmq", "minio")
ALL_SERVICES = {*SPACEDOCK_SERVICES, *BACKING_SERVICES, "minio-init"}
S3_REGISTRY_VARIABLES = (
    "SPACEDOCK_LISTEN",
    "SPACEDOCK_PUBLIC_URL",
    "SPACEDOCK_STORAGE",
    "SPACEDOCK_S3_ENDPOINT",
    "SPACEDOCK_S3_ACCESS_KEY",
    "SPACEDOCK_S3_SECRET_KEY",
    "SPACEDOCK_S3_BUCKET",
    "SPACEDOCK_MONGO_URL",
    "SPACEDOCK_AMQP_URL",
    "SPACEDOCK_ADMIN_PASSWORD",
)

# What the operator must give; each in the form the product checks.
OPERATOR_SECRETS = {
    "SPACEDOCK_ADMIN_PASSWORD": secrets.token_urlsafe(18),
    "SPACEDOCK_BUILDER_KEY": f"sdk_{secrets.token_hex(8)}.{secrets.token_urlsafe(32)}",
    "SPACEDOCK_SEALING_KEY": secrets.token_urlsafe(32),
    "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(12),
    "RABBITMQ_PASSWORD": secrets.token_urlsafe(12),
}
PUBLISHED_PORTS = {"registry": {5000}, "rabbitmq": {5672, 15672}, "minio": {9001}}
# A release: a version with minor and patch (not a floating major such as mongo:7), or
# MinIO's dated release names.
PINNED_TAG = re.compile(r"\d+\.\d+\.\d+(-[a-z0-9.]+)?|RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ")

Services = dict[str, dict[str, Any]]


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    assert plugin.returncode == 0, "no Compose: run infra/dev/install-test-deps.sh"
    return ["docker", "compose"]


def _compose_config(environment: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``config`` in a bare environment (the operator's shell and an .env file beside the
    compose file must not change what the defaults are)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
    env.update(environment)
    with tempfile.NamedTemporaryFile(suffix=".env") as no_env_file:
        return subprocess.run(
            [
                *_compose_command(),
                "-f",
                str(COMPOSE_FILE),
                "--env-file",
                no_env_file.name,
                "config",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )


def _render(extra_env: Mapping[str, str] | None = None) -> Services:
    result = _compose_config({**OPERATOR_SECRETS, **(extra_env or {})})
    assert result.returncode == 0, result.stderr
    services: Services = yaml.safe_load(result.stdout)["services"]
    return services


@pytest.fixture(scope="module")
def services() -> Services:
    return _render()


def _environment(service: Mapping[str, Any]) -> dict[str, str]:
    raw: Mapping[str, Any] = service.get("environment") or {}
    return {name: str(value) for name, value in raw.items() if value is not None}


def _image_environment() -> dict[str, str]:
    """The SPACEDOCK_* defaults the Dockerfile's ENV gives every container."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                name, _, value = pair.partition("=")
                if name.startswith("SPACEDOCK_"):
                    found[name] = value
    return found


def _container_environment(service: Mapping[str, Any]) -> dict[str, str]:
    return {**_image_environment(), **_environment(service)}


def _mount_targets(service: Mapping[str, Any]) -> dict[str, str]:
    """target → source; docker-compose 1.x prints strings, Compose v2 prints mappings."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *_ = volume.split(":")
            mounts[target] = source
        else:
            mounts[volume["target"]] = volume["source"]
    return mounts


def _published(service: Mapping[str, Any]) -> dict[int, str]:
    """Published port → host address; docker-compose 1.x prints strings, v2 mappings."""
    published: dict[int, str] = {}
    for port in service.get("ports", []):
        if isinstance(port, str):
            host_ip, published_port, _ = port.split("/")[0].rsplit(":", 2)
            published[int(published_port)] = host_ip
        else:
            published[int(port["published"])] = port.get("host_ip", "")
    return published


def _has_healthcheck(service: Mapping[str, Any]) -> bool:
    check: Mapping[str, Any] = service.get("healthcheck") or {}
    test = check.get("test") or []
    return not check.get("disable", False) and bool(test) and test[0] != "NONE"


class _RecordingEnviron(Mapping[str, str]):
    """An environment that remembers which names ``Settings.from_env`` looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def test_stack_has_the_seven_services(services: Services) -> None:
    assert set(services) == ALL_SERVICES


def test_spacedock_services_run_one_image_built_from_the_repository(services: Services) -> None:
    images = {services[name]["image"] for name in SPACEDOCK_SERVICES}
    assert len(images) == 1
    for name in SPACEDOCK_SERVICES:
        assert Path(services[name]["build"]["context"]) == ROOT
        assert services[name]["command"] == [name]


def test_long_running_services_have_healthchecks(services: Services) -> None:
    for name in (*BACKING_SERVICES, "registry"):
        assert _has_healthcheck(services[name]), name
    # Dependants need storage and metadata to answer, not just the process to be up.
    assert any("/readyz" in part for part in services["registry"]["healthcheck"]["test"])


def test_registry_starts_after_its_dependencies_are_ready(services: Services) -> None:
    conditions = {
        name: dependency["condition"]
        for name, dependency in services["registry"]["depends_on"].items()
    }
    assert conditions == {
        "mongodb": "service_healthy",
        "rabbitmq": "service_healthy",
        "minio-init": "service_completed_successfully",
    }
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"


def test_builder_and_reaper_start_after_the_registry_is_ready(services: Services) -> None:
    for name in ("builder", "reaper"):
        assert services[name]["depends_on"]["registry"]["condition"] == "service_healthy"


def test_registry_environment_configures_s3_mongodb_and_rabbitmq(services: Services) -> None:
    env = _environment(services["registry"])
    missing = [name for name in S3_REGISTRY_VARIABLES if not env.get(name)]
    assert missing == []
    assert env["SPACEDOCK_STORAGE"] == "s3"
    assert env["SPACEDOCK_LISTEN"] == "0.0.0.0:5000"
    assert env["SPACEDOCK_S3_ENDPOINT"] == "minio:9000"
    assert urlsplit(env["SPACEDOCK_MONGO_URL"]).hostname == "mongodb"
    assert urlsplit(env["SPACEDOCK_AMQP_URL"]).hostname == "rabbitmq"


def test_credentials_and_bucket_agree_across_services(services: Services) -> None:
    registry = _environment(services["registry"])
    minio = _environment(services["minio"])
    rabbitmq = _environment(services["rabbitmq"])
    amqp = urlsplit(registry["SPACEDOCK_AMQP_URL"])

    assert registry["SPACEDOCK_S3_ACCESS_KEY"] == minio["MINIO_ROOT_USER"]
    assert registry["SPACEDOCK_S3_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert (amqp.username, amqp.password) == (
        rabbitmq["RABBITMQ_DEFAULT_USER"],
        rabbitmq["RABBITMQ_DEFAULT_PASS"],
    )
    init_script = " ".join(services["minio-init"]["command"])
    assert f"mb --ignore-existing local/{registry['SPACEDOCK_S3_BUCKET']}" in init_script


def test_passwords_from_the_shell_reach_both_ends() -> None:
    services = _render(
        {
            "SPACEDOCK_ADMIN_PASSWORD": "admin-from-shell",
            "MINIO_ROOT_PASSWORD": "minio-from-shell",
            "RABBITMQ_PASSWORD": "rabbit-from-shell",
        }
    )
    registry = _environment(services["registry"])
    assert registry["SPACEDOCK_ADMIN_PASSWORD"] == "admin-from-shell"
    assert registry["SPACEDOCK_S3_SECRET_KEY"] == "minio-from-shell"
    assert _environment(services["minio"])["MINIO_ROOT_PASSWORD"] == "minio-from-shell"
    assert urlsplit(registry["SPACEDOCK_AMQP_URL"]).password == "rabbit-from-shell"
    assert _environment(services["rabbitmq"])["RABBITMQ_DEFAULT_PASS"] == "rabbit-from-shell"


def test_builder_mounts_the_docker_socket(services: Services) -> None:
    mounts = _mount_targets(services["builder"])
    assert mounts.get("/var/run/docker.sock") == "/var/run/docker.sock"


@pytest.mark.parametrize("name", SPACEDOCK_SERVICES)
def test_service_environment_is_accepted_by_settings(services: Services, name: str) -> None:
    """Each container's environment loads, and every SPACEDOCK_* it sets is one that is read."""
    environ = _RecordingEnviron(_container_environment(services[name]))

    settings = Settings.from_env(environ)

    unread = {variable for variable in environ if variable not in environ.read}
    assert unread == set(), "set but never read (a typo?)"
    assert settings.registry_url == "http://registry:5000"
    assert settings.log_format == "json"
    if name != "builder":
        assert settings.storage == "s3"
        assert settings.mongo_url is not None


def test_registry_and_builder_agree_on_the_builder_key(services: Services) -> None:
    """The registry registers the key the builder signs in with."""
    registry, builder = (_environment(services[n]) for n in ("registry", "builder"))
    assert registry["SPACEDOCK_BUILDER_KEY"] == builder["SPACEDOCK_BUILDER_KEY"]
    assert builder["SPACEDOCK_MONGO_URL"] == registry["SPACEDOCK_MONGO_URL"]


@pytest.mark.parametrize("name", sorted(OPERATOR_SECRETS))
def test_each_secret_must_be_given_and_compose_names_the_missing_one(name: str) -> None:
    given = {other: value for other, value in OPERATOR_SECRETS.items() if other != name}

    result = _compose_config(given)

    assert result.returncode != 0
    assert f"set {name}" in result.stderr


def test_no_secret_has_a_default_in_the_file() -> None:
    text = COMPOSE_FILE.read_text()
    for name in OPERATOR_SECRETS:
        assert f"${{{name}:?" in text, name
        assert not re.search(rf"\$\{{{name}(:?-|\}})", text), f"{name} has a default"


def test_secrets_from_the_shell_reach_the_services(services: Services) -> None:
    registry = _environment(services["registry"])
    assert registry["SPACEDOCK_ADMIN_PASSWORD"] == OPERATOR_SECRETS["SPACEDOCK_ADMIN_PASSWORD"]
    for name in ("registry", "builder"):
        env = _environment(services[name])
        assert env["SPACEDOCK_BUILDER_KEY"] == OPERATOR_SECRETS["SPACEDOCK_BUILDER_KEY"]
        assert env["SPACEDOCK_SEALING_KEY"] == OPERATOR_SECRETS["SPACEDOCK_SEALING_KEY"]


def test_ports_are_published_on_loopback_by_default(services: Services) -> None:
    published = {
        name: _published(service) for name, service in services.items() if service.get("ports")
    }
    assert {name: set(ports) for name, ports in published.items()} == PUBLISHED_PORTS
    for name, ports in published.items():
        assert set(ports.values()) == {"127.0.0.1"}, name


def test_spacedock_bind_publishes_the_ports_where_the_operator_says() -> None:
    services = _render({"SPACEDOCK_BIND": "0.0.0.0"})
    for name, ports in PUBLISHED_PORTS.items():
        assert _published(services[name]) == dict.fromkeys(ports, "0.0.0.0"), name


def test_every_image_is_pinned_to_a_release(services: Services) -> None:
    project_version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        repository, _, tag = service["image"].rpartition(":")
        assert repository, f"{name}: {service['image']} has no tag"
        assert PINNED_TAG.fullmatch(tag), f"{name}: {tag} is not a release"
    # The image built from this repository is tagged with its release.
    assert services["registry"]["image"] == f"spacedock:{project_version}"
