"""Sealing of sensitive values: what is sealed opens only with the same key, for the same
build, unaltered; keys are read from their text and kept in the data dir for ``serve``."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from shared.sealing import (
    MIN_KEY_BYTES,
    PREFIX,
    SealBroken,
    Sealer,
    SealingKeyInvalid,
    new_key_text,
    parse_key,
    stored_key,
)
from shared.settings import Settings, SettingsError

KEY = bytes(range(32))
VALUES = {"ConnectionStrings:Db": "Server=db;Password=s3cret", "Token": "ünïcode ✓"}
CONTEXT = "spaces-1/deployments-75-web"


def test_sealed_values_open_again_with_the_same_key_and_context() -> None:
    sealed = Sealer(KEY).seal(VALUES, context=CONTEXT)
    assert Sealer(KEY).open(sealed, context=CONTEXT) == VALUES


def test_a_sealed_value_shows_nothing_of_the_values_and_differs_each_time() -> None:
    sealer = Sealer(KEY)
    first, second = (sealer.seal(VALUES, context=CONTEXT) for _ in range(2))
    assert first != second  # a fresh nonce each time
    assert first.startswith(PREFIX)
    for secret in ("s3cret", "Password", "ConnectionStrings"):
        assert secret not in first


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_any_change_to_a_sealed_value_is_detected(position: int) -> None:
    sealed = Sealer(KEY).seal(VALUES, context=CONTEXT)
    body = bytearray(base64.urlsafe_b64decode(sealed.removeprefix(PREFIX) + "=="))
    body[position] ^= 0x01
    tampered = PREFIX + base64.urlsafe_b64encode(bytes(body)).decode().rstrip("=")
    with pytest.raises(SealBroken):
        Sealer(KEY).open(tampered, context=CONTEXT)


def test_a_truncated_or_foreign_value_does_not_open() -> None:
    sealed = Sealer(KEY).seal(VALUES, context=CONTEXT)
    for broken in (sealed[:-4], sealed[:10], "v2." + sealed[3:], "not sealed", "v1.!!!!", ""):
        with pytest.raises(SealBroken):
            Sealer(KEY).open(broken, context=CONTEXT)


def test_another_key_does_not_open_it() -> None:
    sealed = Sealer(KEY).seal(VALUES, context=CONTEXT)
    with pytest.raises(SealBroken):
        Sealer(bytes(32)).open(sealed, context=CONTEXT)


def test_values_sealed_for_one_build_do_not_open_for_another() -> None:
    """The context (space and build id) is bound in: a sealed value replayed into another
    space's build, or another build, does not open."""
    sealed = Sealer(KEY).seal(VALUES, context=CONTEXT)
    for other in ("spaces-2/deployments-75-web", "spaces-1/deployments-76-web"):
        with pytest.raises(SealBroken):
            Sealer(KEY).open(sealed, context=other)


def test_keys_are_hex_or_base64_of_at_least_32_bytes() -> None:
    raw = os.urandom(32)
    assert parse_key(raw.hex()) == raw
    assert parse_key(base64.b64encode(raw).decode()) == raw
    assert parse_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    assert len(parse_key(new_key_text())) == MIN_KEY_BYTES
    for bad in ("", "short", os.urandom(16).hex(), "not a key at all, with spaces!!"):
        with pytest.raises(SealingKeyInvalid):
            parse_key(bad)
    with pytest.raises(SealingKeyInvalid):
        Sealer(b"too short")


def test_settings_read_and_check_the_sealing_key() -> None:
    raw = os.urandom(32)
    settings = Settings.from_env({"SPACEDOCK_SEALING_KEY": raw.hex()})
    assert settings.sealing_key == raw
    assert raw.hex() not in repr(settings)
    assert Settings.from_env({}).sealing_key is None
    with pytest.raises(SettingsError, match="SPACEDOCK_SEALING_KEY"):
        Settings.from_env({"SPACEDOCK_SEALING_KEY": "too-short"})


def test_the_stored_key_is_made_once_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "sealing-key"
    first = stored_key(path)
    assert stored_key(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("garbage\n")
    with pytest.raises(SealingKeyInvalid, match="sealing-key"):
        stored_key(path)
