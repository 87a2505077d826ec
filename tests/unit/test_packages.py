"""Package file names and package manifests (pure)."""

from __future__ import annotations

import pytest

from shared.packages import (
    PackageNameInvalid,
    check_package_reference,
    package_layer,
    parse_package_filename,
)


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("mywebapp.1.2.1.zip", ("mywebapp", "1.2.1", ".zip")),
        ("MyCompany.Web.2.0.0-beta.1.tar.gz", ("MyCompany.Web", "2.0.0-beta.1", ".tar.gz")),
        ("app.v2.1.0.tgz", ("app.v2", "1.0", ".tgz")),
        ("tool.10.TGZ", ("tool", "10", ".tgz")),
        ("mywebapp-sdi.1.2.0.zip", ("mywebapp-sdi", "1.2.0", ".zip")),
        ("x.1.2.3.4.zip", ("x", "1.2.3.4", ".zip")),
    ],
)
def test_the_version_starts_at_the_first_numeric_part(
    filename: str, expected: tuple[str, str, str]
) -> None:
    package = parse_package_filename(filename)
    assert (package.id, package.version, package.extension) == expected


def test_the_repository_is_lowercase_under_packages() -> None:
    assert parse_package_filename("MyCompany.Web.1.0.zip").repository == "packages/mycompany.web"


@pytest.mark.parametrize(
    "filename",
    ["", "mywebapp.zip", "mywebapp.1.2.rar", "../evil.1.0.zip", "a/b.1.0.zip",
     "mywebapp.latest.zip", "x" * 300 + ".1.0.zip"],
)  # fmt: skip
def test_names_that_are_not_package_files_are_refused(filename: str) -> None:
    with pytest.raises(PackageNameInvalid):
        parse_package_filename(filename)


def test_the_archive_layer_is_the_titled_one_or_the_only_one() -> None:
    titled = {"digest": "sha256:b", "annotations": {"org.opencontainers.image.title": "a.1.0.zip"}}
    other = {"digest": "sha256:c", "annotations": {"org.opencontainers.image.title": "README"}}
    assert package_layer({"layers": [other, titled]}) == titled
    assert package_layer({"layers": [other]}) == other
    assert package_layer({"layers": [other, dict(other, digest="sha256:d")]}) is None
    assert package_layer({}) is None


@pytest.mark.parametrize(("package_id", "version"), [("\u212a", "1.0.0"), ("app", "1.0.\u0661")])
def test_a_build_names_packages_in_plain_ascii(package_id: str, version: str) -> None:
    """The Kelvin sign lowers to "k": such an id would stand for package k."""
    with pytest.raises(PackageNameInvalid):
        check_package_reference(package_id, version)
