"""Which registry the verbs talk to, and as whom.

The CLI reads the settings the instance on this machine was started with (``make run``,
``spacedock serve``) through ``Settings``, as the services do, so by default it reaches that
instance and, as ``admin``, signs in with the password the instance generated into its data
directory. Only the variables below are read: a value the CLI has no use for (a storage
setting, say) neither changes nor stops it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import Settings
from spacedock.verbs.outcomes import UsageError

# What services/registry/bootstrap.py names its superuser and the file with its generated
# password (a unit test holds them equal): importing it would load the whole metadata layer
# into every CLI call.
ADMIN = "admin"
PASSWORD_FILE = "admin-password"
# Read through Settings, as the services read them.
INSTANCE_VARIABLES = (
    "SPACEDOCK_REGISTRY_URL",
    "SPACEDOCK_PUBLIC_URL",
    "SPACEDOCK_LISTEN",
    "SPACEDOCK_DATA_DIR",
    "SPACEDOCK_ADMIN_PASSWORD",
)
USERNAME = "SPACEDOCK_USERNAME"
PASSWORD = "SPACEDOCK_PASSWORD"
NEW_PASSWORD = "SPACEDOCK_NEW_PASSWORD"

ENVIRONMENT_HELP = f"""\
environment:
  {USERNAME}       the user to sign in as (--user wins; default admin)
  {PASSWORD}       that user's password or API key; needed without a terminal,
                           except as admin on the instance's own machine (below)
  {NEW_PASSWORD}   the password `users create` and `users passwd` set, instead of
                           asking twice on the terminal
  SPACEDOCK_REGISTRY_URL   the registry (--url wins); default SPACEDOCK_PUBLIC_URL, whose
  SPACEDOCK_PUBLIC_URL     default is http://<host>:<port> of SPACEDOCK_LISTEN
  SPACEDOCK_LISTEN         (default 127.0.0.1:5000), as the instance itself reads them
  SPACEDOCK_DATA_DIR       the instance's data directory (default ./.spacedock): as admin,
                           its {PASSWORD_FILE} file is used when {PASSWORD} is unset
  SPACEDOCK_ADMIN_PASSWORD the instance's admin password, when it was started with one
  The admin password of the instance (SPACEDOCK_ADMIN_PASSWORD, or the file) is only sent
  to that instance's own URL (SPACEDOCK_PUBLIC_URL), never to another --url or
  SPACEDOCK_REGISTRY_URL."""


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    secret: str = field(repr=False)


def instance_settings(environ: Mapping[str, str]) -> Settings:
    """The instance's settings, from the variables the CLI reads (SettingsError if wrong)."""
    read = {name: environ[name] for name in INSTANCE_VARIABLES if name in environ}
    return Settings.from_env(read)


def default_user(environ: Mapping[str, str]) -> str:
    return environ.get(USERNAME) or ADMIN


def credentials(
    user: str,
    url: str,
    settings: Settings,
    environ: Mapping[str, str],
    ask: Callable[[str], str] | None,
) -> Credentials:
    """``user``'s secret: ``$SPACEDOCK_PASSWORD``; as admin of this machine's instance, its
    admin password; else asked on the terminal (``ask``, None without one)."""
    secret = environ.get(PASSWORD)
    if secret:
        return Credentials(user, secret)
    # The instance's own address only: SPACEDOCK_REGISTRY_URL names whichever registry the
    # caller wants to reach, and the local admin password must not follow it there.
    if user == ADMIN and url.rstrip("/") == settings.public_url.rstrip("/"):
        if settings.admin_password:
            return Credentials(user, settings.admin_password)
        stored = _read_secret(settings.data_dir / PASSWORD_FILE)
        if stored:
            return Credentials(user, stored)
    if ask is None:
        raise UsageError(
            f"no password for {user}: set {PASSWORD} (a password or an API key); "
            "there is no terminal to ask on"
        )
    return Credentials(user, ask(f"password or API key of {user}: "))


def new_password(
    username: str, environ: Mapping[str, str], ask: Callable[[str], str] | None
) -> str:
    """The password to set for ``username``: ``$SPACEDOCK_NEW_PASSWORD``, or typed twice."""
    from_env = environ.get(NEW_PASSWORD)
    if from_env:
        return from_env
    if ask is None:
        raise UsageError(f"set {NEW_PASSWORD}: there is no terminal to ask for the new password")
    first = ask(f"new password for {username}: ")
    if first != ask("again: "):
        raise UsageError("the passwords differ")
    return first


def _read_secret(file: Path) -> str | None:
    try:
        return file.read_text().strip() or None
    except OSError:  # missing, or not readable by this user: another way is asked for
        return None
