"""Regressions found by review: each test names the bug it keeps fixed."""

from __future__ import annotations

import pytest

from services.registry.cache import TtlCache
from services.registry.identity.passwords import verify_password
from shared.oci.digest import Digest
from shared.oci.errors import DigestInvalid, ManifestInvalid, NameInvalid
from shared.oci.manifest import parse_manifest
from shared.oci.names import Reference, RepositoryName, is_tag
from shared.oci.ranges import parse_range
from shared.settings import Settings

HEX = "a" * 64


def test_trailing_newline_is_not_part_of_a_valid_name_tag_or_digest() -> None:
    """`$` matches before a final newline; names, tags and digests must match in full."""
    with pytest.raises(NameInvalid):
        RepositoryName.parse("spaces-1/app\n")
    assert not is_tag("latest\n")
    with pytest.raises(ManifestInvalid):
        Reference.parse("latest\n")
    with pytest.raises(DigestInvalid):
        Digest.parse(f"sha256:{HEX}\n")


def test_cache_forgets_the_old_value_when_the_new_one_is_too_heavy() -> None:
    """Replacing a value with one too heavy to keep must not leave the old one served."""
    cache: TtlCache[str, str] = TtlCache(10, 5, weigh=len)
    cache.put("k", "ab")
    cache.put("k", "abcdefgh")
    assert cache.get("k") is None


@pytest.mark.parametrize("encoded", ["scrypt$$", "scrypt$YQ==$", "scrypt$!!!$!!!"])
def test_malformed_stored_hash_verifies_false(encoded: str) -> None:
    """A stored hash with an empty salt or key is a failed login, not an exception."""
    assert verify_password("p", encoded) is False


def test_deeply_nested_json_is_an_invalid_manifest() -> None:
    """JSON nested deeper than the parser's recursion limit is MANIFEST_INVALID (not a 500)."""
    with pytest.raises(ManifestInvalid):
        parse_manifest(b"[" * 100_000, None)


def test_mongo_url_credentials_stay_out_of_repr() -> None:
    """The MongoDB URL may hold a password, so it is not shown in repr(settings)."""
    settings = Settings.from_env({"SPACEDOCK_MONGO_URL": "mongodb://u:hunter2@db/x"})
    assert "hunter2" not in repr(settings)


def test_ipv6_listen_address_gives_a_bracketed_public_url() -> None:
    """An IPv6 listen address becomes a valid URL host."""
    settings = Settings.from_env({"SPACEDOCK_LISTEN": "[::1]:5000"})
    assert settings.public_url == "http://[::1]:5000"
    assert settings.public_host == "[::1]:5000"


def test_suffix_range_of_an_empty_blob_sends_it_whole() -> None:
    """RFC 9110: a non-zero suffix range of an empty representation is satisfiable."""
    assert parse_range("bytes=-5", 0) is None
