"""Content digests: parsing, validation and incremental hashing."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from shared.oci.errors import DigestInvalid

# algorithm -> length of the lowercase hex encoding (image-spec "Digests").
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate ``alg:hex``; only registered algorithms are accepted."""
        match = _DIGEST_RE.fullmatch(text)
        if match is None:
            raise DigestInvalid("invalid digest format", detail={"digest": text[:200]})
        algorithm, encoded = match.groups()
        length = ALGORITHMS.get(algorithm)
        if length is None:
            raise DigestInvalid("unsupported digest algorithm", detail={"digest": text[:200]})
        if len(encoded) != length or not all(c in "0123456789abcdef" for c in encoded):
            raise DigestInvalid("invalid digest encoding", detail={"digest": text[:200]})
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)
