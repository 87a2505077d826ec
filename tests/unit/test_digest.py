"""Digest parsing and computation (image-spec "Digests")."""

from __future__ import annotations

import hashlib

import pytest

from shared.oci.digest import Digest
from shared.oci.errors import DigestInvalid

SHA256_HEX = hashlib.sha256(b"spacedock").hexdigest()
SHA512_HEX = hashlib.sha512(b"spacedock").hexdigest()


@pytest.mark.parametrize(
    ("text", "algorithm", "encoded"),
    [
        (f"sha256:{SHA256_HEX}", "sha256", SHA256_HEX),
        (f"sha512:{SHA512_HEX}", "sha512", SHA512_HEX),
        ("sha256:" + "0" * 64, "sha256", "0" * 64),
    ],
)
def test_parse_accepts_registered_algorithms(text: str, algorithm: str, encoded: str) -> None:
    """A well-formed digest of a registered algorithm parses into its algorithm and hex."""
    digest = Digest.parse(text)
    assert digest.algorithm == algorithm
    assert digest.hex == encoded


def test_parsed_digest_renders_back_to_its_text() -> None:
    """str() of a parsed digest is the text it was parsed from."""
    text = f"sha256:{SHA256_HEX}"
    assert str(Digest.parse(text)) == text


def test_parsed_digests_compare_by_value() -> None:
    """Two parses of the same text are equal and hash alike, so they can key dicts and sets."""
    text = f"sha256:{SHA256_HEX}"
    assert Digest.parse(text) == Digest.parse(text)
    assert len({Digest.parse(text), Digest.parse(text)}) == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sha256",
        "sha256:",
        f":{SHA256_HEX}",
        SHA256_HEX,
        f"sha256::{SHA256_HEX}",
        f"SHA256:{SHA256_HEX}",
        f"sha256 :{SHA256_HEX}",
        f" sha256:{SHA256_HEX}",
        f"sha256:{SHA256_HEX} ",
        f"sha256:{SHA256_HEX[:-1]}/",
        f"sha256:{SHA256_HEX[:-1]}!",
        f"-sha256:{SHA256_HEX}",
        f"sha256-:{SHA256_HEX}",
    ],
)
def test_parse_rejects_malformed_text(text: str) -> None:
    """Text that is not ``algorithm:encoded`` raises DigestInvalid."""
    with pytest.raises(DigestInvalid, match="format"):
        Digest.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        f"md5:{hashlib.md5(b'x').hexdigest()}",
        f"sha1:{hashlib.sha1(b'x').hexdigest()}",
        f"sha384:{hashlib.sha384(b'x').hexdigest()}",
        f"sha256+b64u:{SHA256_HEX}",
        f"blake3:{SHA256_HEX}",
    ],
)
def test_parse_rejects_unregistered_algorithms(text: str) -> None:
    """A syntactically valid digest of an unregistered algorithm raises DigestInvalid."""
    with pytest.raises(DigestInvalid, match="unsupported digest algorithm"):
        Digest.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        f"sha256:{SHA256_HEX[:-1]}",
        f"sha256:{SHA256_HEX}0",
        f"sha256:{SHA512_HEX}",
        f"sha512:{SHA256_HEX}",
        f"sha256:{SHA256_HEX.upper()}",
        f"sha256:{SHA256_HEX[:-1]}A",
        f"sha512:{SHA512_HEX.upper()}",
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 62 + "==",
        "sha256:" + "a" * 62 + "_-",
    ],
)
def test_parse_rejects_wrong_encoding(text: str) -> None:
    """An encoded part of the wrong length or not lowercase hex raises DigestInvalid."""
    with pytest.raises(DigestInvalid, match="encoding"):
        Digest.parse(text)


def test_rejection_reports_the_offending_digest() -> None:
    """DigestInvalid carries the rejected text in its detail, as a 400 DIGEST_INVALID."""
    with pytest.raises(DigestInvalid) as caught:
        Digest.parse("sha256:nope")
    assert caught.value.detail == {"digest": "sha256:nope"}
    assert caught.value.status == 400
    assert caught.value.code == "DIGEST_INVALID"


def test_rejection_detail_is_truncated_for_huge_input() -> None:
    """The detail of a rejected digest is capped at 200 characters."""
    with pytest.raises(DigestInvalid) as caught:
        Digest.parse("x" * 10_000)
    assert caught.value.detail == {"digest": "x" * 200}


@pytest.mark.parametrize("data", [b"", b"hello", b"\x00" * 1000])
def test_of_computes_sha256_by_default(data: bytes) -> None:
    """Digest.of hashes the bytes with sha256 unless told otherwise."""
    digest = Digest.of(data)
    assert digest == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert str(digest) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_of_supports_sha512() -> None:
    """Digest.of with sha512 produces a sha512 digest that parses back."""
    digest = Digest.of(b"spacedock", "sha512")
    assert digest == Digest("sha512", SHA512_HEX)
    assert Digest.parse(str(digest)) == digest


def test_of_empty_input_is_the_well_known_empty_digest() -> None:
    """The sha256 digest of no bytes is the well-known e3b0c442... value."""
    assert str(Digest.of(b"")) == (
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_hasher_matches_of_for_incremental_hashing(algorithm: str) -> None:
    """Feeding chunks to hasher() yields the same hex as Digest.of on the whole input."""
    expected = Digest.of(b"abcdef", algorithm)
    hasher = expected.hasher()
    for chunk in (b"ab", b"cd", b"ef"):
        hasher.update(chunk)
    assert hasher.hexdigest() == expected.hex
