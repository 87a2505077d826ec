"""A Source Docker Image's ``sdi.yaml``: the packages to extract into the build context and
the configuration features to run on its files (PRODUCT.md §8).

The file is the tenant's, so reading it is bounded: its size, its nodes and how deep they
nest, and the packages it may name (each one a download and an extraction). YAML aliases are
refused: a few nested ones (through merge keys too) stand for billions of nodes, and an
sdi.yaml has no need of them.

The builder reads it to build; the registry, to refuse at upload an SDI whose sdi.yaml a
build would refuse, in the same words and with the same error (the catalogue's SdiInvalid)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from shared.builds.errors import SdiInvalid as SdiInvalid
from shared.packages import PackageNameInvalid, check_package_reference

MAX_SDI_BYTES = 256 * 1024
MAX_SDI_FILE_BYTES = 1024 * 1024  # what a build reads of sdi.yaml before it is too large
MAX_NODES = 10_000  # scalars, lists and mappings: 100 packages take about 700
MAX_DEPTH = 16  # lists and mappings inside each other: sdi.yaml itself needs 4
MAX_PACKAGES = 100


@dataclass(frozen=True, slots=True)
class PackageReference:
    id: str
    version: str | None
    extract_to: str


@dataclass(frozen=True, slots=True)
class Features:
    substitute_in_files: tuple[str, ...] = ()
    dotnet_config_transforms: bool = False
    additional_transforms: tuple[str, ...] = ()
    dotnet_config_variables: bool = False
    structured_variables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SdiSpec:
    packages: tuple[PackageReference, ...] = ()
    features: Features = field(default_factory=Features)


def parse_sdi(text: str | None) -> SdiSpec:
    """The spec in ``sdi.yaml`` (an absent file is an SDI with no packages or features)."""
    if text is None or not text.strip():
        return SdiSpec()
    if len(text) > MAX_SDI_BYTES:
        raise SdiInvalid("sdi.yaml is too large")
    document = _load(text)
    body = _mapping(document, "sdi.yaml", {"packages", "features"})
    items = _list(body.get("packages"), "packages")
    if len(items) > MAX_PACKAGES:
        raise SdiInvalid(
            f"sdi.yaml lists {len(items)} packages; a build extracts at most {MAX_PACKAGES}"
        )
    packages = tuple(_package(item, n) for n, item in enumerate(items))
    features = _mapping(
        body.get("features") or {},
        "features",
        {
            "substitute_in_files",
            "dotnet_config_transforms",
            "additional_transforms",
            "dotnet_config_variables",
            "structured_variables",
        },
    )
    return SdiSpec(
        packages,
        Features(
            substitute_in_files=_globs(features.get("substitute_in_files"), "substitute_in_files"),
            dotnet_config_transforms=_flag(
                features.get("dotnet_config_transforms"), "dotnet_config_transforms"
            ),
            additional_transforms=_globs(
                features.get("additional_transforms"), "additional_transforms"
            ),
            dotnet_config_variables=_flag(
                features.get("dotnet_config_variables"), "dotnet_config_variables"
            ),
            structured_variables=_globs(
                features.get("structured_variables"), "structured_variables"
            ),
        ),
    )


def parse_sdi_file(content: bytes | None) -> SdiSpec:
    """The spec in the bytes of an ``sdi.yaml`` file (None: there is none), which must be
    UTF-8 text."""
    if content is None:
        return parse_sdi(None)
    try:
        text = content.decode()
    except UnicodeDecodeError as exc:
        raise SdiInvalid("sdi.yaml is not UTF-8 text") from exc
    return parse_sdi(text)


def _load(text: str) -> Any:
    """The one YAML document in ``text``. Every way PyYAML refuses it, including the reader's
    refusal of a control character (which it raises as the loader is made), is SdiInvalid,
    whose message says where, never what: the text is the tenant's."""
    try:
        loader = _BoundedLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except SdiInvalid:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = "" if mark is None else f" (line {mark.line + 1}, column {mark.column + 1})"
        raise SdiInvalid(f"sdi.yaml is not valid YAML{where}") from exc
    except yaml.reader.ReaderError as exc:
        raise SdiInvalid("sdi.yaml is not valid YAML (a character YAML does not allow)") from exc
    except (yaml.YAMLError, ValueError) as exc:  # ValueError: an integer of 5,000 digits
        raise SdiInvalid("sdi.yaml is not valid YAML") from exc


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing aliases and more than MAX_NODES nodes or MAX_DEPTH levels
    before it builds them (nesting deeper would also exhaust the recursive composer)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.nodes = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise SdiInvalid("sdi.yaml may not use YAML aliases (*name)")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SdiInvalid(f"sdi.yaml has more than {MAX_NODES} values")
        if self.depth >= MAX_DEPTH:
            raise SdiInvalid(f"sdi.yaml nests lists and mappings more than {MAX_DEPTH} deep")
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _mapping(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SdiInvalid(f"{where} must be a mapping")
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise SdiInvalid(f"{where}: unknown keys {', '.join(unknown)}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SdiInvalid(f"{where} must be a list")
    return value


def _package(item: Any, index: int) -> PackageReference:
    where = f"packages[{index}]"
    body = _mapping(item, where, {"id", "version", "extract_to"})
    package_id = body.get("id")
    if not isinstance(package_id, str) or not package_id.strip():
        raise SdiInvalid(f"{where}.id must be a package id")
    version = body.get("version")
    if isinstance(version, bool) or (
        version is not None and not isinstance(version, (str, int, float))
    ):
        raise SdiInvalid(f"{where}.version must be a version")
    version = None if version is None else str(version).strip()
    try:
        check_package_reference(package_id.strip(), version)
    except PackageNameInvalid as exc:
        raise SdiInvalid(f"{where}: {exc}") from exc
    extract_to = body.get("extract_to", package_id)
    if not isinstance(extract_to, str):
        raise SdiInvalid(f"{where}.extract_to must be a folder")
    return PackageReference(package_id.strip(), version, _folder(extract_to, f"{where}.extract_to"))


def _globs(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where)
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise SdiInvalid(f"{where} must be a list of paths or globs")
    return tuple(item.strip() for item in items)


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SdiInvalid(f"{where} must be true or false")
    return value


def _folder(name: str, where: str) -> str:
    """``name`` as a normalised relative POSIX path, refused when it would leave the build
    context (the rule, and the words, of the builder's archive extraction)."""
    text = name.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise SdiInvalid(f"{where} {name!r} has an absolute path")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise SdiInvalid(f"{where} {name!r} leaves the folder (..)")
    return "/".join(parts)
