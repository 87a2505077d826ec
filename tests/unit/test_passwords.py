"""Password hashing and verification for the registry's Basic authentication."""

from __future__ import annotations

import base64

import pytest

from services.registry.identity.passwords import hash_password, verify_password


@pytest.mark.parametrize("password", ["s3cret", "", "pässwörd-🔑", "a" * 1000, "with:colon$dollar"])
def test_hash_then_verify_round_trips(password: str) -> None:
    """A password verifies against its own hash."""
    assert verify_password(password, hash_password(password))


@pytest.mark.parametrize("attempt", ["S3cret", "s3cret ", "s3cre", "", "xs3cret"])
def test_wrong_password_does_not_verify(attempt: str) -> None:
    """Any other password fails against the hash."""
    assert not verify_password(attempt, hash_password("s3cret"))


def test_hashes_are_salted() -> None:
    """Hashing the same password twice gives different hashes that both verify."""
    first, second = hash_password("s3cret"), hash_password("s3cret")
    assert first != second
    assert verify_password("s3cret", first)
    assert verify_password("s3cret", second)


def test_hash_names_its_scheme_and_hides_the_password() -> None:
    """The stored form is ``scrypt$<salt>$<key>`` and does not contain the password."""
    encoded = hash_password("s3cret")
    scheme, salt, key = encoded.split("$")
    assert scheme == "scrypt"
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(key)) == 32
    assert "s3cret" not in encoded


def test_hash_from_another_scheme_does_not_verify() -> None:
    """A hash whose scheme is not scrypt is rejected even if its parts are well formed."""
    _, salt, key = hash_password("s3cret").split("$")
    assert not verify_password("s3cret", f"bcrypt${salt}${key}")


def test_tampered_key_does_not_verify() -> None:
    """Changing the stored key makes the right password fail."""
    scheme, salt, key = hash_password("s3cret").split("$")
    raw = bytearray(base64.b64decode(key))
    raw[0] ^= 1
    tampered = base64.b64encode(bytes(raw)).decode()
    assert not verify_password("s3cret", f"{scheme}${salt}${tampered}")


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "s3cret",
        "scrypt",
        "scrypt$",
        "scrypt$c2FsdA==",
        "scrypt$c2FsdA==$a2V5$extra",
        "scrypt$abc$a2V5",
        "scrypt$c2FsdA==$abc",
        "plain$c2FsdA==$a2V5",
    ],
)
def test_malformed_hash_does_not_verify(encoded: str) -> None:
    """A stored hash that is not ``scrypt$<b64>$<b64>`` verifies nothing and does not raise."""
    assert not verify_password("s3cret", encoded)
