"""What ``spacedock serve`` prints at start: a password only when it was just generated."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.registry.bootstrap import AdminCredentials
from shared.settings import Settings
from spacedock.serve import _print_welcome

SETTINGS = Settings.from_env({"SPACEDOCK_DATA_DIR": "/data"})


def test_a_generated_password_is_shown_once(capsys: pytest.CaptureFixture[str]) -> None:
    _print_welcome(SETTINGS, AdminCredentials("admin", "fresh-s3cret", "generated"))
    assert "admin password: fresh-s3cret" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("credentials", "says"),
    [
        (AdminCredentials("admin", "env-s3cret", "environment"), "from SPACEDOCK_ADMIN_PASSWORD"),
        (AdminCredentials("admin", "kept-s3cret", str(Path("/data/admin-password"))),
         "in /data/admin-password"),
        (None, "set before"),
    ],
)  # fmt: skip
def test_a_password_set_or_shown_before_is_not_printed(
    capsys: pytest.CaptureFixture[str], credentials: AdminCredentials | None, says: str
) -> None:
    _print_welcome(SETTINGS, credentials)
    out = capsys.readouterr().out
    assert says in out
    assert "s3cret" not in out
