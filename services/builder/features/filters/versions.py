"""The version filters (VersionMajor, VersionPreRelease, VersionMetadata, ...), reading a
version as the deployment server's OctopusVersionParser does."""

from __future__ import annotations

import re

from services.builder.features.filters.dotnet import dotnet_int
from services.builder.features.filters.errors import FilterFailed, FilterFunction

# The deployment server's OctopusVersionParser, groups as it names them.
_VERSION = re.compile(
    r"^\s*(?:\s*(?P<prefix>v|V)?\s*(?P<major>\d+\b)\s*(?:\.\s*(?P<minor>\d+\b)\s*)?"
    r"(?:\.\s*(?P<patch>\d+\b)\s*)?(?:\.\s*(?P<revision>\d+\b)\s*)?)?"
    r"(?:[.\-_\\])?(?P<prerelease>(?P<prereleaseprefix>[A-Za-z0-9]*?)"
    r"([.\-_\\](?P<prereleasecounter>[A-Za-z0-9.\-_\\]*?)?)?)?"
    r"(?:\+(?P<buildmetadata>[A-Za-z0-9_\-.\\+]*?))?\s*$"
)


def version_part(part: str) -> FilterFunction:
    def version(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise FilterFailed("The version can not be an empty string")
        match = _VERSION.match(value)
        if match is None:
            raise FilterFailed("The supplied version was not valid")
        if part in ("major", "minor", "patch", "revision"):
            digits = match.group(part)
            if digits is None:
                return "0"
            number = dotnet_int(digits)
            if number is None:  # too large, or digits .NET does not read as digits
                raise FilterFailed(f"the {part} of the version is not a 32-bit number")
            return str(number)
        return match.group(part) or ""

    return version
