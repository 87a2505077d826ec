"""docker-compose.yml describes the real stack of PRODUCT.md §3 and configures it correctly.

The file is read back through ``docker-compose config``, so anchors, merges and ``${VAR:-default}``
are resolved by Compose itself, exactly as ``docker compose up`` would see them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
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

Services = dict[str, dict[str, Any]]


def _compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    assert plugin.returncode == 0, "no Compose: run infra/dev/install-test-deps.sh"
    return ["docker", "compose"]


def _render(extra_env: Mapping[str, str] | None = None) -> Services:
    # A bare environment: the operator's shell must not change what the defaults are.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(Path.home())}
    env.update(extra_env or {})
    result = subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
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
