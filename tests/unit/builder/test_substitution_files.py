"""Substituting variables in files writes the bytes the deployment server writes: each file in
the encoding it was read in, or in the .NET encoding ``Octopus.Action.SubstituteInFiles.
OutputEncoding`` names, with that encoding's BOM and its way with characters it cannot hold."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from services.builder.features.octostache import Budget
from services.builder.features.pipeline import apply_features
from services.builder.features.variables import VariableSet
from shared.builds.errors import BuildError
from shared.sdi import Features

OUTPUT_ENCODING = "Octopus.Action.SubstituteInFiles.OutputEncoding"
TEMPLATE = b"greeting=#{Greeting}\r\n"


def substitute(
    root: Path, content: bytes, variables: dict[str, str], *, budget: Budget | None = None
) -> tuple[bytes, list[str], set[str]]:
    """``content`` as ``greeting.ini`` after substitution, with the log and changed files."""
    (root / "greeting.ini").write_bytes(content)
    lines: list[str] = []
    report = apply_features(root, Features(substitute_in_files=("greeting.ini",)),
                            VariableSet(variables), environment=None, tenant=None,
                            log=lines.append, budget=budget)  # fmt: skip
    return (root / "greeting.ini").read_bytes(), lines, report.changed


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param("utf-8", "h\u00e9", codecs.BOM_UTF8 + "greeting=h\u00e9\r\n".encode(),
                     id="utf-8-has-a-bom"),
        pytest.param("UTF-8", "h\u00e9", codecs.BOM_UTF8 + "greeting=h\u00e9\r\n".encode(),
                     id="names-in-any-case"),
        pytest.param("unicode", "h\u00e9",
                     codecs.BOM_UTF16_LE + "greeting=h\u00e9\r\n".encode("utf-16-le"),
                     id="unicode-is-utf-16-little-endian"),
        pytest.param("utf-16", "\U0001f600",
                     codecs.BOM_UTF16_LE + "greeting=\U0001f600\r\n".encode("utf-16-le"),
                     id="utf-16"),
        pytest.param("unicodeFFFE", "h\u00e9",
                     codecs.BOM_UTF16_BE + "greeting=h\u00e9\r\n".encode("utf-16-be"),
                     id="unicodefffe-is-utf-16-big-endian"),
        pytest.param("utf-32", "h\u00e9",
                     codecs.BOM_UTF32_LE + "greeting=h\u00e9\r\n".encode("utf-32-le"),
                     id="utf-32"),
        pytest.param("utf-32BE", "h\u00e9",
                     codecs.BOM_UTF32_BE + "greeting=h\u00e9\r\n".encode("utf-32-be"),
                     id="utf-32-big-endian"),
        pytest.param("us-ascii", "h\u00e9\U0001f600", b"greeting=h??\r\n",
                     id="ascii-writes-a-question-mark-per-character-it-lacks"),
        pytest.param("latin1", "h\u00e9", b"greeting=h\xe9\r\n", id="latin-1"),
        pytest.param("windows-1252", "\u20ac5", b"greeting=\x805\r\n", id="windows-1252"),
        pytest.param("x-ansi", "\u20ac5", b"greeting=\x805\r\n", id="x-ansi-is-windows-1252"),
        pytest.param("windows-1251", "\u0434\u0430", b"greeting=\xe4\xe0\r\n",
                     id="windows-1251"),
    ],
)  # fmt: skip
def test_the_output_encoding_variable_chooses_the_encoding_by_its_dotnet_name(
    tmp_path: Path, name: str, value: str, expected: bytes
) -> None:
    """The server writes with what .NET's ``Encoding.GetEncoding(name)`` returns: the UTF
    encodings with their BOM, ASCII replacing what it lacks by ``?``."""
    written, _, _ = substitute(tmp_path, TEMPLATE, {"Greeting": value, OUTPUT_ENCODING: name})
    assert written == expected


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("utf-17", id="unknown"),
        pytest.param("", id="empty"),
        pytest.param(" utf-8", id="blank-before-the-name"),
        pytest.param("utf8", id="python-name-dotnet-does-not-know"),
        pytest.param("cp1252", id="codec-alias-dotnet-does-not-know"),
    ],
)
def test_a_name_dotnet_does_not_know_keeps_each_files_own_encoding(
    tmp_path: Path, name: str
) -> None:
    """The server falls back to the file's encoding when the name is not an encoding; we
    warn, without quoting the variable's value."""
    content = codecs.BOM_UTF16_BE + "greeting=#{Greeting}\n".encode("utf-16-be")
    written, lines, _ = substitute(tmp_path, content, {"Greeting": "hi", OUTPUT_ENCODING: name})
    assert written == codecs.BOM_UTF16_BE + "greeting=hi\n".encode("utf-16-be")
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 1 and OUTPUT_ENCODING in warnings[0]
    assert name.strip() == "" or name not in warnings[0]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(b"no templates here\n", b"no templates here\n", id="bom-less-utf-8-no-bom"),
        pytest.param("caf\u00e9 #{Greeting}\n".encode(), "caf\u00e9 hi\n".encode(),
                     id="utf-8-stays-without-a-bom"),
        pytest.param(codecs.BOM_UTF16_BE + "#{Greeting}\n".encode("utf-16-be"),
                     codecs.BOM_UTF16_BE + "hi\n".encode("utf-16-be"),
                     id="utf-16-big-endian-bom-kept"),
        pytest.param(codecs.BOM_UTF32_LE + "#{Greeting}\n".encode("utf-32-le"),
                     codecs.BOM_UTF32_LE + "hi\n".encode("utf-32-le"),
                     id="utf-32-bom-kept"),
        pytest.param(b"\x81\x8d #{Greeting}\n", b"\x81\x8d hi\n",
                     id="windows-1252-undefined-bytes-kept"),
    ],
)  # fmt: skip
def test_without_the_variable_a_file_is_written_in_the_encoding_it_was_read_in(
    tmp_path: Path, content: bytes, expected: bytes
) -> None:
    written, _, _ = substitute(tmp_path, content, {"Greeting": "hi"})
    assert written == expected


@pytest.mark.parametrize(
    ("content", "variables", "expected"),
    [
        pytest.param(b"port=80\n", {OUTPUT_ENCODING: "utf-16"},
                     codecs.BOM_UTF16_LE + "port=80\n".encode("utf-16-le"),
                     id="re-encoded-without-a-template"),
        pytest.param(b"", {OUTPUT_ENCODING: "utf-8"}, codecs.BOM_UTF8,
                     id="an-empty-file-gets-the-bom"),
        pytest.param(codecs.BOM_UTF8 + b"port=\xfe80\n", {},
                     codecs.BOM_UTF8 + "port=\ufffd80\n".encode(),
                     id="a-byte-the-bom-encoding-cannot-read-becomes-u-fffd"),
    ],
)  # fmt: skip
def test_every_matched_file_is_written_back_even_when_nothing_is_replaced(
    tmp_path: Path, content: bytes, variables: dict[str, str], expected: bytes
) -> None:
    """The server overwrites each file it matched with what it read, re-encoded."""
    written, _, changed = substitute(tmp_path, content, variables)
    assert written == expected
    assert changed == {"greeting.ini"}


@pytest.mark.parametrize(
    ("content", "variables", "expected"),
    [
        pytest.param(codecs.BOM_UTF8 + TEMPLATE, {"Greeting": "a\ud800b"},
                     codecs.BOM_UTF8 + "greeting=a\ufffdb\r\n".encode(),
                     id="bom-encoding-replaces-a-lone-half"),
        pytest.param(TEMPLATE, {"Greeting": "a\udc00", OUTPUT_ENCODING: "utf-32"},
                     codecs.BOM_UTF32_LE + "greeting=a\ufffd\r\n".encode("utf-32-le"),
                     id="requested-utf-replaces-a-lone-half"),
        pytest.param(TEMPLATE, {"Greeting": "\ud83d#{Low}", "Low": "\ude00"},
                     "greeting=\U0001f600\r\n".encode(),
                     id="halves-from-two-values-make-one-character"),
    ],
)  # fmt: skip
def test_surrogate_halves_are_written_as_a_dotnet_string_holds_them(
    tmp_path: Path, content: bytes, variables: dict[str, str], expected: bytes
) -> None:
    written, _, _ = substitute(tmp_path, content, variables)
    assert written == expected


@pytest.mark.parametrize(
    "variables",
    [
        pytest.param({OUTPUT_ENCODING: "utf-7", "Greeting": "Qz7"}, id="utf-7-refused-by-dotnet"),
        pytest.param({OUTPUT_ENCODING: "iso-8859-1", "Greeting": "\u0151"},
                     id="latin-1-best-fit-not-reproduced"),
        pytest.param({OUTPUT_ENCODING: "windows-1252", "Greeting": "\u0142"},
                     id="windows-1252-best-fit-not-reproduced"),
        pytest.param({"Greeting": "\udbff"}, id="lone-half-in-bom-less-utf-8"),
    ],
)  # fmt: skip
def test_what_the_server_would_refuse_or_write_differently_is_a_substitution_failure(
    tmp_path: Path, variables: dict[str, str]
) -> None:
    """UTF-7 fails on the server too; a character a best-fit encoding lacks gets a stand-in
    from .NET's tables, which are not reproduced: refused, never written differently."""
    with pytest.raises(BuildError) as caught:
        substitute(tmp_path, TEMPLATE, variables)
    assert caught.value.code == "substitution_failed"
    assert variables["Greeting"] not in str(caught.value)
    assert (tmp_path / "greeting.ini").read_bytes() == TEMPLATE


def test_what_re_encoding_adds_to_a_file_spends_the_feature_budget(tmp_path: Path) -> None:
    """UTF-32 makes a file four times its size: that growth is bounded like any other."""
    content = b"x" * 4_000
    with pytest.raises(BuildError) as caught:
        substitute(tmp_path, content, {OUTPUT_ENCODING: "utf-32"}, budget=Budget(10_000))
    assert caught.value.code == "substitution_failed"
    assert (tmp_path / "greeting.ini").read_bytes() == content
    written, _, _ = substitute(tmp_path, content, {OUTPUT_ENCODING: "utf-32"},
                               budget=Budget(20_000))  # fmt: skip
    assert len(written) == 4 + 4 * len(content)
