"""What exists from the first start: space ``spaces-1``, the superuser ``admin``, and the
service accounts of the builder (writer in every space) and the reaper (admin in every
space), which sign in with API keys only."""

from __future__ import annotations

import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from services.registry.identity import api_keys
from services.registry.identity.passwords import hash_password, verify_password
from services.registry.identity.roles import Role
from shared.metadata.accounts import AccountStore
from shared.metadata.store import MetadataStore
from shared.settings import Settings

ADMIN = "admin"
DEFAULT_SPACE = ("spaces-1", "Default")
BUILDER, REAPER = "spacedock-builder", "spacedock-reaper"
SERVICE_ACCOUNTS = {BUILDER: Role.WRITER, REAPER: Role.ADMIN}
PASSWORD_FILE = "admin-password"


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    username: str
    password: str = field(repr=False)
    source: str  # "environment", "generated" or a file path


async def first_start(metadata: MetadataStore, settings: Settings) -> AdminCredentials | None:
    """Create the default space and the admin user when missing.

    Returns the admin credentials when this process knows them, so they can be shown.
    """
    await metadata.ensure_indexes()
    await metadata.spaces.ensure(*DEFAULT_SPACE)
    accounts = metadata.accounts
    for username, role in SERVICE_ACCOUNTS.items():
        await accounts.create_user(
            username, None, service=username.removeprefix("spacedock-"), global_role=role.label
        )
    if settings.builder_key is not None:
        key = api_keys.parse_key(settings.builder_key)
        if key is not None:
            await accounts.put_api_key(key.id, BUILDER, "SPACEDOCK_BUILDER_KEY", key.secret_hash)
            # The configured key is the builder's only one: a key rotated away (or the one an
            # earlier `serve` made for its run) stops working, instead of staying valid forever.
            await accounts.revoke_other_keys(BUILDER, key.id)
    credentials = await _admin(accounts, settings)
    await accounts.make_superuser(ADMIN)
    return credentials


async def _admin(accounts: AccountStore, settings: Settings) -> AdminCredentials | None:
    if settings.admin_password is not None:
        user = await accounts.get_user(ADMIN)
        if user is None:
            await accounts.create_user(ADMIN, hash_password(settings.admin_password))
        elif not verify_password(settings.admin_password, user.get("password_hash", "")):
            await accounts.set_password(ADMIN, hash_password(settings.admin_password))
        return AdminCredentials(ADMIN, settings.admin_password, "environment")

    password_file = settings.data_dir / PASSWORD_FILE
    stored = _read_password(password_file)
    user = await accounts.get_user(ADMIN)
    if user is not None:
        if stored is not None and verify_password(stored, user.get("password_hash", "")):
            return AdminCredentials(ADMIN, stored, str(password_file))
        return None
    password = secrets.token_urlsafe(18)
    if await accounts.create_user(ADMIN, hash_password(password)):
        _write_password(password_file, password)
        return AdminCredentials(ADMIN, password, "generated")
    return None


def _read_password(path: Path) -> str | None:
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip() or None
    return None


def _write_password(path: Path, password: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")
