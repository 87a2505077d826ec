"""Structured Configuration Variables write the bytes the deployment server writes: JSON,
YAML, XML and .properties, in the file's own encoding."""

from __future__ import annotations

import codecs
import time
from collections.abc import Mapping
from typing import Any

import pytest

from services.builder.features.structured import (
    Replacement,
    StructuredError,
    StructuredGrowthError,
    replace_structured,
)
from services.builder.features.structured.json_format import dotnet_double


def replace(
    filename: str, content: str | bytes, variables: Mapping[str, str | None]
) -> tuple[str, list[str]]:
    """The file after replacement, decoded (UTF-8 unless it has a BOM), and the paths
    replaced; variables are looked up case-insensitively, as the server does."""
    data, replaced = replace_bytes(filename, content, variables)
    return data.decode("utf-8-sig"), [r.path for r in replaced]


def replace_bytes(
    filename: str, content: str | bytes, variables: Mapping[str, str | None]
) -> tuple[bytes, list[Replacement]]:
    lowered = {name.lower(): value for name, value in variables.items()}
    raw = content.encode() if isinstance(content, str) else content
    return replace_structured(filename, raw, list(variables), lambda n: lowered.get(n.lower()))


# --- JSON ----------------------------------------------------------------------------------

SHOP = """{
\t"Greeting": "hi",
\t"Shop": {"Port": 8080, "Ratio": 0.25, "Open": false, "Owner": null,
\t         "Tills": [{"Name": "front"}, {"Name": "back"}], "Tags": ["a", "b"]},
\t"Octopus": {"Kept": "x"},
\t"Nested:Key": "colon"
}
"""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        pytest.param({}, '{\n  "Greeting": "hi",\n  "Shop": {\n    "Port": 8080,\n'
         '    "Ratio": 0.25,\n    "Open": false,\n    "Owner": null,\n    "Tills": [\n'
         '      {\n        "Name": "front"\n      },\n      {\n        "Name": "back"\n'
         '      }\n    ],\n    "Tags": [\n      "a",\n      "b"\n    ]\n  },\n'
         '  "Octopus": {\n    "Kept": "x"\n  },\n  "Nested:Key": "colon"\n}',
         id="nothing-matches-still-reindented-by-two-without-final-newline"),
    ],
)  # fmt: skip
def test_json_is_written_in_the_servers_layout(variables: dict[str, str], expected: str) -> None:
    assert replace("shop.json", SHOP, variables)[0] == expected


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        pytest.param("greeting", "hello", '"Greeting": "hello"', id="case-insensitive-path"),
        pytest.param("Shop:Port", "9090", '"Port": 9090', id="integer-stays-a-number"),
        pytest.param("Shop:Port", " +12 ", '"Port": 12', id="integer-as-dotnet-parses-it"),
        pytest.param("Shop:Port", "12.0", '"Port": 12.0', id="double-into-integer-slot"),
        pytest.param("Shop:Port", "1,000.5", '"Port": 1000.5', id="thousands-separator"),
        pytest.param("Shop:Ratio", "7", '"Ratio": 7', id="integer-into-double-slot"),
        pytest.param("Shop:Ratio", "321e-5", '"Ratio": 0.00321', id="exponent"),
        pytest.param("Shop:Ratio", "many", '"Ratio": "many"', id="not-a-number-is-a-string"),
        pytest.param("Shop:Open", "TRUE", '"Open": true', id="boolean-any-case"),
        pytest.param("Shop:Open", "yes", '"Open": "yes"', id="not-a-boolean-is-a-string"),
        pytest.param("Shop:Owner", "7", '"Owner": "7"', id="null-slot-takes-a-string"),
        pytest.param("Shop:Owner", None, '"Owner": null', id="no-value-writes-null"),
        pytest.param("Greeting", None, '"Greeting": null', id="string-to-null"),
        pytest.param("Shop:Tills:1:Name", "side", '"Name": "side"', id="array-element-field"),
        pytest.param("Shop:Tags:0", "z", '"z",\n      "b"', id="array-element"),
        pytest.param("Shop:Tags", '{"k": [1]}', '"Tags": {\n      "k": [\n        1\n      ]',
                     id="array-becomes-object"),
        pytest.param("Shop:Tills", '"none"', '"Tills": "none",', id="array-becomes-string"),
        pytest.param("Shop:Tills", "{<<", '"Name": "front"', id="unparsable-structure-kept"),
        pytest.param("Octopus:Kept", "y", '"Kept": "y"', id="octopus-colon-path-applies"),
        pytest.param("Nested:Key", "c2", '"Nested:Key": "c2"', id="colon-inside-a-key"),
        pytest.param("Greeting", 'say "\t\x01\u2028', r'"say \"\t\u0001\u2028"',
                     id="string-escapes"),
    ],
)  # fmt: skip
def test_json_values_keep_their_type_when_they_can(
    name: str, value: str | None, fragment: str
) -> None:
    text, replaced = replace("shop.json", SHOP, {name: value})
    assert fragment in text
    assert replaced == [name]


@pytest.mark.parametrize(
    "name", ["OctopusRocks", "Octopus.Kept", "octopus", "Shop.Port", "Missing:Path"]
)
def test_json_skips_octopus_names_and_paths_that_do_not_exist(name: str) -> None:
    text, replaced = replace("shop.json", SHOP, {name: "changed"})
    assert replaced == [] and "changed" not in text


@pytest.mark.parametrize(
    "variables",
    [{"A": '{"C": 1}', "A:B": "5"}, {"A:B": "5", "A": '{"C": 1}'}],
    ids=["parent-first", "child-first"],
)
def test_json_a_replaced_structure_takes_nothing_from_below_it(
    variables: dict[str, str],
) -> None:
    text, _ = replace("a.json", '{"A": {"B": 1}}', variables)
    assert text == '{\r\n  "A": {\r\n    "C": 1\r\n  }\r\n}'


def test_json_root_array_and_scalar_documents() -> None:
    assert replace("a.json", '[{"Name": "x"}]\n', {"0:Name": "y"})[0] == (
        '[\n  {\n    "Name": "y"\n  }\n]'
    )
    assert replace("a.json", "42", {})[0] == "42"
    assert replace("a.json", "", {})[0] == "{}"  # an empty file is an empty object


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param('{\n  // note\n  "A": 1, /* and */ "B": 2\n}', '{\n  "A": 1,\n  "B": 2\n}',
                     id="comments-inside-are-dropped"),
        pytest.param('{"A": [1, 2,],}', '{\r\n  "A": [\r\n    1,\r\n    2\r\n  ]\r\n}',
                     id="trailing-commas"),
        pytest.param("{'A': 'x'}", '{\r\n  "A": "x"\r\n}', id="single-quotes"),
        pytest.param("{Port_1$: 2}", '{\r\n  "Port_1$": 2\r\n}', id="unquoted-name"),
        pytest.param('{"A": 0x1F, "B": 017, "C": -017}',
                     '{\r\n  "A": 31,\r\n  "B": 15,\r\n  "C": -17\r\n}',
                     id="hex-and-octal-integers"),
        pytest.param("[NaN, -Infinity, undefined]",
                     '[\r\n  "NaN",\r\n  "-Infinity",\r\n  undefined\r\n]',
                     id="javascript-literals"),
        pytest.param("[1,,2]", "[\r\n  1,\r\n  undefined,\r\n  2\r\n]", id="empty-element"),
        pytest.param('{"A": .5, "B": 5., "C": 1e400}',
                     '{\r\n  "A": 0.5,\r\n  "B": 5.0,\r\n  "C": "Infinity"\r\n}',
                     id="loose-doubles"),
        pytest.param('{"A": 123456789012345678901234567890}',
                     '{\r\n  "A": 123456789012345678901234567890\r\n}', id="big-integer"),
        pytest.param('{"A":\u00a0"\u0001raw"}', '{\r\n  "A": "\\u0001raw"\r\n}',
                     id="unicode-space-and-raw-control-character"),
        pytest.param('// only this survives\n{"A": 1}', "/* only this survives*/",
                     id="a-leading-comment-is-the-whole-document"),
    ],
)  # fmt: skip
def test_json_is_read_as_leniently_as_the_server_reads_it(source: str, expected: str) -> None:
    assert replace("a.json", source, {})[0] == expected


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", id="utc"),
        pytest.param("2024-05-01T10:00:00.1200000", "2024-05-01T10:00:00.12",
                     id="fraction-trimmed-no-zone"),
        pytest.param("2024-05-01T10:00:00+02:00", "2024-05-01T08:00:00+00:00",
                     id="offset-converted-to-local-time-utc"),
        pytest.param("2024-05-01T24:00:00", "2024-05-02T00:00:00", id="hour-24"),
        pytest.param("/Date(1714557600000)/", "2024-05-01T10:00:00Z", id="microsoft-date"),
        pytest.param("/Date(0+0100)/", "1970-01-01T00:00:00+00:00", id="microsoft-local-date"),
        pytest.param("2024-05-01", "2024-05-01", id="date-alone-stays-a-string"),
        pytest.param("2024-02-30T10:00:00", "2024-02-30T10:00:00", id="no-such-day"),
        pytest.param("2024-05-01T10:00:00 ", "2024-05-01T10:00:00 ", id="trailing-space"),
    ],
)  # fmt: skip
def test_json_date_strings_are_rewritten_as_the_servers_library_writes_dates(
    value: str, written: str
) -> None:
    assert replace("a.json", f'{{"When": "{value}"}}', {})[0] == (
        f'{{\r\n  "When": "{written}"\r\n}}'
    )


def test_json_a_replaced_date_becomes_the_string_given() -> None:
    text, _ = replace("a.json", '{"When": "2024-05-01T10:00:00Z"}', {"When": "soon"})
    assert text == '{\r\n  "When": "soon"\r\n}'


@pytest.mark.parametrize(
    "source",
    ['{"A": 1} 2', "{A B: 1}", '{"A" /* c */: 1}', '{"A": tru}', "[0x]", "[089]", "{'A': '\\q'}",
     "/* open", "[" * 65 + "]" * 65, "   "],
    ids=["two-values", "space-in-name", "comment-before-colon", "bad-literal", "bare-hex-prefix",
         "bad-octal", "bad-escape", "unterminated-comment", "too-deep", "blank"],
)  # fmt: skip
def test_json_that_the_server_cannot_read_is_refused(source: str) -> None:
    with pytest.raises(StructuredError):
        replace("a.json", source, {})


@pytest.mark.parametrize(
    ("number", "text"),
    [(1e15, "1E+15"), (1e14, "100000000000000.0"), (0.0001, "0.0001"), (0.00001, "1E-05"),
     (-2.5, "-2.5"), (3.0, "3.0"), (1.2345678901234568e17, "1.2345678901234568E+17"),
     (float("nan"), '"NaN"'), (-0.0, "-0.0")],
)  # fmt: skip
def test_doubles_are_written_as_the_server_writes_them(number: float, text: str) -> None:
    assert dotnet_double(number) == text


# --- encodings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "source", "variables", "expected"),
    [
        pytest.param("e.json", codecs.BOM_UTF8 + '{"e": "\u20ac"}'.encode(), {},
                     codecs.BOM_UTF8 + '{\r\n  "e": "\u20ac"\r\n}'.encode(), id="json-utf8-bom"),
        pytest.param("e.json", codecs.BOM_UTF16_LE + '{"e": "\u20ac"}\n'.encode("utf-16-le"), {},
                     codecs.BOM_UTF16_LE + '{\n  "e": "\u20ac"\n}'.encode("utf-16-le"),
                     id="json-utf16-bom"),
        pytest.param("e.json", '{"e": "\u20ac\u2020"}\r\n'.encode("cp1252"), {},
                     '{\r\n  "e": "\u20ac\u2020"\r\n}'.encode("cp1252"), id="json-windows-1252"),
        pytest.param("e.json", '{"e": "\u20ac"}\r\n'.encode("cp1252"), {"e": "\u20a9"},
                     '{\r\n  "e": "\u20a9"\r\n}'.encode(), id="json-upgraded-to-utf8"),
        pytest.param("e.properties", "k=\u00e9\r\n".encode("cp1252"), {}, "k=\u00e9\r\n".encode(
                     "cp1252"), id="properties-windows-1252"),
        pytest.param("e.properties", codecs.BOM_UTF16_LE + "k=v\r\n".encode("utf-16-le"),
                     {"k": "w"}, codecs.BOM_UTF16_LE + "k=w\r\n".encode("utf-16-le"),
                     id="properties-utf16-bom"),
        pytest.param("e.yaml", codecs.BOM_UTF8 + "k: \u2020\n".encode(), {},
                     codecs.BOM_UTF8 + "k: \u2020\n".encode(), id="yaml-utf8-bom"),
        pytest.param("e.yaml", "k: \u2020\n".encode("cp1252"), {"k": "\uffe6"},
                     "k: \uffe6\n".encode(), id="yaml-upgraded-to-utf8"),
        pytest.param("e.xml", "<a>\r\n  <b>\u00e9</b>\r\n</a>".encode("cp1252"), {},
                     "<a>\r\n  <b>\u00e9</b>\r\n</a>".encode("cp1252"), id="xml-windows-1252"),
    ],
)  # fmt: skip
def test_files_are_written_back_in_their_encoding(
    filename: str, source: bytes, variables: dict[str, str], expected: bytes
) -> None:
    assert replace_bytes(filename, source, variables)[0] == expected


def test_xml_declaration_names_the_encoding_written() -> None:
    source = '<?xml version="1.0" encoding="ISO-8859-2"?>\n<r><n>\u0142</n></r>'
    kept, _ = replace_bytes("n.xml", source.encode("iso-8859-2"), {})
    assert kept == '<?xml version="1.0" encoding="iso-8859-2"?>\n<r>\n  <n>\u0142</n>\n</r>'.encode(
        "iso-8859-2"
    )
    upgraded, _ = replace_bytes("n.xml", source.encode("iso-8859-2"), {"/r/n": "\u5f20"})
    assert upgraded == '<?xml version="1.0" encoding="utf-8"?>\n<r>\n  <n>\u5f20</n>\n</r>'.encode()


# --- YAML ----------------------------------------------------------------------------------

SERVICE = """app:
  listen:
  - "7000"
  cache:
    enabled: "yes"
    store:
      path: /var/cache
  banner: welcome
  workers:
  - name: alpha
  - name: beta
    mode: 'fast'
stage: dev
"""


@pytest.mark.parametrize(
    ("variables", "expected_lines"),
    [
        pytest.param({"app:listen:0": "8000"}, ['  - "8000"'], id="double-quoted-stays-quoted"),
        pytest.param({"app:banner": ""}, ["  banner: ''"], id="empty-plain-becomes-single-quoted"),
        pytest.param({"app:workers:1:mode": "slow"}, ["    mode: 'slow'"], id="single-quoted"),
        pytest.param({"APP:Cache:Enabled": "no"}, ['    enabled: "no"'], id="case-insensitive"),
        pytest.param({"app:cache": "off"}, ["  cache: off", "  banner: welcome"],
                     id="mapping-replaced-by-a-scalar-is-valid-yaml"),
        pytest.param({"app:listen": "none"}, ["  listen: none", "  cache:"],
                     id="sequence-replaced-by-a-scalar"),
        pytest.param({"app": "gone"}, ["app: gone", "stage: dev"], id="root-key-mapping"),
        pytest.param({"app:cache:store": "x", "app:cache": "y"}, ["  cache: y"],
                     id="outer-replacement-wins-over-inner"),
        pytest.param({"app:banner": "a: b"}, ["  banner: 'a: b'"], id="needs-quotes"),
        pytest.param({"app:banner": "it's: x"}, ['  banner: "it\'s: x"'],
                     id="quote-inside-goes-double"),
        pytest.param({"app:banner": "line1\nline2"}, ["  banner: 'line1", "", "    line2'"],
                     id="multiline-plain-single-quoted-and-folded"),
        pytest.param({"app:banner": "sun \U0001f31e"}, ['  banner: "sun \\U0001F31E"'],
                     id="beyond-bmp-escaped"),
        pytest.param({"app:banner": None}, ["  banner: null"], id="no-value-is-null"),
        pytest.param({"app:workers": "- name: gamma\n  mode: x"},
                     ["  workers:", "  - name: gamma", "    mode: x", "stage: dev"],
                     id="sequence-from-yaml"),
        pytest.param({"app:cache": "[1, 2]"}, ["  cache: [1, 2]"], id="flow-value-stays-flow"),
        pytest.param({"app:cache": ""}, ['  cache: ""'], id="blank-structure-is-empty-string"),
        pytest.param({"app:cache": "a: [b"}, ['  cache: "a: [b"'],
                     id="unparsable-structure-is-a-string"),
        pytest.param({"OctopusStage": "x", "Octopus.Stage": "x", "stage": "prod"},
                     ["stage: prod"], id="octopus-names-skipped"),
    ],
)  # fmt: skip
def test_yaml_replacements(variables: dict[str, str | None], expected_lines: list[str]) -> None:
    text, _ = replace("service.yaml", SERVICE, variables)
    lines = text.split("\n")
    for expected in expected_lines:
        assert expected in lines, text
    assert text.endswith("\n") and "\r" not in text


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("a: 1\nb: 2\n", "a: 9\nb: 2\n", id="unix-stays-unix"),
        pytest.param("a: 1\r\nb: 2\r\n", "a: 9\r\nb: 2\r\n", id="dos-stays-dos"),
        pytest.param("a: 1\r\nb: 2\nc: 3\n", "a: 9\nb: 2\nc: 3\n", id="most-common-wins"),
        pytest.param("a: 1", "a: 9\r\n", id="none-is-dos"),
    ],
)
def test_yaml_keeps_the_files_most_common_line_ending(source: str, expected: str) -> None:
    """Like JSON and XML, YAML is written with the file's most common line ending, CRLF when
    it has none."""
    assert replace("l.yaml", source, {"a": "9"})[0] == expected


def test_yaml_keeps_comments_where_the_server_keeps_them() -> None:
    """Block comments stay on their lines, inline comments follow their line after one
    space, and a sequence after an inline comment is indented, as the server writes it."""
    source = (
        "# header\nsizes: # inline on a key\n- small\n  # between items\n- large\n"
        "limits:\n  # before a key\n  cpu: 2   # inline after a value\n"
    )
    text, _ = replace("c.yml", source, {"limits:cpu": "4"})
    assert text == (
        "# header\nsizes: # inline on a key\n  - small\n  # between items\n"
        "  - large\nlimits:\n  # before a key\n  cpu: 4 # inline after a value\n"
    )


def test_yaml_after_a_comment_an_item_is_written_as_it_was() -> None:
    """The server hands out a comment just before the next node, and writes that node as
    it was: an item right after a comment is not replaced."""
    text, replaced = replace("c.yaml", "l:\n- a\n# note\n- b\n", {"l:1": "z", "l:0": "y"})
    assert text == "l:\n- y\n# note\n- b\n" and replaced == ["l:0"]


def test_yaml_keeps_tags_anchors_styles_and_documents() -> None:
    source = (
        "%TAG !e! tag:example.com,2000:\n---\nflag: !!bool true\nword: !<tag:yaml.org,2002:str> x\n"
        "base: &b {k: 1}\nref: *b\nfolded: >\n  one\n  two\nlit: |2\n   indented\n"
        "e: !e!thing v\n...\n---\nflag: false\n"
    )
    text, replaced = replace("t.yaml", source, {"flag": "off"})
    assert text.split("\n") == [
        "%TAG !e! tag:example.com,2000:", "%TAG ! !", "%TAG !! tag:yaml.org,2002:", "---",
        "flag: !!bool off", "word: !!str x", "base: &b {k: 1}", "ref: *b", "folded: >",
        "  one two", "lit: |2", "   indented", "e: !e!thing v", "...", "---",
        "flag: off", "",
    ]  # fmt: skip
    assert replaced == ["flag", "flag"]


def test_yaml_indents_by_the_files_most_common_step() -> None:
    source = "a:\n    b:\n        c: 1\n    d:\n        e: 2\n"
    text, _ = replace("i.yaml", source, {"a:d:e": "3"})
    assert text == "a:\n    b:\n        c: 1\n    d:\n        e: 3\n"


def test_yaml_top_level_sequence_and_types_by_position() -> None:
    source = "- one\n- 'two'\n- 3\n- null\n"
    text, _ = replace("s.yaml", source, {"0": "true", "1": "~", "2": "x", "3": ""})
    assert text == "- true\n- '~'\n- x\n- ''\n"


def test_yaml_patch_comment_applies_a_variable_of_yaml_to_its_document() -> None:
    source = "# patch: Shop.Overrides\nshop:\n  open: 9\n  close: 17\n---\nshop:\n  open: 8\n"
    patch = "shop:\n  close: 20\n"
    text, _ = replace("p.yaml", source, {"Shop.Overrides": patch})
    assert text == (
        "# patch: Shop.Overrides\nshop:\n  open: 9\n  close: 20\n---\nshop:\n  open: 8\n"
    )


def test_nested_yaml_aliases_are_read_once() -> None:
    """A small file of aliases to aliases (a "billion laughs") is read in linear time."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]" for n in range(1, 12)
    ]
    started = time.monotonic()
    text, replaced = replace("bomb.yaml", "\n".join(lines) + "\nkey: value\n", {"key": "new"})
    assert time.monotonic() - started < 2
    assert replaced == ["key"] and text.endswith("key: new\n")


@pytest.mark.parametrize(
    ("source", "variables", "expected"),
    [
        pytest.param("base: &app.v1 {port: 1}\nuse: *app.v1\n", {"base:port": "2"},
                     "base: &app.v1 {port: 2}\nuse: *app.v1\n", id="dots-in-an-anchor"),
        pytest.param("- &\u00e9t\u00e9 x\n- *\u00e9t\u00e9\n", {"0": "y"},
                     "- &\u00e9t\u00e9 y\n- *\u00e9t\u00e9\n", id="non-ascii-anchor"),
        pytest.param("*a.b : v\n", {}, "*a.b: v\n", id="alias-as-a-key"),
        pytest.param("k: [1]\n", {"k": "[&x.y 1, *x.y]"}, "k: [&x.y 1, *x.y]\n",
                     id="anchor-in-a-replacement-value"),
    ],
)  # fmt: skip
def test_yaml_anchors_are_named_as_the_server_reads_them(
    source: str, variables: dict[str, str], expected: str
) -> None:
    assert replace("a.yaml", source, variables)[0] == expected


def test_yaml_anchor_holding_a_bracket_is_refused() -> None:
    with pytest.raises(StructuredError):
        replace("a.yaml", "k: &a[b] v\n", {})


def test_yaml_patch_variable_of_nested_aliases_is_refused() -> None:
    """A patch variable of aliases to aliases would expand enormously: it is refused."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]" for n in range(1, 14)]
    patch = "\n".join(lines)
    started = time.monotonic()
    with pytest.raises(StructuredError, match="too many values") as caught:
        replace("p.yaml", "# patch: Patch\nk: v\n", {"Patch": patch})
    assert time.monotonic() - started < 5 and "a0" not in str(caught.value)


def test_yaml_patch_variable_that_is_not_yaml_is_named_without_its_value() -> None:
    with pytest.raises(StructuredError, match="line 1") as caught:
        replace("p.yaml", "# patch: Patch\nk: v\n", {"Patch": "secret: [unclosed"})
    assert "secret" not in str(caught.value)


# --- XML -----------------------------------------------------------------------------------

CATALOG = """<?xml version="1.0"?>
<catalog xmlns:p="urn:parts" xmlns:q="urn:other">
    <!-- stock -->
    <item sku="a1" qty="3">anvil</item>
    <item sku="b2"><![CDATA[<bolt>]]></item>
    <p:part>gear</p:part>
    <empty/>
    <open></open>
    <box><inner>1</inner></box>
    <note>see <b>this</b> now</note>
    <?render mode="full"?>
</catalog>
"""


@pytest.mark.parametrize(
    ("variables", "expected_lines"),
    [
        pytest.param({}, ['<?xml version="1.0" encoding="utf-8"?>', "  <!-- stock -->",
                          '  <item sku="a1" qty="3">anvil</item>', "  <empty />",
                          "  <open></open>", "  <box>", "    <inner>1</inner>", "  </box>",
                          "  <note>see <b>this</b> now</note>", '  <?render mode="full"?>',
                          "</catalog>"], id="reindented-by-two"),
        pytest.param({"//item[@sku='a1']": "<hammer & tongs>"},
                     ['  <item sku="a1" qty="3">&lt;hammer &amp; tongs&gt;</item>'],
                     id="text-only-element-takes-escaped-text"),
        pytest.param({"//item[@sku='b2']": "nut"}, ['  <item sku="b2"><![CDATA[nut]]></item>'],
                     id="cdata-kept"),
        pytest.param({"/catalog/item/@qty": 'a"b'},
                     ['  <item sku="a1" qty="a&quot;b">anvil</item>'], id="attribute"),
        pytest.param({"//p:part": "cog"}, ["  <p:part>cog</p:part>"], id="prefix-from-document"),
        pytest.param({"//*:part": "cog"}, ["  <p:part>cog</p:part>"], id="xpath2-wildcard"),
        pytest.param({"/catalog/box": "<x/><y>2</y>"}, ["  <box>", "    <x />", "    <y>2</y>",
                                                        "  </box>"], id="children-from-fragment"),
        pytest.param({"/catalog/box": "<broken"}, ["    <inner>1</inner>"],
                     id="bad-fragment-leaves-children"),
        pytest.param({"/catalog/empty": "full"}, ["  <empty>full</empty>"], id="self-closing"),
        pytest.param({"/catalog/open": ""}, ["  <open></open>"], id="emptied"),
        pytest.param({"/catalog/comment()": "restocked"}, ["  <!--restocked-->"], id="comment"),
        pytest.param({"//processing-instruction('render')": "mode=lite"},
                     ["  <?render mode=lite?>"], id="processing-instruction"),
        pytest.param({"/catalog/note/text()[1]": "read "},
                     ["  <note>read <b>this</b> now</note>"], id="text-node"),
        pytest.param({"Octopus.Catalog": "x", "item": "x"}, ["    <inner>1</inner>"],
                     id="names-without-slash-or-colon-skipped"),
    ],
)  # fmt: skip
def test_xml_replacements(variables: dict[str, str], expected_lines: list[str]) -> None:
    text, _ = replace("catalog.xml", CATALOG, variables)
    lines = text.split("\n")
    for expected in expected_lines:
        assert expected in lines, text
    assert not text.endswith("\n")


def test_xml_every_selected_node_is_replaced() -> None:
    text, replaced = replace("c.xml", CATALOG, {"//item/@sku": "z"})
    assert text.count('sku="z"') == 2 and replaced == ["//item/@sku", "//item/@sku"]


def test_xml_without_line_breaks_is_written_with_crlf() -> None:
    assert replace("s.xml", "<a><b>1</b></a>", {})[0] == "<a>\r\n  <b>1</b>\r\n</a>"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param('<!DOCTYPE d [\n<!ENTITY who "all">\n]>\n<d a="&who;">hi &who;</d>',
                     '<!DOCTYPE d [\n<!ENTITY who "all">\n]>\n<d a="&who;">hi &who;</d>',
                     id="internal-subset-and-entity-references-kept"),
        pytest.param('<!DOCTYPE d SYSTEM "d.dtd">\n<d/>', '<!DOCTYPE d SYSTEM "d.dtd"[]>\n<d />',
                     id="doctype-gets-an-empty-subset"),
        pytest.param("<!DOCTYPE d>\n<d/>", "<!DOCTYPE d []>\n<d />", id="bare-doctype"),
        pytest.param("<d>\n  <a>x <![CDATA[<y>]]> z</a>\n</d>",
                     "<d>\n  <a>x <![CDATA[<y>]]> z</a>\n</d>", id="cdata-beside-text-kept"),
        pytest.param("<d>\n  <a> <![CDATA[ ]]> </a>\n</d>", "<d>\n  <a><![CDATA[ ]]></a>\n</d>",
                     id="blank-cdata-is-not-white-space"),
        pytest.param('<d a="1\n2\t3 &amp; &#65;"/>', '<d a="1&#xA;2&#x9;3 &amp; A" />',
                     id="attribute-read-without-normalising-white-space"),
        pytest.param("<d><!-- one\r\ntwo --></d>\n\n", "<d>\n  <!-- one\ntwo -->\n</d>",
                     id="comment-line-breaks-are-the-files"),
    ],
)  # fmt: skip
def test_xml_keeps_what_the_servers_reader_keeps(source: str, expected: str) -> None:
    assert replace("d.xml", source, {})[0] == expected


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        pytest.param("/d/a", "x]]>y", "<![CDATA[x]]]]><![CDATA[>y]]></a>",
                     id="cdata-end-in-a-value-is-split"),
        pytest.param("/d/comment()", "a--b-", "<!--a- -b- -->", id="dashes-in-a-comment-spaced"),
        pytest.param("/d/processing-instruction('p')", "x?>y", "<?p x? >y?>",
                     id="pi-end-in-a-value-spaced"),
        pytest.param("//a[ends-with(@k, 'ha')]", "v", "[v]", id="ends-with"),
        pytest.param("//a[upper-case(@k) eq 'ALPHA']", "v", "[v]", id="upper-case-and-eq"),
        pytest.param("//a[matches(@k, '^al')]", "v", "[v]", id="matches"),
        pytest.param("//a[@k ne 'beta']", "v", "[v]", id="ne"),
    ],
)  # fmt: skip
def test_xml_values_and_xpath2_selectors(name: str, value: str, expected: str) -> None:
    source = "<d><a k='alpha'><![CDATA[old]]></a><!--c--><?p old?></d>"
    assert expected in replace("d.xml", source, {name: value})[0]


@pytest.mark.parametrize(
    "name",
    ["//a[matches(@k, '(a+)+$')]", "//a[matches(@k, '[')]", "if (1) then 2 else 3"],
    ids=["quantified-group-refused", "bad-pattern", "unsupported-xpath2"],
)
def test_xml_selectors_that_cannot_run_select_nothing(name: str) -> None:
    text, replaced = replace("d.xml", "<d><a k='alpha'>1</a></d>", {name: "v"})
    assert replaced == [] and ">1<" in text


def test_xml_refuses_a_value_xml_cannot_hold() -> None:
    with pytest.raises(StructuredError, match="cannot hold") as caught:
        replace("d.xml", "<d><a>1</a></d>", {"/d/a": "bell\x07"})
    assert "bell" not in str(caught.value)


# --- .properties ---------------------------------------------------------------------------

SETTINGS = """# shop settings
! old style comment
till.name=front
till.motd = hello
spl\\
   it.key one
bare.key:
lonely
  indented: yes
\\u00e9t\\u00e9=summer
Octopus.Shop=1
"""


@pytest.mark.parametrize(
    ("name", "value", "expected_line"),
    [
        pytest.param("till.name", "back", "till.name=back", id="simple"),
        pytest.param("TILL.NAME", "back", "till.name=back", id="key-case-insensitive"),
        pytest.param("till.motd", "good\tday", "till.motd = good\\tday", id="tab-escaped"),
        pytest.param("till.motd", "a\r\nb", "till.motd = a\\r\\nb", id="newlines-escaped"),
        pytest.param("till.motd", "C:\\x", "till.motd = C:\\\\x", id="backslash-doubled"),
        pytest.param("till.motd", "  two", "till.motd = \\  two", id="leading-space-escaped"),
        pytest.param("till.motd", "\u0398\u00e9\u00ff", "till.motd = \\u0398\u00e9\\u00ff",
                     id="beyond-latin1-escaped"),
        pytest.param("till.motd", "\U0001f600", "till.motd = \\ud83d\\ude00",
                     id="surrogate-pairs"),
        pytest.param("split.key", "two", "   it.key two", id="key-across-a-continuation"),
        pytest.param("bare.key", "v", "bare.key:v", id="separator-without-value"),
        pytest.param("lonely", "v", "lonely:v", id="key-alone-gets-a-colon"),
        pytest.param("indented", "no", "  indented: no", id="indented-key"),
        pytest.param("\u00e9t\u00e9", "winter", "\\u00e9t\\u00e9=winter", id="escaped-key"),
    ],
)  # fmt: skip
def test_properties_replacements(name: str, value: str, expected_line: str) -> None:
    text, replaced = replace("shop.properties", SETTINGS, {name: value})
    assert expected_line in text.split("\n")
    assert text.startswith("# shop settings\n! old style comment\n")
    assert len(replaced) == 1


def test_properties_skip_octopus_names_and_unknown_keys() -> None:
    text, replaced = replace("s.properties", SETTINGS, {"Octopus.Shop": "2", "nope": "x"})
    assert text == SETTINGS and replaced == []


# --- format selection and limits -----------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "content", "variables", "expected"),
    [
        pytest.param("x.properties", '{"a": 1}', {"a": "2"}, '{\r\n  "a": 2\r\n}',
                     id="json-first-whatever-the-extension"),
        pytest.param("x.conf", "<a><b>1</b></a>", {"/a/b": "2"}, "<a>\r\n  <b>2</b>\r\n</a>",
                     id="unknown-extension-xml-before-yaml"),
        pytest.param("x.conf", "k=v\nother=w\n", {"k": "z"}, "k=v other=w\n",
                     id="unknown-extension-yaml-before-properties"),
        pytest.param("x.conf", "a: [1\n", {}, "a: [1\n",
                     id="unknown-extension-falls-to-properties"),
        pytest.param("x.yml", "a: 1\n", {"a": "2"}, "a: 2\n", id="yml"),
    ],
)  # fmt: skip
def test_formats_are_tried_in_the_servers_order(
    filename: str, content: str, variables: dict[str, str], expected: str
) -> None:
    assert replace(filename, content, variables)[0] == expected


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        ("x.conf", '{"a": 1}', b'{\r\n  "a": 2\r\n}'),
        ("x.yaml", "a: 1\n", None),
        ("x.xml", "<a/>", None),
    ],
    ids=["json-content-whatever-the-name", "yaml-file-is-refused", "xml-file-is-refused"],
)
def test_the_fallback_flag_reads_every_file_as_json_only(
    filename: str, content: str, expected: bytes | None
) -> None:
    def attempt() -> bytes:
        return replace_structured(filename, content.encode(), ["a"], lambda n: "2", json_only=True)[
            0
        ]

    if expected is None:
        with pytest.raises(StructuredError, match="as json"):
            attempt()
    else:
        assert attempt() == expected


@pytest.mark.parametrize(
    ("filename", "content"),
    [("bad.json", "a: 1"), ("bad.xml", "<unclosed"), ("bad.yaml", "a: [1"),
     ("bad.properties", "=no key")],
)  # fmt: skip
def test_a_file_not_in_its_formats_is_an_error(filename: str, content: str) -> None:
    with pytest.raises(StructuredError, match="could not be parsed"):
        replace(filename, content, {})


def test_values_written_many_times_are_refused_past_the_allowance() -> None:
    document = "[" + ", ".join('{"k": ""}' for _ in range(1000)) + "]"
    names = [f"{n}:k" for n in range(1000)]
    with pytest.raises(StructuredGrowthError):
        replace_structured("a.json", document.encode(), names, lambda n: "v" * 1000,
                           max_growth=100_000)  # fmt: skip
    xml = "<r>" + "<e/>" * 1000 + "</r>"
    with pytest.raises(StructuredGrowthError):
        replace_structured("a.xml", xml.encode(), ["//e"], lambda n: "v" * 1000,
                           max_growth=100_000)  # fmt: skip


# --- Bounds on hostile files ---------------------------------------------------------------


def test_yaml_flow_collections_nested_past_the_limit_are_refused() -> None:
    """PyYAML's scanner looks at every open flow level for each token: a file of ``[`` costs
    the square of its size. Past ``MAX_YAML_FLOW_DEPTH`` levels the file is refused."""
    from services.builder.features.structured.common import MAX_YAML_FLOW_DEPTH

    deep = "k: " + "[" * MAX_YAML_FLOW_DEPTH + "1" + "]" * MAX_YAML_FLOW_DEPTH + "\n"
    assert replace("a.yaml", deep, {})[0] == deep
    with pytest.raises(StructuredError, match=f"nested more than {MAX_YAML_FLOW_DEPTH} deep"):
        replace("a.yaml", "[" * 12_000, {})
    with pytest.raises(StructuredError, match="a patch variable is not YAML"):
        replace("p.yaml", "# patch: Patch\nk: v\n", {"Patch": "a: " + "[" * 12_000})


def test_a_file_over_the_size_limit_is_refused() -> None:
    with pytest.raises(StructuredError, match="larger than 10 bytes"):
        replace_structured("a.json", b'{"k": "vvvv"}', ["k"], lambda n: "x", max_size=10)
    with pytest.raises(StructuredError, match="larger than 1048576 bytes"):
        replace("a.json", '{"k": "' + "v" * 1024 * 1024 + '"}', {"k": "x"})


@pytest.mark.parametrize("kind", ["json", "yaml"])
def test_paths_longer_than_every_name_are_not_built_or_compared(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long keys on the way down and many values beneath them: each value's full path would
    be built and folded (path length x values). A path longer than the longest name cannot
    match one, so none is folded; the file is written back all the same."""
    from services.builder.features.structured import json_format, yaml_format
    from services.builder.features.structured.common import fold

    module: Any = json_format if kind == "json" else yaml_format
    folded: list[int] = []
    original = fold

    def counting(text: str) -> str:
        folded.append(len(text))
        return original(text)

    monkeypatch.setattr(module, "fold", counting)
    if kind == "json":
        content = '{"' + "k" * 500 + '": {"' + "j" * 500 + '": [' + ", ".join(["1"] * 300) + "]}}"
    else:
        content = "k" * 500 + ":\n  " + "j" * 500 + ":\n" + "".join(["  - 1\n"] * 300)
    out, replaced = replace(f"a.{kind}", content, {"Short": "x", "z" * 500: "1"})
    assert replaced == [] and "j" * 500 in out
    assert max(folded) <= 500


def test_an_element_of_many_attributes_is_read_and_written_in_one_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """lxml's ``get`` (and ``attrib``) finds each attribute by walking the element's
    attributes: once per attribute, that is the square of their number. Neither is used
    per attribute (the elements here count what is asked of them)."""
    from lxml import etree

    asked: list[str] = []

    class Counting(etree.ElementBase):
        def get(self, key: Any, default: Any = None) -> Any:
            asked.append("get")
            return super().get(key, default)

        @property
        def attrib(self) -> Any:  # type: ignore[override]
            asked.append("attrib")
            return etree.ElementBase.attrib.__get__(self)  # type: ignore[attr-defined]

    original = etree.XMLParser

    def counting_parser(**options: Any) -> etree.XMLParser:
        parser = original(**options)
        parser.set_element_class_lookup(etree.ElementDefaultClassLookup(element=Counting))
        return parser

    monkeypatch.setattr(etree, "XMLParser", counting_parser)
    attributes = " ".join(f'a{n}="{n}"' for n in range(300))
    out, _ = replace("a.xml", f'<?xml version="1.0"?>\n<r {attributes} />', {"/r/@a7": "seven"})
    assert 'a6="6" a7="seven" a8="8"' in out and 'a299="299" />' in out
    assert len(asked) < 10


@pytest.mark.parametrize(
    ("filename", "content", "secret"),
    [("app.yaml", "db: {password: HUNTER2-PROD, : ]\n", "HUNTER2"),
     ("app.yaml", "db: !HUNTER2! x\n", "HUNTER2"),
     ("app.json", '{"db": {"password": 12deadbeef}}', "deadbeef"),
     ("app.json", '{"db": 0xDEADBEEFCAFEBABE12}', "DEADBEEF"),
     ("app.json", '{"db": "x" Z}', "'Z'"),
     ("app.xml", "<db><HUNTER2></db>", "HUNTER2"),
     ("app.xml", "<db>&HUNTER2;</db>", "HUNTER2")],
)  # fmt: skip
def test_a_parse_error_gives_the_problem_and_where_never_the_files_text(
    filename: str, content: str, secret: str
) -> None:
    """An earlier feature may have written a secret into the file (a filter's output, which
    the masker does not know): the error names the problem and its line, and quotes
    nothing of the file."""
    with pytest.raises(StructuredError, match="line 1") as caught:
        replace(filename, content, {"db:password": "x"})
    assert secret not in str(caught.value)
