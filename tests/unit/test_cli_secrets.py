"""``builds start --secrets-file``: sensitive variables come from a file or standard input,
never from arguments, and anything but an object of name to text is a usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from spacedock.verbs.builds import MAX_SECRETS_FILE_BYTES, read_secrets
from spacedock.verbs.outcomes import UsageError


def test_a_secrets_file_is_read_by_name(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text('{"ConnectionStrings:Db": "Server=db;Password=p=q", "db.url": ""}')
    assert read_secrets(secrets) == {"ConnectionStrings:Db": "Server=db;Password=p=q", "db.url": ""}
    assert read_secrets(None) == {}


@pytest.mark.parametrize(
    "content",
    ['["Db", "x"]', '{"Db": 5}', '{"Db": null}', "Db=x", "[" * 100_000],
)
def test_anything_but_names_and_text_values_is_refused(tmp_path: Path, content: str) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(content)
    with pytest.raises(UsageError, match="secrets-file"):
        read_secrets(secrets)


def test_a_missing_or_huge_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="secrets-file"):
        read_secrets(tmp_path / "absent.json")
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_SECRETS_FILE_BYTES + 1))
    with pytest.raises(UsageError, match="larger"):
        read_secrets(huge)
