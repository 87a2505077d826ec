"""Manifest parsing and validation: OCI image-spec v1.1 and Docker schema 2."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from shared.oci import media_types as mt
from shared.oci.errors import ManifestInvalid
from shared.oci.manifest import MAX_MANIFEST_BYTES, ParsedManifest, parse_manifest

OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_NONDISTRIBUTABLE_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = sha256(b"config")
LAYER_1 = sha256(b"layer-1")
LAYER_2 = sha256(b"layer-2")
CHILD_1 = sha256(b"child-1")
CHILD_2 = sha256(b"child-2")
SUBJECT = sha256(b"subject")


def descriptor(media_type: str, digest: str, size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def oci_manifest(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, CONFIG),
        "layers": [descriptor(OCI_LAYER, LAYER_1), descriptor(OCI_LAYER, LAYER_2)],
    }
    document.update(fields)
    return document


def docker_manifest(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": descriptor(mt.DOCKER_CONFIG, CONFIG),
        "layers": [descriptor(DOCKER_LAYER, LAYER_1), descriptor(DOCKER_LAYER, LAYER_2)],
    }
    document.update(fields)
    return document


def platform(architecture: str = "amd64", os: str = "linux") -> dict[str, Any]:
    return {"architecture": architecture, "os": os}


def oci_index(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            descriptor(mt.OCI_MANIFEST, CHILD_1, platform=platform("amd64")),
            descriptor(mt.OCI_MANIFEST, CHILD_2, platform=platform("arm64")),
        ],
    }
    document.update(fields)
    return document


def docker_list(**fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST_LIST,
        "manifests": [
            descriptor(mt.DOCKER_MANIFEST, CHILD_1, platform=platform("amd64")),
            descriptor(mt.DOCKER_MANIFEST, CHILD_2, platform=platform("arm64")),
        ],
    }
    document.update(fields)
    return document


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def parse(document: Any, content_type: str | None = None) -> ParsedManifest:
    return parse_manifest(encode(document), content_type)


def rejection(document: Any, content_type: str | None = None) -> ManifestInvalid:
    """The ManifestInvalid that parsing ``document`` must raise."""
    with pytest.raises(ManifestInvalid) as caught:
        parse(document, content_type)
    return caught.value


def without(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != key}


# Accepted manifests


def test_oci_image_manifest() -> None:
    """An OCI image manifest references its config and layers as blobs, and no manifests."""
    parsed = parse(oci_manifest(), mt.OCI_MANIFEST)
    assert parsed.media_type == mt.OCI_MANIFEST
    assert parsed.blobs == (CONFIG, LAYER_1, LAYER_2)
    assert parsed.manifests == ()
    assert parsed.config_media_type == mt.OCI_CONFIG
    assert parsed.subject is None
    assert parsed.artifact_type is None
    assert parsed.annotations == {}
    assert not parsed.is_index


def test_docker_v2_manifest() -> None:
    """A Docker schema 2 manifest is accepted with its config and layers as blobs."""
    parsed = parse(docker_manifest(), mt.DOCKER_MANIFEST)
    assert parsed.media_type == mt.DOCKER_MANIFEST
    assert parsed.blobs == (CONFIG, LAYER_1, LAYER_2)
    assert parsed.manifests == ()
    assert parsed.config_media_type == mt.DOCKER_CONFIG
    assert not parsed.is_index


def test_oci_index() -> None:
    """An OCI index references its entries as manifests and no blobs."""
    parsed = parse(oci_index(), mt.OCI_INDEX)
    assert parsed.media_type == mt.OCI_INDEX
    assert parsed.manifests == (CHILD_1, CHILD_2)
    assert parsed.blobs == ()
    assert parsed.config_media_type is None
    assert parsed.is_index


def test_docker_manifest_list() -> None:
    """A Docker manifest list references its entries as manifests."""
    parsed = parse(docker_list(), mt.DOCKER_MANIFEST_LIST)
    assert parsed.media_type == mt.DOCKER_MANIFEST_LIST
    assert parsed.manifests == (CHILD_1, CHILD_2)
    assert parsed.blobs == ()
    assert parsed.is_index


def test_index_may_mix_manifest_kinds_and_nest_indexes() -> None:
    """Index entries may be any manifest or index media type."""
    document = oci_index(
        manifests=[
            descriptor(mt.OCI_MANIFEST, CHILD_1),
            descriptor(mt.OCI_INDEX, CHILD_2),
            descriptor(mt.DOCKER_MANIFEST, LAYER_1),
            descriptor(mt.DOCKER_MANIFEST_LIST, LAYER_2),
        ]
    )
    assert parse(document).manifests == (CHILD_1, CHILD_2, LAYER_1, LAYER_2)


def test_empty_index_is_accepted() -> None:
    """An index with an empty manifests list is valid and references nothing."""
    parsed = parse(oci_index(manifests=[]))
    assert parsed.manifests == ()
    assert parsed.is_index


def test_repeated_references_are_listed_once_in_order() -> None:
    """A digest referenced several times appears once, at its first position."""
    image = oci_manifest(
        config=descriptor(mt.OCI_CONFIG, LAYER_1),
        layers=[
            descriptor(OCI_LAYER, LAYER_2),
            descriptor(OCI_LAYER, LAYER_1),
            descriptor(OCI_LAYER, LAYER_2),
        ],
    )
    assert parse(image).blobs == (LAYER_1, LAYER_2)
    index = oci_index(
        manifests=[descriptor(mt.OCI_MANIFEST, CHILD_2), descriptor(mt.OCI_MANIFEST, CHILD_2)]
    )
    assert parse(index).manifests == (CHILD_2,)


def test_artifact_manifest_with_empty_config() -> None:
    """An artifact manifest keeps its artifactType and references the empty config blob."""
    document = oci_manifest(
        artifactType="application/vnd.example.sbom.v1+json",
        config=descriptor(mt.OCI_EMPTY, EMPTY_JSON_DIGEST, size=2),
        layers=[descriptor("application/vnd.example.sbom.v1+json", LAYER_1)],
    )
    parsed = parse(document, mt.OCI_MANIFEST)
    assert parsed.media_type == mt.OCI_MANIFEST
    assert parsed.artifact_type == "application/vnd.example.sbom.v1+json"
    assert parsed.config_media_type == mt.OCI_EMPTY
    assert parsed.blobs == (EMPTY_JSON_DIGEST, LAYER_1)


def test_oci_manifest_without_layers_is_accepted() -> None:
    """An OCI manifest may omit layers, as artifacts with only a config do."""
    document = without(
        oci_manifest(config=descriptor(mt.OCI_EMPTY, EMPTY_JSON_DIGEST, 2)), "layers"
    )
    assert parse(document).blobs == (EMPTY_JSON_DIGEST,)


def test_index_artifact_type_is_recorded() -> None:
    """An index's artifactType is recorded."""
    parsed = parse(oci_index(artifactType="application/vnd.example.bundle"))
    assert parsed.artifact_type == "application/vnd.example.bundle"


@pytest.mark.parametrize("build", [oci_manifest, oci_index])
def test_subject_is_recorded(build: Any) -> None:
    """The digest of an OCI manifest's or index's subject is recorded, not counted as a blob."""
    parsed = parse(build(subject=descriptor(mt.OCI_MANIFEST, SUBJECT)))
    assert parsed.subject == SUBJECT
    assert SUBJECT not in parsed.blobs
    assert SUBJECT not in parsed.manifests


def test_annotations_are_recorded() -> None:
    """Top-level annotations are returned as given."""
    annotations = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "x": ""}
    assert parse(oci_manifest(annotations=annotations)).annotations == annotations


@pytest.mark.parametrize(
    "layer",
    [
        descriptor(DOCKER_FOREIGN_LAYER, LAYER_2, urls=["https://example.com/layer.tar.gz"]),
        descriptor(OCI_NONDISTRIBUTABLE_LAYER, LAYER_2, urls=["https://example.com/layer"]),
        descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar", LAYER_2),
        descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", LAYER_2),
    ],
)
def test_foreign_layers_are_not_required_blobs(layer: dict[str, Any]) -> None:
    """Non-distributable layers are left out of the blobs the registry must hold."""
    document = oci_manifest(layers=[descriptor(OCI_LAYER, LAYER_1), layer])
    assert parse(document).blobs == (CONFIG, LAYER_1)


def test_docker_foreign_layer_in_docker_manifest_is_not_a_required_blob() -> None:
    """A Windows-style foreign layer in a Docker manifest is left out of the blobs."""
    document = docker_manifest(
        layers=[
            descriptor(DOCKER_FOREIGN_LAYER, LAYER_1, urls=["https://mcr.example/base"]),
            descriptor(DOCKER_LAYER, LAYER_2),
        ]
    )
    assert parse(document, mt.DOCKER_MANIFEST).blobs == (CONFIG, LAYER_2)


def test_digest_and_size_are_of_the_exact_bytes() -> None:
    """digest and size describe the bytes given, whitespace and key order included."""
    pretty = json.dumps(oci_manifest(), indent=3, sort_keys=True).encode() + b"\n"
    compact = json.dumps(oci_manifest(), separators=(",", ":")).encode()
    for data in (pretty, compact):
        parsed = parse_manifest(data, mt.OCI_MANIFEST)
        assert parsed.digest == sha256(data)
        assert parsed.size == len(data)
    assert parse_manifest(pretty, None).digest != parse_manifest(compact, None).digest


def test_descriptors_with_every_optional_field_are_accepted() -> None:
    """Descriptors may carry urls, annotations, artifactType, platform and sha512 digests."""
    sha512 = "sha512:" + hashlib.sha512(b"x").hexdigest()
    document = oci_index(
        manifests=[
            descriptor(
                mt.OCI_MANIFEST,
                sha512,
                annotations={"a": "b"},
                artifactType="application/vnd.example",
                platform={"architecture": "arm", "os": "linux", "variant": "v7"},
                urls=[],
                data="e30=",
            )
        ]
    )
    assert parse(document).manifests == (sha512,)


def test_zero_size_descriptor_is_accepted() -> None:
    """A descriptor of size 0 is valid."""
    document = oci_manifest(layers=[descriptor(OCI_LAYER, sha256(b""), size=0)])
    assert parse(document).blobs == (CONFIG, sha256(b""))


def test_a_size_no_64_bit_integer_holds_is_refused() -> None:
    """Sizes are int64 (OCI), as the metadata stores them: a larger one is the client's
    mistake, answered as such rather than failing the write."""
    largest = 2**63 - 1
    assert parse(oci_manifest(layers=[descriptor(OCI_LAYER, LAYER_1, size=largest - 10)]))
    huge = oci_manifest(layers=[descriptor(OCI_LAYER, LAYER_1, size=10**400)])
    assert "size" in str(rejection(huge))
    child = descriptor(mt.OCI_MANIFEST, CHILD_1, size=largest + 1)
    assert "size" in str(rejection(oci_index(manifests=[child])))


def test_sizes_adding_up_past_64_bits_are_refused() -> None:
    half = 2**62
    layers = [descriptor(OCI_LAYER, LAYER_1, size=half), descriptor(OCI_LAYER, LAYER_2, size=half)]
    assert "add up" in str(rejection(oci_manifest(layers=layers)))


def test_manifest_of_exactly_4_mib_is_accepted() -> None:
    """A manifest of exactly the 4 MiB limit is accepted."""
    data = encode(oci_manifest(annotations={"pad": ""}))
    data = encode(oci_manifest(annotations={"pad": "x" * (MAX_MANIFEST_BYTES - len(data))}))
    assert len(data) == MAX_MANIFEST_BYTES
    assert parse_manifest(data, mt.OCI_MANIFEST).size == MAX_MANIFEST_BYTES


# Choosing the media type


@pytest.mark.parametrize(
    "content_type",
    [
        mt.OCI_MANIFEST,
        f"{mt.OCI_MANIFEST}; charset=utf-8",
        "Application/VND.OCI.Image.Manifest.v1+JSON",
        f"  {mt.OCI_MANIFEST}  ",
    ],
)
def test_media_type_from_content_type(content_type: str) -> None:
    """The Content-Type's media type, without parameters and lowercased, is the media type."""
    parsed = parse(without(oci_manifest(), "mediaType"), content_type)
    assert parsed.media_type == mt.OCI_MANIFEST


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (docker_manifest(), mt.DOCKER_MANIFEST),
        (docker_list(), mt.DOCKER_MANIFEST_LIST),
        (oci_manifest(), mt.OCI_MANIFEST),
        (oci_index(), mt.OCI_INDEX),
    ],
)
@pytest.mark.parametrize("content_type", [None, "", "application/json", "application/octet-stream"])
def test_media_type_from_the_document(
    document: dict[str, Any], expected: str, content_type: str | None
) -> None:
    """Without a manifest Content-Type, the document's mediaType is the media type."""
    assert parse(document, content_type).media_type == expected


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (without(oci_manifest(), "mediaType"), mt.OCI_MANIFEST),
        (without(oci_index(), "mediaType"), mt.OCI_INDEX),
    ],
)
@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_media_type_inferred_from_fields(
    document: dict[str, Any], expected: str, content_type: str | None
) -> None:
    """Without any media type, ``manifests`` means an OCI index and ``config`` an OCI image."""
    parsed = parse(document, content_type)
    assert parsed.media_type == expected


def test_matching_content_type_and_media_type_are_accepted() -> None:
    """A Content-Type equal to the document's mediaType is fine."""
    assert parse(docker_list(), mt.DOCKER_MANIFEST_LIST).media_type == mt.DOCKER_MANIFEST_LIST


# Rejected manifests


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"{", b'{"schemaVersion": 2,}', b"\xff\xfe\x00garbage", b"{'a': 1}"],
)
def test_invalid_json_is_rejected(data: bytes) -> None:
    """Bytes that are not JSON raise ManifestInvalid."""
    with pytest.raises(ManifestInvalid, match="JSON"):
        parse_manifest(data, mt.OCI_MANIFEST)


@pytest.mark.parametrize("document", [[], [oci_manifest()], "manifest", 2, None, True])
def test_non_object_json_is_rejected(document: Any) -> None:
    """JSON that is not an object raises ManifestInvalid."""
    with pytest.raises(ManifestInvalid, match="object"):
        parse(document, mt.OCI_MANIFEST)


@pytest.mark.parametrize("version", [1, 3, "2", None, True, [2]])
def test_schema_version_other_than_2_is_rejected(version: Any) -> None:
    """schemaVersion must be the integer 2."""
    error = rejection(oci_manifest(schemaVersion=version), mt.OCI_MANIFEST)
    assert "schemaVersion" in error.message


def test_missing_schema_version_is_rejected() -> None:
    """A manifest without schemaVersion is rejected."""
    assert "schemaVersion" in rejection(without(oci_manifest(), "schemaVersion")).message


@pytest.mark.parametrize(
    ("document", "content_type"),
    [
        (oci_manifest(), mt.DOCKER_MANIFEST),
        (oci_manifest(), mt.OCI_INDEX),
        (docker_manifest(), mt.OCI_MANIFEST),
        (oci_index(), mt.DOCKER_MANIFEST_LIST),
        (docker_list(), mt.OCI_INDEX),
    ],
)
def test_media_type_contradicting_content_type_is_rejected(
    document: dict[str, Any], content_type: str
) -> None:
    """A document whose mediaType differs from the manifest Content-Type is rejected."""
    error = rejection(document, content_type)
    assert "does not match" in error.message
    assert error.detail == {"mediaType": document["mediaType"], "contentType": content_type}


@pytest.mark.parametrize(
    ("declared", "content_type"),
    [
        (mt.DOCKER_SCHEMA1_SIGNED, mt.DOCKER_SCHEMA1_SIGNED),
        (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1),
        (mt.DOCKER_SCHEMA1_SIGNED, None),
        ("application/vnd.oci.artifact.manifest.v1+json", None),
        ("application/json", None),
        ("application/vnd.oci.image.config.v1+json", None),
    ],
)
def test_unsupported_media_types_are_rejected(declared: str, content_type: str | None) -> None:
    """Schema 1 and other non-manifest media types raise ManifestInvalid."""
    document = {"schemaVersion": 2, "mediaType": declared, "name": "x/y", "fsLayers": []}
    error = rejection(document, content_type)
    assert "unsupported" in error.message
    assert error.detail == {"mediaType": declared}


def test_schema1_manifest_is_rejected() -> None:
    """A realistic schema 1 signed manifest is rejected."""
    document = {
        "schemaVersion": 1,
        "name": "team/app",
        "tag": "latest",
        "architecture": "amd64",
        "fsLayers": [{"blobSum": LAYER_1}],
        "history": [{"v1Compatibility": "{}"}],
        "signatures": [],
    }
    with pytest.raises(ManifestInvalid):
        parse(document, mt.DOCKER_SCHEMA1_SIGNED)


def test_document_without_any_media_type_hint_is_rejected() -> None:
    """A document with neither a media type nor config or manifests is rejected."""
    error = rejection({"schemaVersion": 2, "layers": []})
    assert "unsupported" in error.message


@pytest.mark.parametrize("declared", [2, ["x"], {"a": "b"}, True])
def test_non_string_media_type_is_rejected(declared: Any) -> None:
    """A top-level mediaType that is not a string is rejected."""
    assert "mediaType" in rejection(oci_manifest(mediaType=declared)).message


@pytest.mark.parametrize("artifact_type", [1, ["x"], {"a": "b"}, False])
def test_non_string_artifact_type_is_rejected(artifact_type: Any) -> None:
    """A top-level artifactType that is not a string is rejected."""
    assert "artifactType" in rejection(oci_manifest(artifactType=artifact_type)).message


@pytest.mark.parametrize("build", [docker_manifest, docker_list])
def test_subject_in_docker_manifests_is_rejected(build: Any) -> None:
    """Only OCI manifests and indexes may have a subject."""
    error = rejection(build(subject=descriptor(mt.OCI_MANIFEST, SUBJECT)))
    assert "subject" in error.message


def test_docker_manifest_requires_layers() -> None:
    """A Docker schema 2 manifest must list its layers."""
    assert "layers" in rejection(without(docker_manifest(), "layers")).message


@pytest.mark.parametrize("build", [oci_manifest, docker_manifest])
def test_image_manifest_requires_a_config(build: Any) -> None:
    """An image manifest without a config descriptor is rejected."""
    assert "config" in rejection(without(build(), "config")).message


@pytest.mark.parametrize("build", [oci_index, docker_list])
def test_index_requires_manifests(build: Any) -> None:
    """An index without a manifests list is rejected."""
    document = without(build(), "manifests")
    assert "manifests" in rejection(document, document["mediaType"]).message


@pytest.mark.parametrize("value", [{}, "x", 3, {"digest": CHILD_1}])
def test_manifests_must_be_a_list(value: Any) -> None:
    """An index's manifests must be a list."""
    assert "manifests" in rejection(oci_index(manifests=value)).message


@pytest.mark.parametrize("value", [{}, "x", 3])
def test_layers_must_be_a_list(value: Any) -> None:
    """A manifest's layers must be a list."""
    assert "layers" in rejection(oci_manifest(layers=value)).message


@pytest.mark.parametrize(
    "child_type",
    [mt.OCI_CONFIG, OCI_LAYER, mt.OCI_EMPTY, mt.DOCKER_SCHEMA1_SIGNED, "application/json"],
)
def test_index_entry_that_is_not_a_manifest_is_rejected(child_type: str) -> None:
    """Every index entry must be a manifest or index."""
    document = oci_index(
        manifests=[descriptor(mt.OCI_MANIFEST, CHILD_1), descriptor(child_type, CHILD_2)]
    )
    error = rejection(document)
    assert "index entries" in error.message
    assert error.detail == {"digest": CHILD_2, "mediaType": child_type}


BAD_DESCRIPTORS: list[tuple[str, Any]] = [
    ("not an object", "sha256:abc"),
    ("list", [CONFIG]),
    ("missing mediaType", {"digest": LAYER_1, "size": 1}),
    ("empty mediaType", descriptor("", LAYER_1)),
    ("non-string mediaType", {"mediaType": 7, "digest": LAYER_1, "size": 1}),
    ("missing digest", {"mediaType": OCI_LAYER, "size": 1}),
    ("non-string digest", {"mediaType": OCI_LAYER, "digest": 12, "size": 1}),
    ("bad digest", descriptor(OCI_LAYER, "sha256:abc")),
    ("unknown digest algorithm", descriptor(OCI_LAYER, "md5:" + "0" * 32)),
    ("uppercase digest", descriptor(OCI_LAYER, LAYER_1.upper())),
    ("missing size", {"mediaType": OCI_LAYER, "digest": LAYER_1}),
    ("negative size", descriptor(OCI_LAYER, LAYER_1, size=-1)),
    ("boolean size", descriptor(OCI_LAYER, LAYER_1, size=True)),
    ("float size", {"mediaType": OCI_LAYER, "digest": LAYER_1, "size": 1.0}),
    ("string size", {"mediaType": OCI_LAYER, "digest": LAYER_1, "size": "10"}),
    ("urls not a list", descriptor(OCI_LAYER, LAYER_1, urls="https://x")),
    ("urls not strings", descriptor(OCI_LAYER, LAYER_1, urls=[1])),
    ("annotations not a map", descriptor(OCI_LAYER, LAYER_1, annotations=["a"])),
    ("annotation value not a string", descriptor(OCI_LAYER, LAYER_1, annotations={"a": 1})),
    ("annotation value null", descriptor(OCI_LAYER, LAYER_1, annotations={"a": None})),
    ("artifactType not a string", descriptor(OCI_LAYER, LAYER_1, artifactType=1)),
    ("platform not an object", descriptor(OCI_LAYER, LAYER_1, platform="linux/amd64")),
    ("platform without os", descriptor(OCI_LAYER, LAYER_1, platform={"architecture": "amd64"})),
    ("platform without architecture", descriptor(OCI_LAYER, LAYER_1, platform={"os": "linux"})),
    (
        "platform non-string os",
        descriptor(OCI_LAYER, LAYER_1, platform={"architecture": "amd64", "os": 1}),
    ),
]


@pytest.mark.parametrize(
    "bad", [bad for _, bad in BAD_DESCRIPTORS], ids=[name for name, _ in BAD_DESCRIPTORS]
)
@pytest.mark.parametrize("place", ["config", "layer", "subject"])
def test_bad_descriptors_in_manifests_are_rejected(bad: Any, place: str) -> None:
    """A malformed config, layer or subject descriptor raises ManifestInvalid naming its place."""
    if place == "config":
        document, where = oci_manifest(config=bad), "config"
    elif place == "layer":
        document, where = oci_manifest(layers=[descriptor(OCI_LAYER, LAYER_1), bad]), "layers[1]"
    else:
        document, where = oci_manifest(subject=bad), "subject"
    assert where in rejection(document, mt.OCI_MANIFEST).message


@pytest.mark.parametrize(
    "bad", [bad for _, bad in BAD_DESCRIPTORS], ids=[name for name, _ in BAD_DESCRIPTORS]
)
def test_bad_descriptors_in_indexes_are_rejected(bad: Any) -> None:
    """A malformed index entry raises ManifestInvalid naming its position."""
    if isinstance(bad, dict) and bad.get("mediaType") == OCI_LAYER:
        bad = {**bad, "mediaType": mt.OCI_MANIFEST}
    document = oci_index(manifests=[bad])
    assert "manifests[0]" in rejection(document, mt.OCI_INDEX).message


@pytest.mark.parametrize(
    "annotations",
    [["a", "b"], "a=b", {"a": 1}, {"a": None}, {"a": ["b"]}, {"a": {"b": "c"}}],
)
def test_top_level_annotations_must_map_strings_to_strings(annotations: Any) -> None:
    """Top-level annotations that are not string to string are rejected."""
    assert "annotations" in rejection(oci_manifest(annotations=annotations)).message


def test_manifest_over_4_mib_is_rejected() -> None:
    """A manifest one byte over 4 MiB is rejected before being parsed."""
    data = b" " * (MAX_MANIFEST_BYTES - 1) + b"{}"
    assert len(data) == MAX_MANIFEST_BYTES + 1
    with pytest.raises(ManifestInvalid, match="4 MiB"):
        parse_manifest(data, mt.OCI_MANIFEST)


def test_rejections_are_400_manifest_invalid() -> None:
    """Manifest rejections surface as HTTP 400 with code MANIFEST_INVALID."""
    error = rejection(oci_manifest(schemaVersion=1))
    assert error.status == 400
    assert error.code == "MANIFEST_INVALID"


def test_an_integer_too_long_to_convert_is_invalid_json() -> None:
    """A 5000-digit schemaVersion (past Python's 4300-digit limit) is MANIFEST_INVALID."""
    data = encode(without(oci_manifest(), "schemaVersion"))[:-1] + b', "schemaVersion": '
    with pytest.raises(ManifestInvalid, match="not valid JSON"):
        parse_manifest(data + b"9" * 5000 + b"}", mt.OCI_MANIFEST)


@pytest.mark.parametrize(
    "fields",
    [
        {"annotations": {"a": "\udc00"}},
        {"annotations": {"\ud800": "a"}},
        {"artifactType": "application/x\udfff"},
        {"layers": [descriptor(OCI_LAYER, LAYER_1, annotations={"a": "b\ud83d"})]},
    ],
)
def test_lone_surrogates_are_rejected(fields: dict[str, Any]) -> None:
    """JSON may escape a lone surrogate, which no UTF-8 string (nor BSON) can hold."""
    assert "lone surrogate" in rejection(oci_manifest(**fields)).message


def test_lone_surrogate_as_raw_bytes_is_rejected() -> None:
    """json.loads decodes bytes with surrogatepass: an encoded surrogate is refused too."""
    data = encode(oci_manifest(annotations={"a": "SURROGATE"})).replace(
        b"SURROGATE", "\udc00".encode(errors="surrogatepass")
    )
    with pytest.raises(ManifestInvalid):
        parse_manifest(data, mt.OCI_MANIFEST)


@pytest.mark.parametrize("where", ["manifest", "layer"])
def test_nul_in_an_annotation_key_is_rejected(where: str) -> None:
    """BSON keys cannot hold NUL; annotation keys with one are refused."""
    annotations = {"nul\x00key": "v"}
    if where == "manifest":
        document = oci_manifest(annotations=annotations)
    else:
        document = oci_manifest(layers=[descriptor(OCI_LAYER, LAYER_1, annotations=annotations)])
    assert "NUL" in rejection(document).message


def test_nul_in_an_annotation_value_and_paired_surrogates_are_accepted() -> None:
    """NUL in a value and astral characters (a surrogate pair in JSON) are ordinary text."""
    manifest = parse(oci_manifest(annotations={"a": "x\x00y", "b": "\U0001f433"}))
    assert manifest.annotations == {"a": "x\x00y", "b": "\U0001f433"}
