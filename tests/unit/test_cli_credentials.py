"""Which registry the CLI reaches and as whom: the instance's own settings, the admin
password of this machine's instance (only for that instance), else SPACEDOCK_PASSWORD or a
terminal; without either, an error that names the variable."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.registry import bootstrap
from spacedock.verbs import instance
from spacedock.verbs.client import Api, check_url
from spacedock.verbs.instance import credentials, instance_settings, new_password
from spacedock.verbs.outcomes import ApiFailed, ExitCode, UsageError


def never_ask(prompt: str) -> str:
    raise AssertionError(f"asked {prompt!r}")


def test_the_url_follows_the_instances_listen_and_public_url() -> None:
    assert instance_settings({"SPACEDOCK_LISTEN": "0.0.0.0:6001"}).registry_url == (
        "http://127.0.0.1:6001"
    )
    public = {"SPACEDOCK_LISTEN": "0.0.0.0:6001", "SPACEDOCK_PUBLIC_URL": "https://r.example"}
    assert instance_settings(public).registry_url == "https://r.example"


def test_variables_the_cli_does_not_read_cannot_stop_it() -> None:
    settings = instance_settings({"SPACEDOCK_STORAGE": "floppy", "SPACEDOCK_LISTEN": "h:7"})
    assert settings.registry_url == "http://h:7"


def test_admin_of_this_machine_uses_the_generated_password_file(tmp_path: Path) -> None:
    (tmp_path / "admin-password").write_text("generated-secret\n")
    env = {"SPACEDOCK_DATA_DIR": str(tmp_path), "SPACEDOCK_LISTEN": "127.0.0.1:6002"}
    settings = instance_settings(env)
    found = credentials("admin", "http://127.0.0.1:6002", settings, env, never_ask)
    assert found.secret == "generated-secret"


def test_the_instances_password_is_never_sent_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "admin-password").write_text("generated-secret\n")
    env = {"SPACEDOCK_DATA_DIR": str(tmp_path), "SPACEDOCK_ADMIN_PASSWORD": "set-secret"}
    settings = instance_settings(env)
    with pytest.raises(UsageError):
        credentials("admin", "https://elsewhere.example", settings, env, None)
    asked = credentials("admin", "https://elsewhere.example", settings, env, lambda p: "typed")
    assert asked.secret == "typed"


def test_the_instances_password_does_not_follow_spacedock_registry_url(tmp_path: Path) -> None:
    """SPACEDOCK_REGISTRY_URL picks another registry: the local admin password stays here."""
    (tmp_path / "admin-password").write_text("generated-secret\n")
    env = {
        "SPACEDOCK_DATA_DIR": str(tmp_path),
        "SPACEDOCK_ADMIN_PASSWORD": "set-secret",
        "SPACEDOCK_REGISTRY_URL": "http://collector.example:47001",
    }
    settings = instance_settings(env)
    with pytest.raises(UsageError):
        credentials("admin", settings.registry_url, settings, env, None)


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://127.0.0.1:abc", "http://exa mple.com", "ftp://r.example"]
)
def test_a_url_that_is_no_registry_address_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError):
        check_url(url)


def test_a_redirect_is_not_followed_with_the_credentials() -> None:
    """A 3xx (from a proxy, say) fails the verb; the place it points to hears nothing."""
    heard: list[str | None] = []

    class Collector(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            heard.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    collector = ThreadingHTTPServer(("127.0.0.1", 0), Collector)

    class Redirector(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{collector.server_port}/x")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    redirector = ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for server in (collector, redirector):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = Api(f"http://127.0.0.1:{redirector.server_port}", "bob", "user-secret")
        with pytest.raises(ApiFailed) as failed:
            api.call("GET", "/spaces")
        assert failed.value.exit_code == ExitCode.FAILED
        assert heard == []
    finally:
        for server in (collector, redirector):
            server.shutdown()
            server.server_close()


def test_spacedock_password_wins_for_any_user(tmp_path: Path) -> None:
    env = {"SPACEDOCK_PASSWORD": "sdk_key", "SPACEDOCK_DATA_DIR": str(tmp_path)}
    found = credentials("ci", "https://r.example", instance_settings(env), env, never_ask)
    assert (found.user, found.secret) == ("ci", "sdk_key")


def test_without_a_terminal_or_credentials_the_error_names_the_variable(tmp_path: Path) -> None:
    env = {"SPACEDOCK_DATA_DIR": str(tmp_path)}  # no password file there
    settings = instance_settings(env)
    with pytest.raises(UsageError, match="set SPACEDOCK_PASSWORD") as refused:
        credentials("admin", settings.registry_url, settings, env, None)
    assert refused.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError, match="set SPACEDOCK_NEW_PASSWORD"):
        new_password("bob", {}, None)


def test_a_new_password_is_typed_twice_alike() -> None:
    assert new_password("bob", {"SPACEDOCK_NEW_PASSWORD": "from-env"}, never_ask) == "from-env"
    typed = iter(["one", "two"])
    with pytest.raises(UsageError, match="differ"):
        new_password("bob", {}, lambda prompt: next(typed))


def test_the_admin_and_its_password_file_are_those_the_registry_bootstraps() -> None:
    assert (instance.ADMIN, instance.PASSWORD_FILE) == (bootstrap.ADMIN, bootstrap.PASSWORD_FILE)
