"""Configuration of PRODUCT.md §3, read from the environment once and validated.

Nothing reads the environment at import time: a process calls ``Settings.from_env()`` in its
entry point and passes the result down. A process that runs one service reads the variables
that service needs (``Settings.from_env(service="builder")``, the names in
``SERVICE_VARIABLES``): another service's variable neither configures it nor, when wrong,
stops it; its fields keep their defaults, which the service does not use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.sealing import SealingKeyInvalid, parse_key

# Every service: where it is reached, where its metadata and messages are, how it logs.
CORE_VARIABLES = (
    "SPACEDOCK_LISTEN",  # the public URL's default
    "SPACEDOCK_PUBLIC_URL",
    "SPACEDOCK_REGISTRY_URL",
    "SPACEDOCK_DATA_DIR",  # the embedded metadata server's, when no MongoDB URL is set
    "SPACEDOCK_MONGO_URL",
    "SPACEDOCK_AMQP_URL",
    "SPACEDOCK_LOG_FORMAT",
)
STORAGE_VARIABLES = (
    "SPACEDOCK_STORAGE",
    "SPACEDOCK_S3_ENDPOINT",
    "SPACEDOCK_S3_ACCESS_KEY",
    "SPACEDOCK_S3_SECRET_KEY",
    "SPACEDOCK_S3_BUCKET",
    "SPACEDOCK_S3_SECURE",
    "SPACEDOCK_S3_REGION",
    "SPACEDOCK_S3_REDIRECT",
)
GATEWAY_VARIABLES = (
    "SPACEDOCK_ADMIN_PASSWORD",
    "SPACEDOCK_CACHE_TTL_SECONDS",
    "SPACEDOCK_TOKEN_TTL_SECONDS",
    "SPACEDOCK_SEND_TIMEOUT_SECONDS",
)
# The registry registers the builder's key, seals build requests, and checks uploaded
# packages against the limits the builder will apply.
BUILD_REQUEST_VARIABLES = (
    "SPACEDOCK_BUILDER_KEY",
    "SPACEDOCK_SEALING_KEY",
    "SPACEDOCK_BUILD_MAX_EXTRACT_BYTES",
    "SPACEDOCK_BUILD_MAX_FILES",
)
BUILD_VARIABLES = (
    "DOCKER_HOST",
    "SPACEDOCK_DOCKER_REGISTRY",
    "SPACEDOCK_BUILD_CONCURRENCY",
    "SPACEDOCK_BUILD_TIMEOUT_SECONDS",
    "SPACEDOCK_BUILD_ALLOWED_REGISTRIES",
    "SPACEDOCK_BUILD_MEMORY_MB",
    "SPACEDOCK_BUILD_CPUS",
    "SPACEDOCK_BUILD_PROCESSES",
    "SPACEDOCK_BUILD_CGROUP_PARENT",
    "SPACEDOCK_BUILD_FEATURES_SECONDS",
)
RETENTION_VARIABLES = (
    "SPACEDOCK_RETENTION_INTERVAL_SECONDS",
    "SPACEDOCK_RETENTION_DEBOUNCE_SECONDS",
)
# A builder or reaper run alone serves /metrics on a port of its own (the registry, on its own).
METRICS_VARIABLES = ("SPACEDOCK_METRICS_LISTEN",)
SERVICE_VARIABLES: Mapping[str, frozenset[str]] = {
    "registry": frozenset(
        CORE_VARIABLES + STORAGE_VARIABLES + GATEWAY_VARIABLES + BUILD_REQUEST_VARIABLES
    ),
    "builder": frozenset(
        CORE_VARIABLES + BUILD_REQUEST_VARIABLES + BUILD_VARIABLES + METRICS_VARIABLES
    ),
    "reaper": frozenset(
        CORE_VARIABLES + STORAGE_VARIABLES + RETENTION_VARIABLES + METRICS_VARIABLES
    ),
}


class SettingsError(ValueError):
    """One or more variables have values the product cannot use."""


@dataclass(frozen=True, slots=True)
class S3Settings:
    endpoint: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    bucket: str
    secure: bool
    region: str | None
    redirect: bool


@dataclass(frozen=True, slots=True)
class Settings:
    listen_host: str
    listen_port: int
    public_url: str
    data_dir: Path
    storage: str
    s3: S3Settings | None
    mongo_url: str | None = field(repr=False)
    amqp_url: str | None = field(repr=False)
    admin_password: str | None = field(repr=False)
    registry_url: str
    docker_host: str | None
    cache_ttl_seconds: float
    token_ttl_seconds: int
    log_format: str
    builder_key: str | None = field(default=None, repr=False)
    # Shared by registry and builder: seals sensitive variables on their way through MongoDB.
    sealing_key: bytes | None = field(default=None, repr=False)
    build_concurrency: int = 2
    build_timeout_seconds: int = 1800
    # What one build's packages may expand to, all of them together.
    build_max_extract_bytes: int = 4 * 1024**3
    build_max_files: int = 200_000
    # Registries other than this one that builds may take images from (host[:port]).
    build_allowed_registries: tuple[str, ...] = ()
    # What one docker-strategy build's RUN steps may use.
    build_memory_bytes: int = 2 * 1024**3
    build_cpus: float = 1.0
    build_processes: int = 4096
    # Where each docker-strategy build gets a cgroup with pids.max ("" for none).
    build_cgroup_parent: str = "spacedock-builds"
    # The configuration features of one build, at most (a runaway template or regex fails).
    build_features_seconds: int = 30
    docker_registry: str = ""
    retention_interval_seconds: int = 3600
    # A deployment tag pushed makes its space's retention due, at most this often.
    retention_debounce_seconds: int = 60
    # A client that accepts no bytes of a download for this long is dropped.
    send_timeout_seconds: int = 60
    # Where a builder or reaper run alone serves /metrics: no host for nowhere, no port for
    # the service's own (shared.metrics.DEFAULT_PORTS).
    metrics_host: str | None = "127.0.0.1"
    metrics_port: int | None = None

    @property
    def public_host(self) -> str:
        """``host[:port]`` of the public URL, as used in image references."""
        return urlsplit(self.public_url).netloc

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, service: str | None = None
    ) -> Settings:
        """Every variable, or only those ``service`` reads (a key of ``SERVICE_VARIABLES``)."""
        env = os.environ if environ is None else environ
        problems: list[str] = []
        reads = None if service is None else SERVICE_VARIABLES[service]

        def get(name: str, default: str | None = None) -> str | None:
            if reads is not None and name not in reads:
                return default
            value = env.get(name)
            return default if value is None or value == "" else value

        def boolean(name: str, default: bool) -> bool:
            raw = get(name)
            if raw is None:
                return default
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            problems.append(f"{name}={raw!r}: expected true or false")
            return default

        listen = get("SPACEDOCK_LISTEN", "127.0.0.1:5000") or ""
        host, _, port_text = listen.rpartition(":")
        port = 0
        unbalanced = host.startswith("[") != host.endswith("]")  # half an IPv6 literal
        if unbalanced or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            problems.append(f"SPACEDOCK_LISTEN={listen!r}: expected host:port, e.g. 0.0.0.0:5000")
        else:
            port = int(port_text)
        host = host.strip("[]")

        public_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if ":" in public_host:
            public_host = f"[{public_host}]"  # an IPv6 literal in a URL
        default_public = f"http://{public_host}:{port}"
        public_url = (get("SPACEDOCK_PUBLIC_URL", default_public) or "").rstrip("/")
        if not _is_http_url(public_url):
            problems.append(f"SPACEDOCK_PUBLIC_URL={public_url!r}: expected an http(s) URL")
        registry_url = (get("SPACEDOCK_REGISTRY_URL", public_url) or "").rstrip("/")
        if not _is_http_url(registry_url):
            problems.append(f"SPACEDOCK_REGISTRY_URL={registry_url!r}: expected an http(s) URL")

        storage = (get("SPACEDOCK_STORAGE", "filesystem") or "").lower()
        s3: S3Settings | None = None
        if storage == "s3":
            missing = [
                name
                for name in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "BUCKET")
                if get(f"SPACEDOCK_S3_{name}") is None
            ]
            if missing:
                names = ", ".join(f"SPACEDOCK_S3_{m}" for m in missing)
                problems.append(f"SPACEDOCK_STORAGE=s3 needs {names}")
            else:
                endpoint = get("SPACEDOCK_S3_ENDPOINT") or ""
                if "://" in endpoint:
                    problems.append(
                        f"SPACEDOCK_S3_ENDPOINT={endpoint!r}: expected host:port without a "
                        "scheme (use SPACEDOCK_S3_SECURE for https)"
                    )
                s3 = S3Settings(
                    endpoint=endpoint,
                    access_key=get("SPACEDOCK_S3_ACCESS_KEY") or "",
                    secret_key=get("SPACEDOCK_S3_SECRET_KEY") or "",
                    bucket=get("SPACEDOCK_S3_BUCKET") or "",
                    secure=boolean("SPACEDOCK_S3_SECURE", False),
                    region=get("SPACEDOCK_S3_REGION"),
                    redirect=boolean("SPACEDOCK_S3_REDIRECT", False),
                )
        elif storage != "filesystem":
            problems.append(f"SPACEDOCK_STORAGE={storage!r}: expected filesystem or s3")
        elif boolean("SPACEDOCK_S3_REDIRECT", False):
            problems.append("SPACEDOCK_S3_REDIRECT=true needs SPACEDOCK_STORAGE=s3")

        mongo_url = get("SPACEDOCK_MONGO_URL")
        if mongo_url is not None and not mongo_url.startswith(("mongodb://", "mongodb+srv://")):
            problems.append("SPACEDOCK_MONGO_URL: expected a mongodb:// or mongodb+srv:// URL")
        amqp_url = get("SPACEDOCK_AMQP_URL")
        if amqp_url is not None and not amqp_url.startswith(("amqp://", "amqps://")):
            problems.append("SPACEDOCK_AMQP_URL: expected an amqp:// or amqps:// URL")

        ttl_text = get("SPACEDOCK_CACHE_TTL_SECONDS", "2") or "2"
        try:
            cache_ttl = float(ttl_text)
            if cache_ttl < 0:
                raise ValueError(ttl_text)
        except ValueError:
            problems.append(f"SPACEDOCK_CACHE_TTL_SECONDS={ttl_text!r}: expected seconds >= 0")
            cache_ttl = 0.0

        token_ttl_text = get("SPACEDOCK_TOKEN_TTL_SECONDS", "300") or "300"
        token_ttl = 300
        if not token_ttl_text.isdigit() or not 1 <= int(token_ttl_text) <= 86_400:
            problems.append(
                f"SPACEDOCK_TOKEN_TTL_SECONDS={token_ttl_text!r}: expected seconds from 1 to 86400"
            )
        else:
            token_ttl = int(token_ttl_text)

        builder_key = get("SPACEDOCK_BUILDER_KEY")
        if builder_key is not None and not re.fullmatch(
            r"sdk_[0-9a-f]{16}\.[A-Za-z0-9_-]{43}", builder_key
        ):
            problems.append(
                "SPACEDOCK_BUILDER_KEY: expected an API key, sdk_<16 hex>.<43 characters>"
            )
        sealing_key: bytes | None = None
        sealing_text = get("SPACEDOCK_SEALING_KEY")
        if sealing_text is not None:
            try:
                sealing_key = parse_key(sealing_text)
            except SealingKeyInvalid as exc:
                problems.append(f"SPACEDOCK_SEALING_KEY: {exc}")
        build_concurrency = _int(get, "SPACEDOCK_BUILD_CONCURRENCY", 2, 1, 64, problems)
        build_timeout = _int(get, "SPACEDOCK_BUILD_TIMEOUT_SECONDS", 1800, 10, 86_400, problems)
        build_max_extract_bytes = _int(
            get, "SPACEDOCK_BUILD_MAX_EXTRACT_BYTES", 4 * 1024**3, 1024**2, 1024**4, problems
        )
        build_max_files = _int(
            get, "SPACEDOCK_BUILD_MAX_FILES", 200_000, 100, 100_000_000, problems
        )
        allowed_registries = tuple(
            host.strip().lower()
            for host in (get("SPACEDOCK_BUILD_ALLOWED_REGISTRIES", "") or "").split(",")
            if host.strip()
        )
        for host in allowed_registries:
            if not re.fullmatch(r"[a-z0-9.-]+(:\d{1,5})?|\[[0-9a-f:]+\](:\d{1,5})?", host):
                problems.append(
                    f"SPACEDOCK_BUILD_ALLOWED_REGISTRIES: {host!r} is not a host[:port]"
                )
        build_memory = _int(get, "SPACEDOCK_BUILD_MEMORY_MB", 2048, 64, 1024 * 1024, problems)
        build_processes = _int(get, "SPACEDOCK_BUILD_PROCESSES", 4096, 64, 1_000_000, problems)
        cgroup_parent = (get("SPACEDOCK_BUILD_CGROUP_PARENT", "spacedock-builds") or "").strip("/")
        if cgroup_parent.lower() == "none":
            cgroup_parent = ""
        elif not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,127})*", cgroup_parent
        ):
            problems.append(
                f"SPACEDOCK_BUILD_CGROUP_PARENT={cgroup_parent!r}: expected a cgroup path such "
                "as spacedock-builds, or none"
            )
        build_features_seconds = _int(
            get, "SPACEDOCK_BUILD_FEATURES_SECONDS", 30, 1, 86_400, problems
        )
        cpus_text = get("SPACEDOCK_BUILD_CPUS", "1") or "1"
        try:
            build_cpus = float(cpus_text)
            if not 0.01 <= build_cpus <= 1024:
                raise ValueError(cpus_text)
        except ValueError:
            problems.append(f"SPACEDOCK_BUILD_CPUS={cpus_text!r}: expected CPUs from 0.01 to 1024")
            build_cpus = 1.0
        retention_interval = _int(
            get, "SPACEDOCK_RETENTION_INTERVAL_SECONDS", 3600, 1, 7 * 86_400, problems
        )
        retention_debounce = _int(
            get, "SPACEDOCK_RETENTION_DEBOUNCE_SECONDS", 60, 0, 86_400, problems
        )
        send_timeout = _int(get, "SPACEDOCK_SEND_TIMEOUT_SECONDS", 60, 1, 3600, problems)
        metrics_host, metrics_port = _metrics_listen(get("SPACEDOCK_METRICS_LISTEN"), problems)

        log_format = (get("SPACEDOCK_LOG_FORMAT", "auto") or "").lower()
        if log_format not in ("auto", "json", "console"):
            problems.append(f"SPACEDOCK_LOG_FORMAT={log_format!r}: expected auto, json or console")

        if problems:
            raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems))
        return cls(
            listen_host=host,
            listen_port=port,
            public_url=public_url,
            data_dir=Path(get("SPACEDOCK_DATA_DIR", "./.spacedock") or ".spacedock").resolve(),
            storage=storage,
            s3=s3,
            mongo_url=mongo_url,
            amqp_url=amqp_url,
            admin_password=get("SPACEDOCK_ADMIN_PASSWORD"),
            registry_url=registry_url,
            docker_host=get("DOCKER_HOST"),
            cache_ttl_seconds=cache_ttl,
            token_ttl_seconds=token_ttl,
            log_format=log_format,
            builder_key=builder_key,
            sealing_key=sealing_key,
            build_concurrency=build_concurrency,
            build_timeout_seconds=build_timeout,
            build_max_extract_bytes=build_max_extract_bytes,
            build_max_files=build_max_files,
            build_allowed_registries=allowed_registries,
            build_memory_bytes=build_memory * 1024 * 1024,
            build_cpus=build_cpus,
            build_processes=build_processes,
            build_cgroup_parent=cgroup_parent,
            build_features_seconds=build_features_seconds,
            docker_registry=get("SPACEDOCK_DOCKER_REGISTRY") or urlsplit(registry_url).netloc,
            retention_interval_seconds=retention_interval,
            retention_debounce_seconds=retention_debounce,
            send_timeout_seconds=send_timeout,
            metrics_host=metrics_host,
            metrics_port=metrics_port,
        )


def _int(
    get: Callable[[str, str | None], str | None],
    name: str,
    default: int,
    low: int,
    high: int,
    problems: list[str],
) -> int:
    text = get(name, None)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        problems.append(f"{name}={text!r}: expected a whole number from {low} to {high}")
        return default
    return int(text)


def _metrics_listen(value: str | None, problems: list[str]) -> tuple[str | None, int | None]:
    """``host:port`` (port 0: one the system chooses), or ``none``; unset: 127.0.0.1 on the
    service's own port."""
    if value is None:
        return "127.0.0.1", None
    if value.strip().lower() == "none":
        return None, None
    host, _, port = value.rpartition(":")
    if not host or not port.isascii() or not port.isdigit() or not int(port) < 65536:
        problems.append(
            f"SPACEDOCK_METRICS_LISTEN={value!r}: expected host:port, e.g. 0.0.0.0:9102, or none"
        )
        return "127.0.0.1", None
    return host.strip("[]"), int(port)


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a port that is no number raises)
    except ValueError:  # an unclosed IPv6 bracket, say
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
