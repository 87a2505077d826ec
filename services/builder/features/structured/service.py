"""Which formats a file is tried as, and in which order; the first that parses it wins."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import PurePosixPath

from services.builder.features.structured.common import (
    MAX_FILE_BYTES,
    MAX_GROWTH,
    Context,
    Lookup,
    NotThisFormat,
    Replacement,
    StructuredError,
    fold,
)
from services.builder.features.structured.json_format import replace_json
from services.builder.features.structured.properties_format import replace_properties
from services.builder.features.structured.xml_format import replace_xml
from services.builder.features.structured.yaml_format import replace_yaml
from services.builder.features.xdt.work import Work

# The variable that, when true, has every file read as JSON only, as before the server knew
# other formats.
JSON_ONLY_FLAG = "Octopus.Action.StructuredConfigurationFallbackFlag"


def replace_structured(
    filename: str,
    content: bytes,
    names: Iterable[str],
    lookup: Lookup,
    *,
    max_growth: int = MAX_GROWTH,
    json_only: bool = False,
    max_size: int = MAX_FILE_BYTES,
    work: Work | None = None,
) -> tuple[bytes, list[Replacement]]:
    """The file as the server writes it back with its values replaced, and what was
    replaced. ``lookup`` gives a name's value (None for a variable without one).
    ``json_only`` is the server's fallback flag (``JSON_ONLY_FLAG``): every file is JSON.
    A file over ``max_size`` bytes is refused; XPath selectors spend ``work`` (a fresh
    allowance of ``MAX_WORK`` when None: pass one to share it between files)."""
    if len(content) > max_size:
        raise StructuredError(
            f"{filename} is larger than {max_size} bytes: structured variables read files up "
            "to that size"
        )
    unique: dict[str, str] = {}
    for name in names:
        unique.setdefault(fold(name), name)
    context = Context(
        list(unique.values()), lookup, len(content) + max_growth, max_growth, work or Work()
    )
    attempts = ["json"] if json_only else _formats_for(filename)
    for position, format_name in enumerate(attempts):
        try:
            return _REPLACERS[format_name](content, context)
        except NotThisFormat as exc:
            if position == len(attempts) - 1:
                raise StructuredError(
                    f"{filename} could not be parsed as {format_name}: {exc}"
                ) from exc
            context.reset()
    raise AssertionError("unreachable")


def _formats_for(filename: str) -> list[str]:
    lowered = PurePosixPath(filename).name.lower()
    if lowered.endswith(".json"):
        return ["json"]
    for format_name, suffixes in (
        ("xml", (".xml",)),
        ("yaml", (".yml", ".yaml")),
        ("properties", (".properties",)),
    ):
        if lowered.endswith(suffixes):
            return ["json", format_name]
    return ["json", "xml", "yaml", "properties"]


_REPLACERS: dict[str, Callable[[bytes, Context], tuple[bytes, list[Replacement]]]] = {
    "json": replace_json,
    "xml": replace_xml,
    "yaml": replace_yaml,
    "properties": replace_properties,
}
