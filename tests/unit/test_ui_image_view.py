"""What the manifest page reads of manifests and image configs, which are tenant content,
and that the templates show such content as text."""

from __future__ import annotations

import json

from services.registry.ui.image_view import (
    MAX_CONFIG_BYTES,
    MAX_ENTRIES,
    image_config,
    manifest_view,
    wants_config,
)
from services.registry.ui.render import environment
from shared.oci import media_types as mt

LAYER_DIGEST = "sha256:" + "a" * 64
CONFIG_DIGEST = "sha256:" + "c" * 64
HOSTILE = "<script>alert('x')</script>"


def descriptor(media_type: str, digest: str, size: int, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def test_an_image_shows_its_layers_and_config() -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, CONFIG_DIGEST, 300),
        "layers": [descriptor(mt.OCI_LAYER, LAYER_DIGEST, 1000)] * 2,
        "annotations": {"b": "2", "a": "1"},
    }
    view = manifest_view(json.dumps(manifest).encode(), mt.OCI_MANIFEST)
    assert not view.is_index
    assert [layer.size for layer in view.layers] == [1000, 1000]
    assert view.layers_size == 2000
    assert view.annotations == [("a", "1"), ("b", "2")]
    assert wants_config(view)


def test_an_index_shows_its_platforms() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            descriptor(
                mt.OCI_MANIFEST,
                LAYER_DIGEST,
                500,
                platform={"os": "linux", "architecture": "arm64", "variant": "v8"},
            ),
            descriptor(mt.OCI_MANIFEST, CONFIG_DIGEST, 400),
        ],
    }
    view = manifest_view(json.dumps(index).encode(), mt.OCI_INDEX)
    assert view.is_index
    assert [p.platform for p in view.platforms] == ["linux/arm64/v8", "unknown"]
    assert not wants_config(view)


def test_malformed_entries_are_left_out_not_shown() -> None:
    manifest = {
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, "sha256:short", 10),
        "layers": [
            descriptor(mt.OCI_LAYER, LAYER_DIGEST, -1),
            descriptor(mt.OCI_LAYER, LAYER_DIGEST, True),
            descriptor(mt.OCI_LAYER, "../../etc/passwd", 5),
            "not a descriptor",
            descriptor(mt.OCI_LAYER, LAYER_DIGEST, 7),
        ],
        "annotations": {"ok": "yes", "nested": {"no": 1}},
        "artifactType": ["not", "text"],
    }
    view = manifest_view(json.dumps(manifest).encode(), mt.OCI_MANIFEST)
    assert view.config is None
    assert [layer.size for layer in view.layers] == [7]
    assert view.annotations == [("ok", "yes")]
    assert view.artifact_type is None


def test_long_lists_are_cut_at_the_budget() -> None:
    manifest = {"layers": [descriptor(mt.OCI_LAYER, LAYER_DIGEST, 1)] * (MAX_ENTRIES + 5)}
    view = manifest_view(json.dumps(manifest).encode(), mt.OCI_MANIFEST)
    assert len(view.layers) == MAX_ENTRIES
    assert view.truncated


def test_only_small_image_configs_are_read() -> None:
    for media_type, size, wanted in [
        (mt.OCI_CONFIG, 10, True),
        (mt.DOCKER_CONFIG, MAX_CONFIG_BYTES, True),
        (mt.OCI_CONFIG, MAX_CONFIG_BYTES + 1, False),
        (mt.OCI_EMPTY, 2, False),
        ("application/vnd.example.sbom.config", 10, False),
    ]:
        manifest = {"config": descriptor(media_type, CONFIG_DIGEST, size)}
        view = manifest_view(json.dumps(manifest).encode(), mt.OCI_MANIFEST)
        assert wants_config(view) is wanted, (media_type, size)


def test_the_config_says_how_the_image_runs() -> None:
    config = {
        "os": "linux",
        "architecture": "amd64",
        "config": {
            "Entrypoint": ["/bin/app", 7],
            "Cmd": ["--serve"],
            "Env": ["A=1"],
            "Labels": {"z": "last", "a": "first", "n": None},
            "User": "app",
            "ExposedPorts": {"9090/tcp": {}, "53/udp": {}},
            "WorkingDir": "/srv",
        },
    }
    read = image_config(json.dumps(config).encode())
    assert read is not None
    assert read.platform == "linux/amd64"
    assert read.entrypoint == ["/bin/app"]
    assert read.command == ["--serve"]
    assert read.env == ["A=1"]
    assert read.labels == [("a", "first"), ("z", "last")]
    assert (read.user, read.working_dir) == ("app", "/srv")
    assert read.ports == ["53/udp", "9090/tcp"]


def test_a_config_that_is_not_json_shows_nothing() -> None:
    assert image_config(b"\xff\xfe not json") is None
    assert image_config(b"[1, 2]") is None
    empty = image_config(b'{"config": "not an object"}')
    assert empty is not None and empty.entrypoint == [] and empty.labels == []


def test_a_config_nested_deeper_than_the_parser_goes_shows_nothing() -> None:
    deep = 100_000
    assert image_config(b"[" * deep + b"]" * deep) is None
    assert image_config(b'{"config":' + b"[" * deep + b"]" * deep + b"}") is None


def test_templates_show_tenant_text_as_text() -> None:
    manifest = {
        "mediaType": mt.OCI_MANIFEST,
        "config": descriptor(mt.OCI_CONFIG, CONFIG_DIGEST, 10),
        "layers": [descriptor(HOSTILE, LAYER_DIGEST, 1)],
        "annotations": {HOSTILE: HOSTILE},
        "artifactType": HOSTILE,
    }
    view = manifest_view(json.dumps(manifest).encode(), mt.OCI_MANIFEST)
    config = image_config(
        json.dumps(
            {"config": {"Labels": {"note": HOSTILE}, "Env": [HOSTILE], "User": HOSTILE}}
        ).encode()
    )
    html = (
        environment()
        .get_template("manifest.html")
        .render(
            username=HOSTILE,
            csrf_token="t",
            space={"id": "team", "name": HOSTILE},
            name={"full": "team/app", "path": "app"},
            repository_path="/spaces/team/repositories/app",
            digest=LAYER_DIGEST,
            manifest={"size": 10},
            view=view,
            config=config,
            referrers=[(HOSTILE, [])],
            pull_command=HOSTILE,
        )
    )
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") >= 8
