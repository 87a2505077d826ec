"""Repository names, tags and references (distribution-spec "Pulling manifests")."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.oci.digest import Digest
from shared.oci.errors import ManifestInvalid, NameInvalid

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
SPACE_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_NAME_LENGTH = 255


@dataclass(frozen=True, slots=True)
class RepositoryName:
    """``<space>/<name>[/<more>]``: the first component is the space."""

    full: str

    @property
    def space(self) -> str:
        return self.full.split("/", 1)[0]

    @property
    def path(self) -> str:
        """The name inside the space."""
        return self.full.split("/", 1)[1]

    def __str__(self) -> str:
        return self.full

    @classmethod
    def parse(cls, text: str) -> RepositoryName:
        if len(text) > MAX_NAME_LENGTH or NAME_RE.fullmatch(text) is None:
            raise NameInvalid(detail={"name": text[:MAX_NAME_LENGTH]})
        space = text.split("/", 1)[0]
        if "/" not in text or SPACE_RE.fullmatch(space) is None:
            raise NameInvalid(
                "repository names are <space>/<name>, e.g. spaces-1/app",
                detail={"name": text},
            )
        return cls(text)


def is_tag(text: str) -> bool:
    return TAG_RE.fullmatch(text) is not None


def parse_tag(text: str) -> str:
    if not is_tag(text):
        raise ManifestInvalid("invalid tag", detail={"tag": text[:200]})
    return text


@dataclass(frozen=True, slots=True)
class Reference:
    """A manifest reference: exactly one of ``tag`` or ``digest``."""

    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        return self.tag if self.tag is not None else str(self.digest)

    @classmethod
    def parse(cls, text: str) -> Reference:
        if ":" in text:
            return cls(digest=Digest.parse(text))
        return cls(tag=parse_tag(text))
