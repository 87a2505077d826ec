"""Settings.from_env: defaults, validation and how problems are reported."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from shared.settings import SERVICE_VARIABLES, S3Settings, Settings, SettingsError

S3_ENV = {
    "SPACEDOCK_STORAGE": "s3",
    "SPACEDOCK_S3_ENDPOINT": "minio:9000",
    "SPACEDOCK_S3_ACCESS_KEY": "access-key-id",
    "SPACEDOCK_S3_SECRET_KEY": "secret-access-key",
    "SPACEDOCK_S3_BUCKET": "layers",
}


def settings_error(environ: dict[str, str]) -> str:
    """The message of the SettingsError that ``environ`` must raise."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    return str(caught.value)


def test_empty_environment_gives_the_documented_defaults() -> None:
    """With nothing set the registry listens on 127.0.0.1:5000 and stores on the filesystem."""
    settings = Settings.from_env({})
    assert settings.listen_host == "127.0.0.1"
    assert settings.listen_port == 5000
    assert settings.public_url == "http://127.0.0.1:5000"
    assert settings.registry_url == "http://127.0.0.1:5000"
    assert settings.public_host == "127.0.0.1:5000"
    assert settings.storage == "filesystem"
    assert settings.s3 is None
    assert settings.mongo_url is None
    assert settings.amqp_url is None
    assert settings.admin_password is None
    assert settings.docker_host is None
    assert settings.cache_ttl_seconds == 2.0
    assert settings.log_format == "auto"
    assert settings.data_dir == Path(".spacedock").resolve()


def test_empty_values_count_as_unset() -> None:
    """A variable set to the empty string falls back to its default."""
    names = [
        "SPACEDOCK_LISTEN",
        "SPACEDOCK_PUBLIC_URL",
        "SPACEDOCK_STORAGE",
        "SPACEDOCK_MONGO_URL",
        "SPACEDOCK_AMQP_URL",
        "SPACEDOCK_CACHE_TTL_SECONDS",
        "SPACEDOCK_LOG_FORMAT",
        "SPACEDOCK_S3_REDIRECT",
    ]
    assert Settings.from_env(dict.fromkeys(names, "")) == Settings.from_env({})


def test_without_an_argument_the_process_environment_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """from_env() with no mapping reads os.environ."""
    monkeypatch.setenv("SPACEDOCK_LISTEN", "127.0.0.1:5999")
    assert Settings.from_env().listen_port == 5999


@pytest.mark.parametrize(
    ("listen", "host", "port", "public_url"),
    [
        ("0.0.0.0:8080", "0.0.0.0", 8080, "http://127.0.0.1:8080"),
        ("[::]:5000", "::", 5000, "http://127.0.0.1:5000"),
        ("10.1.2.3:1", "10.1.2.3", 1, "http://10.1.2.3:1"),
        ("registry.local:65535", "registry.local", 65535, "http://registry.local:65535"),
    ],
)
def test_listen_address_sets_host_port_and_default_public_url(
    listen: str, host: str, port: int, public_url: str
) -> None:
    """SPACEDOCK_LISTEN gives the bind address; a wildcard host defaults the public URL to
    127.0.0.1."""
    settings = Settings.from_env({"SPACEDOCK_LISTEN": listen})
    assert settings.listen_host == host
    assert settings.listen_port == port
    assert settings.public_url == public_url


@pytest.mark.parametrize(
    "listen",
    [
        "5000",
        ":5000",
        "localhost",
        "localhost:",
        "localhost:http",
        "host:0",
        "host:65536",
        "host:-1",
        "host:50 00",
    ],
)
def test_invalid_listen_address_is_reported_by_name(listen: str) -> None:
    """A SPACEDOCK_LISTEN that is not host:port with a port in 1..65535 is an error naming it."""
    message = settings_error({"SPACEDOCK_LISTEN": listen})
    assert "SPACEDOCK_LISTEN" in message
    assert repr(listen) in message


@pytest.mark.parametrize(
    ("public_url", "expected_url", "expected_host"),
    [
        ("https://registry.example.com", "https://registry.example.com", "registry.example.com"),
        ("https://registry.example.com/", "https://registry.example.com", "registry.example.com"),
        ("http://10.0.0.5:5000", "http://10.0.0.5:5000", "10.0.0.5:5000"),
        ("http://[::1]:5000", "http://[::1]:5000", "[::1]:5000"),
    ],
)
def test_public_url_and_public_host(public_url: str, expected_url: str, expected_host: str) -> None:
    """SPACEDOCK_PUBLIC_URL loses a trailing slash; public_host is its host[:port]."""
    settings = Settings.from_env({"SPACEDOCK_PUBLIC_URL": public_url})
    assert settings.public_url == expected_url
    assert settings.public_host == expected_host


def test_registry_url_defaults_to_public_url_and_can_be_overridden() -> None:
    """SPACEDOCK_REGISTRY_URL defaults to the public URL and otherwise is taken as given."""
    public = {"SPACEDOCK_PUBLIC_URL": "https://registry.example.com"}
    assert Settings.from_env(public).registry_url == "https://registry.example.com"
    overridden = {**public, "SPACEDOCK_REGISTRY_URL": "http://registry.internal:5000/"}
    assert Settings.from_env(overridden).registry_url == "http://registry.internal:5000"


@pytest.mark.parametrize("name", ["SPACEDOCK_PUBLIC_URL", "SPACEDOCK_REGISTRY_URL"])
@pytest.mark.parametrize("url", ["registry.example.com", "ftp://example.com", "http://", "https:"])
def test_non_http_urls_are_reported_by_name(name: str, url: str) -> None:
    """Public and registry URLs must be http(s) URLs with a host."""
    assert name in settings_error({name: url})


def test_s3_storage_with_all_variables() -> None:
    """SPACEDOCK_STORAGE=s3 with endpoint, keys and bucket yields S3 settings with defaults."""
    settings = Settings.from_env(S3_ENV)
    assert settings.storage == "s3"
    assert settings.s3 == S3Settings(
        endpoint="minio:9000",
        access_key="access-key-id",
        secret_key="secret-access-key",
        bucket="layers",
        secure=False,
        region=None,
        redirect=False,
    )


def test_s3_optional_variables() -> None:
    """SECURE, REGION and REDIRECT are read when S3 storage is chosen."""
    settings = Settings.from_env(
        {
            **S3_ENV,
            "SPACEDOCK_STORAGE": "S3",
            "SPACEDOCK_S3_SECURE": "true",
            "SPACEDOCK_S3_REGION": "eu-west-1",
            "SPACEDOCK_S3_REDIRECT": "yes",
        }
    )
    assert settings.s3 is not None
    assert settings.s3.secure
    assert settings.s3.region == "eu-west-1"
    assert settings.s3.redirect


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("on", True),
        (" On ", True),
        ("0", False),
        ("false", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_boolean_spellings(raw: str, expected: bool) -> None:
    """Booleans accept 1/0, true/false, yes/no and on/off in any case."""
    settings = Settings.from_env({**S3_ENV, "SPACEDOCK_S3_REDIRECT": raw})
    assert settings.s3 is not None
    assert settings.s3.redirect is expected


def test_s3_storage_missing_everything_names_all_variables_in_one_error() -> None:
    """Every missing S3 variable is named in the single error raised."""
    message = settings_error({"SPACEDOCK_STORAGE": "s3"})
    for name in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "BUCKET"):
        assert f"SPACEDOCK_S3_{name}" in message


@pytest.mark.parametrize("missing", sorted(set(S3_ENV) - {"SPACEDOCK_STORAGE"}))
def test_s3_storage_names_exactly_the_missing_variable(missing: str) -> None:
    """Only the variables actually missing are named."""
    environ = {k: v for k, v in S3_ENV.items() if k != missing}
    message = settings_error(environ)
    assert missing in message
    for present in set(environ) - {"SPACEDOCK_STORAGE"}:
        assert present not in message


@pytest.mark.parametrize("storage", ["gcs", "memory", "s4", "file"])
def test_unknown_storage_is_reported(storage: str) -> None:
    """A storage other than filesystem or s3 is an error naming SPACEDOCK_STORAGE."""
    message = settings_error({"SPACEDOCK_STORAGE": storage})
    assert "SPACEDOCK_STORAGE" in message
    assert storage in message


@pytest.mark.parametrize("endpoint", ["http://minio:9000", "https://s3.amazonaws.com"])
def test_s3_endpoint_with_a_scheme_is_reported(endpoint: str) -> None:
    """The S3 endpoint is host:port; a scheme is an error naming SPACEDOCK_S3_ENDPOINT."""
    message = settings_error({**S3_ENV, "SPACEDOCK_S3_ENDPOINT": endpoint})
    assert "SPACEDOCK_S3_ENDPOINT" in message


@pytest.mark.parametrize("name", ["SPACEDOCK_S3_REDIRECT", "SPACEDOCK_S3_SECURE"])
@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "y"])
def test_non_boolean_s3_flags_are_reported(name: str, raw: str) -> None:
    """An S3 flag that is not a boolean spelling is an error naming the variable and value."""
    message = settings_error({**S3_ENV, name: raw})
    assert name in message
    assert repr(raw) in message


def test_redirect_without_s3_storage_is_reported() -> None:
    """SPACEDOCK_S3_REDIRECT=true with filesystem storage is an error pointing at the storage."""
    message = settings_error({"SPACEDOCK_S3_REDIRECT": "true"})
    assert "SPACEDOCK_S3_REDIRECT" in message
    assert "SPACEDOCK_STORAGE=s3" in message


def test_redirect_off_without_s3_storage_is_fine() -> None:
    """An explicitly disabled redirect does not require S3 storage."""
    assert Settings.from_env({"SPACEDOCK_S3_REDIRECT": "false"}).s3 is None


@pytest.mark.parametrize(
    "url", ["mongodb://localhost:27017/spacedock", "mongodb+srv://user:pw@cluster.example.net/db"]
)
def test_mongo_urls_are_accepted(url: str) -> None:
    """mongodb:// and mongodb+srv:// URLs are taken as given."""
    assert Settings.from_env({"SPACEDOCK_MONGO_URL": url}).mongo_url == url


@pytest.mark.parametrize(
    "url", ["localhost:27017", "postgres://db/x", "http://mongo:27017", "MONGODB://x"]
)
def test_bad_mongo_url_is_reported_without_echoing_it(url: str) -> None:
    """A non-MongoDB URL is an error naming the variable but not repeating the URL."""
    message = settings_error({"SPACEDOCK_MONGO_URL": url})
    assert "SPACEDOCK_MONGO_URL" in message
    assert url not in message


@pytest.mark.parametrize("url", ["amqp://guest:guest@rabbit:5672/", "amqps://rabbit/vhost"])
def test_amqp_urls_are_accepted(url: str) -> None:
    """amqp:// and amqps:// URLs are taken as given."""
    assert Settings.from_env({"SPACEDOCK_AMQP_URL": url}).amqp_url == url


@pytest.mark.parametrize("url", ["rabbit:5672", "http://user:pw@rabbit", "mqtt://rabbit"])
def test_bad_amqp_url_is_reported_without_echoing_it(url: str) -> None:
    """A non-AMQP URL is an error naming the variable but not repeating the URL."""
    message = settings_error({"SPACEDOCK_AMQP_URL": url})
    assert "SPACEDOCK_AMQP_URL" in message
    assert url not in message


@pytest.mark.parametrize(("raw", "seconds"), [("0", 0.0), ("1.5", 1.5), ("30", 30.0)])
def test_cache_ttl_is_parsed_as_seconds(raw: str, seconds: float) -> None:
    """SPACEDOCK_CACHE_TTL_SECONDS accepts non-negative numbers."""
    assert Settings.from_env({"SPACEDOCK_CACHE_TTL_SECONDS": raw}).cache_ttl_seconds == seconds


@pytest.mark.parametrize("raw", ["-1", "-0.1", "soon", "1s"])
def test_bad_cache_ttl_is_reported(raw: str) -> None:
    """A negative or non-numeric cache ttl is an error naming the variable."""
    assert "SPACEDOCK_CACHE_TTL_SECONDS" in settings_error({"SPACEDOCK_CACHE_TTL_SECONDS": raw})


@pytest.mark.parametrize(("raw", "expected"), [("json", "json"), ("Console", "console")])
def test_log_format_is_case_insensitive(raw: str, expected: str) -> None:
    """SPACEDOCK_LOG_FORMAT accepts auto, json or console in any case."""
    assert Settings.from_env({"SPACEDOCK_LOG_FORMAT": raw}).log_format == expected


def test_bad_log_format_is_reported() -> None:
    """An unknown log format is an error naming the variable."""
    assert "SPACEDOCK_LOG_FORMAT" in settings_error({"SPACEDOCK_LOG_FORMAT": "xml"})


def test_several_problems_are_reported_together() -> None:
    """All invalid variables are named in one SettingsError, one per line."""
    message = settings_error(
        {
            "SPACEDOCK_LISTEN": "nowhere",
            "SPACEDOCK_STORAGE": "tape",
            "SPACEDOCK_MONGO_URL": "localhost",
            "SPACEDOCK_AMQP_URL": "localhost",
            "SPACEDOCK_CACHE_TTL_SECONDS": "-5",
            "SPACEDOCK_LOG_FORMAT": "xml",
        }
    )
    names = [
        "SPACEDOCK_LISTEN",
        "SPACEDOCK_STORAGE",
        "SPACEDOCK_MONGO_URL",
        "SPACEDOCK_AMQP_URL",
        "SPACEDOCK_CACHE_TTL_SECONDS",
        "SPACEDOCK_LOG_FORMAT",
    ]
    for name in names:
        assert name in message
    assert len(message.splitlines()) == 1 + len(names)


def test_settings_error_is_a_value_error() -> None:
    """SettingsError can be handled as a ValueError."""
    assert issubclass(SettingsError, ValueError)


def test_secrets_are_not_in_the_repr() -> None:
    """repr(settings) does not reveal the admin password, AMQP URL or S3 keys."""
    settings = Settings.from_env(
        {
            **S3_ENV,
            "SPACEDOCK_ADMIN_PASSWORD": "admin-password-value",
            "SPACEDOCK_AMQP_URL": "amqp://guest:amqp-password-value@rabbit/",
        }
    )
    text = repr(settings)
    for secret in (
        "admin-password-value",
        "amqp-password-value",
        "access-key-id",
        "secret-access-key",
    ):
        assert secret not in text
    assert "minio:9000" in text


def test_passthrough_values() -> None:
    """Admin password, Docker host and data dir are taken from their variables."""
    settings = Settings.from_env(
        {
            "SPACEDOCK_ADMIN_PASSWORD": "pw",
            "DOCKER_HOST": "unix:///var/run/docker.sock",
            "SPACEDOCK_DATA_DIR": "/var/lib/spacedock",
        }
    )
    assert settings.admin_password == "pw"
    assert settings.docker_host == "unix:///var/run/docker.sock"
    assert settings.data_dir == Path("/var/lib/spacedock").resolve()
    assert settings.data_dir.is_absolute()


def test_build_extraction_limits_default_to_4_gib_and_200000_files() -> None:
    """One build's packages may expand to 4 GiB and 200,000 entries unless configured."""
    settings = Settings.from_env({})
    assert settings.build_max_extract_bytes == 4 * 1024**3 == 4294967296
    assert settings.build_max_files == 200_000


def test_build_extraction_limits_are_read() -> None:
    settings = Settings.from_env(
        {"SPACEDOCK_BUILD_MAX_EXTRACT_BYTES": "1048576", "SPACEDOCK_BUILD_MAX_FILES": "100"}
    )
    assert settings.build_max_extract_bytes == 1024 * 1024
    assert settings.build_max_files == 100


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("SPACEDOCK_BUILD_MAX_EXTRACT_BYTES", "1048575"),  # below 1 MiB
        ("SPACEDOCK_BUILD_MAX_EXTRACT_BYTES", str(1024**4 + 1)),  # above 1 TiB
        ("SPACEDOCK_BUILD_MAX_EXTRACT_BYTES", "4G"),
        ("SPACEDOCK_BUILD_MAX_EXTRACT_BYTES", "-1"),
        ("SPACEDOCK_BUILD_MAX_FILES", "99"),
        ("SPACEDOCK_BUILD_MAX_FILES", "100000001"),
        ("SPACEDOCK_BUILD_MAX_FILES", "2e5"),
        ("SPACEDOCK_BUILD_MAX_FILES", "0"),
    ],
)
def test_bad_build_extraction_limits_are_reported_by_name(name: str, raw: str) -> None:
    message = settings_error({name: raw})
    assert name in message
    assert repr(raw) in message


def test_send_timeout_defaults_to_60_seconds_and_is_read() -> None:
    """A download whose client takes no bytes for a minute is dropped, unless configured."""
    assert Settings.from_env({}).send_timeout_seconds == 60
    settings = Settings.from_env({"SPACEDOCK_SEND_TIMEOUT_SECONDS": "5"})
    assert settings.send_timeout_seconds == 5


@pytest.mark.parametrize("raw", ["0", "3601", "1.5", "-1", "60s"])
def test_bad_send_timeout_is_reported_by_name(raw: str) -> None:
    message = settings_error({"SPACEDOCK_SEND_TIMEOUT_SECONDS": raw})
    assert "SPACEDOCK_SEND_TIMEOUT_SECONDS" in message
    assert repr(raw) in message


class _RecordingEnviron(Mapping[str, str]):
    """An environment that remembers which names were looked up."""

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


def test_every_variable_read_belongs_to_a_service() -> None:
    """SERVICE_VARIABLES names every variable there is: none is read by no service."""
    environ = _RecordingEnviron(S3_ENV)
    Settings.from_env(environ)
    assert environ.read == set().union(*SERVICE_VARIABLES.values())


@pytest.mark.parametrize("service", sorted(SERVICE_VARIABLES))
def test_a_service_reads_exactly_its_own_variables(service: str) -> None:
    environ = _RecordingEnviron(S3_ENV)
    Settings.from_env(environ, service=service)
    assert environ.read == SERVICE_VARIABLES[service]


def test_what_each_service_needs() -> None:
    """Storage for those that keep blobs, the builder's own limits for the builder,
    retention for the reaper; the registry also checks what builds will accept."""
    registry, builder, reaper = (SERVICE_VARIABLES[s] for s in ("registry", "builder", "reaper"))
    assert "SPACEDOCK_STORAGE" in registry & reaper
    assert "SPACEDOCK_STORAGE" not in builder
    assert "SPACEDOCK_TOKEN_TTL_SECONDS" in registry - builder - reaper
    assert {"DOCKER_HOST", "SPACEDOCK_BUILD_CONCURRENCY"} <= builder - registry - reaper
    assert "SPACEDOCK_RETENTION_INTERVAL_SECONDS" in reaper - registry - builder
    assert {"SPACEDOCK_BUILDER_KEY", "SPACEDOCK_SEALING_KEY"} <= registry & builder
    assert "SPACEDOCK_BUILD_MAX_FILES" in registry & builder
    assert {"SPACEDOCK_MONGO_URL", "SPACEDOCK_AMQP_URL", "SPACEDOCK_PUBLIC_URL"} <= (
        registry & builder & reaper
    )


def test_another_services_bad_variable_does_not_stop_a_service() -> None:
    """A builder container with a registry-only variable set wrongly still starts; the
    registry that reads it does not."""
    environ = {"SPACEDOCK_TOKEN_TTL_SECONDS": "forever", "SPACEDOCK_STORAGE": "tape"}
    builder = Settings.from_env(environ, service="builder")
    assert builder.token_ttl_seconds == 300  # the default: the builder does not use it
    assert builder.storage == "filesystem"
    message = settings_error_for(environ, "registry")
    assert "SPACEDOCK_TOKEN_TTL_SECONDS='forever'" in message
    assert "SPACEDOCK_STORAGE='tape'" in message
    assert "SPACEDOCK_STORAGE='tape'" in settings_error_for(environ, "reaper")


def test_a_bad_variable_a_service_reads_stops_it() -> None:
    message = settings_error_for({"SPACEDOCK_BUILD_CONCURRENCY": "0"}, "builder")
    assert "SPACEDOCK_BUILD_CONCURRENCY='0'" in message
    # The registry does not build, so the builder's concurrency is not its concern.
    registry = Settings.from_env({"SPACEDOCK_BUILD_CONCURRENCY": "0"}, service="registry")
    assert registry.build_concurrency == 2


def test_a_service_sees_its_variables_as_the_full_read_does() -> None:
    environ = {
        **S3_ENV,
        "SPACEDOCK_LISTEN": "0.0.0.0:5001",
        "SPACEDOCK_MONGO_URL": "mongodb://mongodb/spacedock",
        "SPACEDOCK_AMQP_URL": "amqp://rabbitmq/",
        "SPACEDOCK_BUILDER_KEY": "sdk_0123456789abcdef." + "k" * 43,
        "SPACEDOCK_BUILD_CONCURRENCY": "8",
        "SPACEDOCK_RETENTION_INTERVAL_SECONDS": "120",
        "SPACEDOCK_TOKEN_TTL_SECONDS": "60",
    }
    full = Settings.from_env(environ)
    for service, names in SERVICE_VARIABLES.items():
        alone = Settings.from_env(environ, service=service)
        for name, field_name in [
            ("SPACEDOCK_PUBLIC_URL", "public_url"),
            ("SPACEDOCK_MONGO_URL", "mongo_url"),
            ("SPACEDOCK_AMQP_URL", "amqp_url"),
            ("SPACEDOCK_STORAGE", "s3"),
            ("SPACEDOCK_BUILDER_KEY", "builder_key"),
            ("SPACEDOCK_BUILD_CONCURRENCY", "build_concurrency"),
            ("SPACEDOCK_RETENTION_INTERVAL_SECONDS", "retention_interval_seconds"),
            ("SPACEDOCK_TOKEN_TTL_SECONDS", "token_ttl_seconds"),
        ]:
            if name in names:
                assert getattr(alone, field_name) == getattr(full, field_name), (service, name)


def test_an_unknown_service_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        Settings.from_env({}, service="scheduler")


def settings_error_for(environ: dict[str, str], service: str) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ, service=service)
    return str(caught.value)
