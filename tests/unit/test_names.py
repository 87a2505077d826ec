"""Repository names, tags and manifest references."""

from __future__ import annotations

import hashlib

import pytest

from shared.oci.digest import Digest
from shared.oci.errors import DigestInvalid, ManifestInvalid, NameInvalid
from shared.oci.names import Reference, RepositoryName, is_tag, parse_tag

SHA256 = "sha256:" + hashlib.sha256(b"x").hexdigest()


@pytest.mark.parametrize(
    ("text", "space", "path"),
    [
        ("team/app", "team", "app"),
        ("spaces-1/app", "spaces-1", "app"),
        ("a/b", "a", "b"),
        ("0/9", "0", "9"),
        ("team/group/app", "team", "group/app"),
        ("team/a/b/c/d", "team", "a/b/c/d"),
        ("team/my.app", "team", "my.app"),
        ("team/my_app", "team", "my_app"),
        ("team/my__app", "team", "my__app"),
        ("team/my-app", "team", "my-app"),
        ("team/my---app", "team", "my---app"),
        ("team/a.b_c__d-e--f", "team", "a.b_c__d-e--f"),
        ("team/group.x/app_1", "team", "group.x/app_1"),
        ("my-team-2/app", "my-team-2", "app"),
    ],
)
def test_parse_accepts_valid_names(text: str, space: str, path: str) -> None:
    """A valid ``<space>/<name>`` parses and splits into its space and path."""
    name = RepositoryName.parse(text)
    assert str(name) == text
    assert name.full == text
    assert name.space == space
    assert name.path == path


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Team/app",
        "team/App",
        "team/APP",
        "team/app!",
        "team/app:latest",
        "team/app@sha256",
        "team/app name",
        "team/.app",
        "team/app.",
        "team/_app",
        "team/app_",
        "team/-app",
        "team/app-",
        "team/app___x",
        "team/app..x",
        "team/app._x",
        "team/app-_x",
        "/team/app",
        "team/app/",
        "team//app",
        "team/",
        "/app",
        "/",
    ],
)
def test_parse_rejects_invalid_names(text: str) -> None:
    """A name breaking the distribution-spec grammar raises NameInvalid."""
    with pytest.raises(NameInvalid):
        RepositoryName.parse(text)


@pytest.mark.parametrize("text", ["app", "team", "my-app", "a.b"])
def test_parse_rejects_names_without_a_space(text: str) -> None:
    """A single-component name raises NameInvalid explaining the ``<space>/<name>`` form."""
    with pytest.raises(NameInvalid, match="<space>/<name>"):
        RepositoryName.parse(text)


@pytest.mark.parametrize("space", ["my_team", "my.team", "my__team", "team.", "my--team"])
def test_parse_rejects_spaces_with_separators_other_than_single_dashes(space: str) -> None:
    """A space component may only use single ``-`` between alphanumerics."""
    with pytest.raises(NameInvalid):
        RepositoryName.parse(f"{space}/app")


def test_parse_accepts_names_of_exactly_255_characters() -> None:
    """A 255-character name is within the limit."""
    text = "team/" + "a" * 250
    assert len(text) == 255
    assert RepositoryName.parse(text).full == text


def test_parse_rejects_names_longer_than_255_characters() -> None:
    """A 256-character name raises NameInvalid with a truncated detail."""
    text = "team/" + "a" * 251
    with pytest.raises(NameInvalid) as caught:
        RepositoryName.parse(text)
    assert caught.value.detail == {"name": text[:255]}


def test_name_invalid_is_a_400_name_invalid_error() -> None:
    """Rejected names surface as HTTP 400 with code NAME_INVALID."""
    with pytest.raises(NameInvalid) as caught:
        RepositoryName.parse("Bad/Name")
    assert caught.value.status == 400
    assert caught.value.code == "NAME_INVALID"


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "v1",
        "V1.2.3",
        "1.0",
        "_private",
        "a",
        "0",
        "release-2024_01.15",
        "UPPER",
        "a" * 128,
        "a-",
        "a.",
    ],
)
def test_valid_tags_are_accepted(tag: str) -> None:
    """A tag matching ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`` is a tag."""
    assert is_tag(tag)
    assert parse_tag(tag) == tag


@pytest.mark.parametrize(
    "tag",
    [
        "",
        ".latest",
        "-latest",
        "a" * 129,
        "la test",
        "latest!",
        "v1:2",
        "v1/2",
        "v1@x",
        "v1+build",
        "tåg",
    ],
)
def test_invalid_tags_are_rejected(tag: str) -> None:
    """A tag outside the grammar is not a tag and parse_tag raises ManifestInvalid."""
    assert not is_tag(tag)
    with pytest.raises(ManifestInvalid):
        parse_tag(tag)


def test_reference_with_a_colon_is_a_digest() -> None:
    """A reference containing ``:`` parses as a digest and not a tag."""
    reference = Reference.parse(SHA256)
    assert reference.digest == Digest.parse(SHA256)
    assert reference.tag is None
    assert str(reference) == SHA256


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "a" * 128])
def test_reference_without_a_colon_is_a_tag(tag: str) -> None:
    """A reference without ``:`` parses as a tag and not a digest."""
    reference = Reference.parse(tag)
    assert reference.tag == tag
    assert reference.digest is None
    assert str(reference) == tag


@pytest.mark.parametrize("text", ["sha256:abc", "md5:" + "0" * 32, "latest:v1", ":"])
def test_reference_with_a_bad_digest_raises_digest_invalid(text: str) -> None:
    """A colon-bearing reference that is not a valid digest raises DigestInvalid."""
    with pytest.raises(DigestInvalid):
        Reference.parse(text)


@pytest.mark.parametrize("text", ["", ".hidden", "a" * 129, "bad tag"])
def test_reference_with_a_bad_tag_raises_manifest_invalid(text: str) -> None:
    """A colon-free reference that is not a valid tag raises ManifestInvalid."""
    with pytest.raises(ManifestInvalid):
        Reference.parse(text)
