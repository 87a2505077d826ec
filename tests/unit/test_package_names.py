"""How uploaded file names are read (pure): as the deployment server reads them, and which
ones read better with the id's last number as the start of the version (refused when they
would start a new package)."""

from __future__ import annotations

import pytest

from services.registry.packages import misread_name, uploaded_package
from shared.packages import PackageNameInvalid


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("billing.4.2.0.zip", ("billing", "4.2.0")),
        ("Acme.Billing.Api.4.2.0-rc.3.tar.gz", ("Acme.Billing.Api", "4.2.0-rc.3")),
        ("billing-sdi.4.2.0.tgz", ("billing-sdi", "4.2.0")),
        ("billing.v3.5.1.zip", ("billing.v3", "5.1")),
        ("billing.7.zip", ("billing", "7")),
        ("billing.4.2.0.9.zip", ("billing", "4.2.0.9")),
        ("billing.4.2.0+sha.5e1f.zip", ("billing", "4.2.0+sha.5e1f")),
        # An id that ends in a number, and a version written out in full: as before.
        ("ledger-2024.4.2.0.zip", ("ledger-2024", "4.2.0")),
        ("ledger_7.1.0.0-beta.zip", ("ledger_7", "1.0.0-beta")),
        ("ledger-3.1.0.0.0.zip", ("ledger-3", "1.0.0.0")),
    ],
)
def test_names_read_as_the_deployment_server_reads_them_are_taken(
    filename: str, expected: tuple[str, str]
) -> None:
    package = uploaded_package(filename)
    assert (package.id, package.version) == expected
    assert misread_name(package) is None


@pytest.mark.parametrize(
    ("filename", "taken_as", "meant"),
    [
        ("billing-4.2.0.zip", "'billing-4' version '2.0'", "billing.4.2.0.zip"),
        ("billing-4.2.0-rc.3.tgz", "'billing-4' version '2.0-rc.3'", "billing.4.2.0-rc.3.tgz"),
        ("billing_4.2.tgz", "'billing_4' version '2'", "billing.4.2.tgz"),
        ("Acme.Billing-10.1.zip", "'Acme.Billing-10' version '1'", "Acme.Billing.10.1.zip"),
    ],
)
def test_a_version_without_its_dot_is_told_with_the_name_meant(
    filename: str, taken_as: str, meant: str
) -> None:
    message = misread_name(uploaded_package(filename))
    assert message is not None
    assert taken_as in message
    assert "<id>.<version>.<zip|tar.gz|tgz>" in message
    assert f"e.g. {meant}" in message


@pytest.mark.parametrize("filename", ["billing.zip", "billing-4.2.0.rar", "../billing.4.2.0.zip"])
def test_what_is_no_package_file_is_still_refused(filename: str) -> None:
    with pytest.raises(PackageNameInvalid):
        uploaded_package(filename)
