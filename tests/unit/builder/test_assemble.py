"""Dockerfiles, and images assembled without an engine: deterministic, complete configs."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from services.builder.assemble import BaseImage, assemble, base_reference
from services.builder.dockerfile import expand, parse_dockerfile
from shared.builds.errors import BuildError, DockerfileInvalid

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def base(media_type: str = OCI_MANIFEST, **config: Any) -> BaseImage:
    return BaseImage(
        manifest={
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": "x", "digest": "sha256:" + "c" * 64, "size": 1},
            "layers": [{"mediaType": "l", "digest": "sha256:" + "a" * 64, "size": 10}],
        },
        media_type=media_type,
        config={
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin", "KEEP=1"], "Cmd": ["sh"], **config},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "b" * 64]},
            "history": [{"created_by": "base"}],
        },
    )


DOCKERFILE = """# syntax is ignored
ARG BASE=registry.local/spaces-1/base:1.0
FROM ${BASE}
ARG GREETING=hello
ENV APP_HOME=/srv/app \\
    GREETING=${GREETING}
LABEL org.example.team="platform" version=2
WORKDIR $APP_HOME
COPY --chown=1000:1000 app/ ./
COPY entrypoint.sh /usr/local/bin/
USER 1000
EXPOSE 8080 9090/udp
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/entrypoint.sh"]
CMD serve --port 8080
HEALTHCHECK --interval=30s --retries=3 CMD wget -q localhost:8080
STOPSIGNAL SIGTERM
"""


def context(root: Path) -> Path:
    (root / "app/config").mkdir(parents=True)
    (root / "app/config/app.json").write_text('{"a": 1}')
    (root / "app/readme.txt").write_text("hi")
    (root / "entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (root / "entrypoint.sh").chmod(0o755)
    return root


def layer_entries(path: Path) -> list[tuple[str, int, int, int, int]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(m.name, m.mode, m.uid, m.gid, int(m.mtime)) for m in tar.getmembers()]


def test_an_image_is_assembled_with_layers_and_config(tmp_path: Path) -> None:
    dockerfile = parse_dockerfile(DOCKERFILE)
    assert dockerfile.assembled_blocker() is None
    assert base_reference(dockerfile, {}) == "registry.local/spaces-1/base:1.0"
    assert base_reference(dockerfile, {"BASE": "other:2"}) == "other:2"
    image = assemble(dockerfile, context(tmp_path / "ctx"), base(), {}, tmp_path / "scratch")

    config = json.loads(image.config)
    settings = config["config"]
    assert settings["Env"] == ["PATH=/bin", "KEEP=1", "APP_HOME=/srv/app", "GREETING=hello"]
    assert settings["Labels"] == {"org.example.team": "platform", "version": "2"}
    assert settings["WorkingDir"] == "/srv/app"
    assert settings["User"] == "1000"
    assert settings["ExposedPorts"] == {"8080/tcp": {}, "9090/udp": {}}
    assert settings["Volumes"] == {"/data": {}}
    assert settings["Entrypoint"] == ["/usr/local/bin/entrypoint.sh"]
    assert settings["Cmd"] == ["/bin/sh", "-c", "serve --port 8080"]
    assert settings["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost:8080"],
        "Interval": 30 * 10**9,
        "Retries": 3,
    }
    assert settings["StopSignal"] == "SIGTERM"
    assert config["created"] == "1970-01-01T00:00:00Z"

    # One new layer per COPY and WORKDIR; history counts them exactly.
    assert len(image.new_layers) == 3
    assert config["rootfs"]["diff_ids"] == ["sha256:" + "b" * 64] + [
        layer.diff_id for layer in image.new_layers
    ]
    non_empty = [h for h in config["history"] if not h.get("empty_layer")]
    assert len(non_empty) == len(config["rootfs"]["diff_ids"])

    workdir_layer, app_layer, script_layer = (
        layer_entries(layer.path) for layer in image.new_layers
    )
    # Only what the instruction makes: folders above it keep the base's owners and modes.
    assert workdir_layer == [("srv/app", 0o755, 0, 0, 0)]
    assert app_layer == [
        ("srv/app", 0o755, 1000, 1000, 0),
        ("srv/app/config", 0o755, 1000, 1000, 0),
        ("srv/app/config/app.json", 0o644, 1000, 1000, 0),
        ("srv/app/readme.txt", 0o644, 1000, 1000, 0),
    ]
    assert ("usr/local/bin/entrypoint.sh", 0o755, 0, 0, 0) in script_layer

    for layer in image.new_layers:
        data = layer.path.read_bytes()
        assert layer.digest == "sha256:" + hashlib.sha256(data).hexdigest()
        assert layer.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
        assert layer.size == len(data)

    manifest = json.loads(image.manifest)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["config"]["digest"] == image.config_digest
    assert manifest["layers"][0]["digest"] == "sha256:" + "a" * 64
    assert [layer["mediaType"] for layer in manifest["layers"][1:]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ] * 3


def test_the_same_inputs_give_the_same_digest(tmp_path: Path) -> None:
    dockerfile = parse_dockerfile(DOCKERFILE)
    first = assemble(dockerfile, context(tmp_path / "a"), base(), {}, tmp_path / "s1")
    second_context = context(tmp_path / "b")
    (second_context / "app/readme.txt").touch()  # a different mtime changes nothing
    second = assemble(dockerfile, second_context, base(), {}, tmp_path / "s2")
    assert first.digest == second.digest
    (second_context / "app/readme.txt").write_text("changed")
    third = assemble(dockerfile, second_context, base(), {}, tmp_path / "s3")
    assert third.digest != first.digest


def test_docker_bases_give_docker_manifests_and_entrypoint_clears_inherited_cmd(
    tmp_path: Path,
) -> None:
    dockerfile = parse_dockerfile("FROM b\nENTRYPOINT /run.sh\n")
    image = assemble(dockerfile, tmp_path, base(DOCKER_MANIFEST), {}, tmp_path / "s")
    manifest = json.loads(image.manifest)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    settings = json.loads(image.config)["config"]
    assert settings["Entrypoint"] == ["/bin/sh", "-c", "/run.sh"] and settings["Cmd"] is None


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as missing:
        assemble(
            parse_dockerfile("FROM b\nCOPY nothing /x\n"), tmp_path, base(), {}, tmp_path / "s"
        )
    assert missing.value.code == "copy_source_missing"
    with pytest.raises(BuildError) as outside:
        assemble(parse_dockerfile("FROM b\nCOPY ../x /x\n"), tmp_path, base(), {}, tmp_path / "s")
    assert outside.value.code == "copy_source_outside_context"
    with pytest.raises(BuildError) as onbuild:
        assemble(
            parse_dockerfile("FROM b\n"), tmp_path, base(OnBuild=["RUN x"]), {}, tmp_path / "s"
        )
    assert onbuild.value.code == "onbuild_base"


@pytest.mark.parametrize(
    ("text", "blocker"),
    [
        ("FROM a\nRUN make\n", "RUN on line 2"),
        ("FROM a AS build\nFROM b\nCOPY --from=build /x /x\n", "more than one stage"),
        ("FROM a\nCOPY --from=other /x /x\n", "COPY --from on line 2"),
        ("FROM a\nADD https://example.com/x /x\n", "ADD of a URL or an archive on line 2"),
        ("FROM a\nADD app.tar.gz /x\n", "ADD of a URL or an archive on line 2"),
        (
            "FROM a\nCOPY --chown=app:app x /x\n",
            "--chown by name on line 2 (needs the base's users)",
        ),
        ("FROM a\nONBUILD RUN x\n", "ONBUILD on line 2"),
        ("FROM a\nADD local.txt /x\n", None),
    ],
)
def test_what_needs_the_docker_strategy(text: str, blocker: str | None) -> None:
    assert parse_dockerfile(text).assembled_blocker() == blocker


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "COPY a b\n", "FROM\n", "FROM a\nFROBNICATE x\n"]
)
def test_invalid_dockerfiles(text: str) -> None:
    with pytest.raises(DockerfileInvalid):
        parse_dockerfile(text)


def test_variable_expansion() -> None:
    values = {"A": "x", "EMPTY": ""}
    assert expand("$A ${A} ${B:-dflt} ${A:+alt} ${EMPTY:-e} \\$A", values) == "x x dflt alt e $A"


def test_layers_hold_symlinks_and_override_modes(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/tool").write_text("x")
    (tmp_path / "bin/alias").symlink_to("tool")
    image = assemble(
        parse_dockerfile("FROM b\nCOPY --chmod=700 bin /opt/bin\n"), tmp_path, base(), {},
        tmp_path / "s",
    )  # fmt: skip
    with tarfile.open(image.new_layers[0].path, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["opt/bin/alias"].issym() and members["opt/bin/alias"].linkname == "tool"
    assert members["opt/bin/tool"].mode == 0o700


def test_args_before_from_feed_only_from_and_redeclarations(tmp_path: Path) -> None:
    text = (
        "ARG VERSION=1.0\nARG HIDDEN=x\nFROM base:${VERSION}\n"
        "ARG VERSION\nARG LOCAL=local\nENV V=${VERSION} H=${HIDDEN} L=${LOCAL}\n"
    )
    dockerfile = parse_dockerfile(text)
    assert base_reference(dockerfile, {}) == "base:1.0"
    image = assemble(dockerfile, tmp_path, base(), {"LOCAL": "given"}, tmp_path / "s")
    env = json.loads(image.config)["config"]["Env"]
    assert "V=1.0" in env and "H=" in env and "L=given" in env


def test_workdir_is_normalised_and_continuations_join_like_docker(tmp_path: Path) -> None:
    text = "FROM b\nWORKDIR /srv/app\nWORKDIR ../data\nENV A=foo\\\nbar \\\n\n  B=2\n"
    image = assemble(parse_dockerfile(text), tmp_path, base(), {}, tmp_path / "s")
    settings = json.loads(image.config)["config"]
    assert settings["WorkingDir"] == "/srv/data"
    assert "A=foobar" in settings["Env"] and "B=2" in settings["Env"]
    assert layer_entries(image.new_layers[1].path) == [("srv/data", 0o755, 0, 0, 0)]


def test_dockerignore_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "app/.git").mkdir(parents=True)
    (tmp_path / "app/.git/config").write_text("secret")
    (tmp_path / "app/notes.md").write_text("n")
    (tmp_path / "app/README.md").write_text("r")
    (tmp_path / "app/main.py").write_text("m")
    (tmp_path / ".dockerignore").write_text("# comment\n**/.git\n*/*.md\n!app/README.md\n")
    image = assemble(
        parse_dockerfile("FROM b\nCOPY app /app\n"), tmp_path, base(), {}, tmp_path / "s"
    )
    names = [name for name, *_ in layer_entries(image.new_layers[0].path)]
    assert names == ["app", "app/README.md", "app/main.py"]


PUSHED = dt.datetime(2026, 3, 14, 9, 26, 53, 589_000, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("given", "base_created", "expected"),
    [
        (PUSHED, "2025-07-01T12:00:00Z", "2026-03-14T09:26:53Z"),
        (PUSHED, "2026-11-30T23:59:59.123456789Z", "2026-11-30T23:59:59Z"),
        (None, "2024-02-29T08:00:00+02:00", "2024-02-29T06:00:00Z"),
        (dt.datetime(2026, 3, 14, 9, 26, 53), None, "2026-03-14T09:26:53Z"),
        (None, None, "1970-01-01T00:00:00Z"),
        (PUSHED, "yesterday", "2026-03-14T09:26:53Z"),
        (PUSHED, 1_700_000_000, "2026-03-14T09:26:53Z"),
        (PUSHED, "2030-01-01T00:00:00Z" + " " * 100, "2026-03-14T09:26:53Z"),
        (None, "0001-01-01T00:30:00+01:00", "1970-01-01T00:00:00Z"),
    ],
    ids=[
        "push-after-base", "base-after-push", "base-offset-to-utc", "naive-push-is-utc",
        "nothing-known", "base-not-a-time", "base-a-number", "base-text-too-long",
        "base-before-year-one",
    ],
)  # fmt: skip
def test_created_is_the_newest_input_time_to_the_second(
    tmp_path: Path, given: dt.datetime | None, base_created: Any, expected: str
) -> None:
    image_base = base()
    if base_created is not None:
        image_base.config["created"] = base_created
    dockerfile = parse_dockerfile("FROM b\nARG MODE=x\nENV MODE=$MODE\nCOPY entrypoint.sh /\n")
    image = assemble(
        dockerfile, context(tmp_path / "ctx"), image_base, {}, tmp_path / "s", created=given
    )
    config = json.loads(image.config)
    assert config["created"] == expected
    # The base's own history is kept; each instruction's entry carries the image's time.
    assert config["history"][0] == {"created_by": "base"}
    assert [entry["created"] for entry in config["history"][1:]] == [expected] * 3


def test_the_same_push_time_gives_the_same_digest_and_another_one_another(
    tmp_path: Path,
) -> None:
    dockerfile = parse_dockerfile(DOCKERFILE)

    def digest(name: str, created: dt.datetime) -> str:
        root = tmp_path / name
        return assemble(
            dockerfile, context(root / "ctx"), base(), {}, root / "s", created=created
        ).digest

    assert digest("a", PUSHED) == digest("b", PUSHED.replace(microsecond=0))
    assert digest("c", PUSHED) != digest("d", PUSHED + dt.timedelta(seconds=1))
