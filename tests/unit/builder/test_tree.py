"""Files of a build context are found, read and written only beneath its root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.builder.archives import ArchiveError
from services.builder.tree import files, inside, read_regular


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A folder beside the context standing for the builder host's files."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "host-only-name.json").write_text('{"secret": "host value"}')
    return folder


@pytest.fixture
def context(tmp_path: Path) -> Path:
    folder = tmp_path / "work" / "context"
    folder.mkdir(parents=True)
    return folder


def test_a_pattern_through_a_link_out_is_refused_before_the_folder_is_listed(
    context: Path, host: Path
) -> None:
    (context / "a").symlink_to("../../host")
    for pattern in ("a/*", "a/host-only-name.json", "*/*.json", "a/**/*.json"):
        with pytest.raises(ArchiveError) as caught:
            files(context, pattern)
        assert caught.value.code == "archive_link_escape"
        assert "'a'" in str(caught.value) and "host-only-name" not in str(caught.value)
    assert files(context, "**/*.json") == []  # ** does not go into linked folders


def test_a_matching_file_link_out_is_refused(context: Path, host: Path) -> None:
    (context / "settings.json").symlink_to("../../host/host-only-name.json")
    with pytest.raises(ArchiveError) as caught:
        files(context, "*.json")
    assert caught.value.code == "archive_link_escape"
    with pytest.raises(ArchiveError):
        inside(context, context / "settings.json")


def test_links_inside_are_followed_and_each_file_listed_once(context: Path) -> None:
    (context / "v1" / "deep").mkdir(parents=True)
    (context / "v1" / "app.json").write_text("{}")
    (context / "v1" / "deep" / "more.json").write_text("{}")
    (context / "current").symlink_to("v1")
    (context / "alias.json").symlink_to("v1/app.json")
    (context / "v1" / "folder.json").mkdir()  # a folder is not a file
    assert files(context, "current/*.json") == [context / "current/app.json"]
    assert files(context, "**/*.json") == [
        context / "alias.json",
        context / "v1/deep/more.json",
    ]  # v1/app.json is alias.json, listed under the first name
    assert files(context, "*/**/more.json") == [context / "current/deep/more.json"]
    assert files(context, "nothing/*") == files(context, "") == []
    assert inside(context, context / "current/app.json") == (context / "v1/app.json").resolve()


@pytest.mark.parametrize("name", ["Dockerfile", "sdi.yaml", "sub/Dockerfile"])
def test_read_regular_reads_a_file_and_answers_none_when_absent(context: Path, name: str) -> None:
    assert read_regular(context, name, 100) is None
    (context / name).parent.mkdir(exist_ok=True)
    (context / name).write_bytes(b"FROM base\n")
    assert read_regular(context, name, 100) == b"FROM base\n"


@pytest.mark.parametrize("target", ["../../host/host-only-name.json", "inside.txt"])
def test_read_regular_refuses_a_link_without_showing_its_content(
    context: Path, host: Path, target: str
) -> None:
    (context / "inside.txt").write_text('{"secret": "host value"}')
    (context / "Dockerfile").symlink_to(target)
    (context / "sub").symlink_to(".")
    for name in ("Dockerfile", "sub/inside.txt"):
        with pytest.raises(ArchiveError) as caught:
            read_regular(context, name, 1024)
        assert caught.value.code == "archive_link_escape"
        assert "secret" not in str(caught.value) and "host value" not in str(caught.value)


def test_read_regular_refuses_special_files_and_oversized_ones(context: Path) -> None:
    os.mkfifo(context / "sdi.yaml")  # would block a plain open for ever
    (context / "Dockerfile").mkdir()
    for name in ("sdi.yaml", "Dockerfile"):
        with pytest.raises(ArchiveError) as caught:
            read_regular(context, name, 1024)
        assert caught.value.code == "archive_special_file"
    (context / "big").write_bytes(b"x" * 11)
    with pytest.raises(ArchiveError) as caught:
        read_regular(context, "big", 10)
    assert caught.value.code == "archive_too_large"
    assert read_regular(context, "big", 11) == b"x" * 11
