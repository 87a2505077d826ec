"""The Dockerfile parser reads what Docker's reads, or refuses: a line read one way here and
another way by the engine would let an image past the checks."""

from __future__ import annotations

import pytest

from services.builder.dockerfile import parse_dockerfile
from shared.builds.errors import DockerfileInvalid


def keywords_and_arguments(text: str) -> list[tuple[str, str]]:
    return [(i.keyword, i.arguments) for i in parse_dockerfile(text).instructions]


@pytest.mark.parametrize("character", ["\u00a0", "\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\r"])
def test_characters_docker_reads_differently_are_refused(character: str) -> None:
    text = f"FROM a.io/x:1\nRUN echo a{character}b \\{character}\nFROM evil.invalid/img:1\n"
    with pytest.raises(DockerfileInvalid, match="line 2"):
        parse_dockerfile(text)


def test_windows_line_ends_are_fine() -> None:
    assert keywords_and_arguments("FROM a.io/x:1\r\nRUN echo \\\r\n  hi\r\n") == [
        ("FROM", "a.io/x:1"),
        ("RUN", "echo   hi"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "# ESCAPE=`\nFROM a.io/x:1\nRUN true `\nFROM evil.invalid/img:1\n",
        "# syntax=docker/dockerfile:1\n# escape=`\n"
        "FROM a.io/x:1\nRUN true `\nFROM evil.invalid/img:1\n",
        "#escape = `\nFROM a.io/x:1\nRUN true `\nFROM evil.invalid/img:1\n",
    ],
)
def test_the_escape_directive_is_read_as_docker_reads_it(text: str) -> None:
    instructions = keywords_and_arguments(text)
    assert instructions[-1] == ("RUN", "true FROM evil.invalid/img:1")


@pytest.mark.parametrize(
    "text",
    [
        "\n# escape=`\nFROM a.io/x:1\nRUN true `\nFROM b.io/y:1\n",  # after a blank line
        "# foo=bar\n# escape=`\nFROM a.io/x:1\nRUN true `\nFROM b.io/y:1\n",  # after another
        "FROM a.io/x:1\n# escape=`\nRUN true `\nFROM b.io/y:1\n",  # after an instruction
    ],
)
def test_a_directive_after_anything_else_is_a_comment(text: str) -> None:
    assert keywords_and_arguments(text)[-1] == ("FROM", "b.io/y:1")


def test_a_repeated_or_bad_escape_directive_is_refused() -> None:
    for text in ("# escape=`\n# escape=\\\nFROM a\n", "# escape=x\nFROM a\n"):
        with pytest.raises(DockerfileInvalid):
            parse_dockerfile(text)


def test_flags_are_separated_by_tabs_too_and_quoted_ones_refused() -> None:
    (_, copy) = parse_dockerfile(
        "FROM a\nCOPY --chown=0\t--from=evil.invalid/x:1 / /y\n"
    ).instructions
    assert copy.flags == {"chown": "0", "from": "evil.invalid/x:1"}
    assert copy.arguments == "/ /y"
    with pytest.raises(DockerfileInvalid, match="plain characters"):
        parse_dockerfile('FROM a\nCOPY --chown="0 " --from=evil.invalid/x:1 / /y\n')


def test_the_keyword_may_be_followed_by_a_tab() -> None:
    assert keywords_and_arguments("FROM\ta.io/x:1\n") == [("FROM", "a.io/x:1")]


@pytest.mark.parametrize(
    "line",
    [
        "COPY --fr\\om=evil.invalid/x:1 /a /b",  # Docker drops the escape: --from
        "COPY --chown=1\u00e0--from=evil.invalid/x:1 /a /b",  # 0xA0 is a space to Docker
        "COPY --chown=`0` /a /b",
    ],
)
def test_flags_docker_would_read_otherwise_are_refused(line: str) -> None:
    with pytest.raises(DockerfileInvalid, match="plain characters"):
        parse_dockerfile(f"FROM a.io/x:1\n{line}\n")


@pytest.mark.parametrize(
    "text",
    [
        "FROM a.io/x:1\nENV A=x\\\\\n FROM evil.invalid/x:1\n",
        "FROM a.io/x:1\nRUN true \\\n\\\nFROM evil.invalid/x:1\n",
        "# check=skip=all\n# escape=`\nFROM a.io/x:1\nENV A=x`\nFROM evil.invalid/x:1\n",
        "FROM a.io/x:1\nRUN cat <<EOF\nhello\nEOF\n",
        "FROM a.io/x:1\nCOPY <<-'X' /a\nX\n",
    ],
    ids=["double-escape", "lone-escape", "check-then-escape", "heredoc", "heredoc-quoted"],
)
def test_lines_engines_read_differently_are_refused(text: str) -> None:
    with pytest.raises(DockerfileInvalid):
        parse_dockerfile(text)


def test_common_dockerfiles_still_parse() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "ARG VERSION=1.0\n"
        "FROM --platform=$BUILDPLATFORM a.io/sdk:${VERSION} AS build\n"
        "RUN --mount=type=cache,target=/root/.cache make && echo $((1<<2))\n"
        "FROM a.io/runtime:1\n"
        "COPY --from=0 --chown=app:app --chmod=0755 /out /app\n"
        "COPY --link --exclude=*.md . /src\n"
        'ADD ["local.tar.gz", "/"]\n'
        "HEALTHCHECK --interval=30s --timeout=3s CMD true\n"
    )
    assert [i.keyword for i in parse_dockerfile(text).instructions] == [
        "ARG", "FROM", "RUN", "FROM", "COPY", "COPY", "ADD", "HEALTHCHECK",
    ]  # fmt: skip
