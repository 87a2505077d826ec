"""Structured Configuration Variables in JSON, YAML, XML and .properties files."""

from __future__ import annotations

import json

import pytest
import yaml

from services.builder.features.structured import StructuredError, replace_structured


def replace(filename: str, text: str, **variables: str) -> tuple[str, list[str]]:
    values = {name.replace("__", ":"): value for name, value in variables.items()}
    lowered = {name.lower(): value for name, value in values.items()}
    content, replaced = replace_structured(
        filename, text.encode(), values, lambda name: lowered.get(name.lower())
    )
    return content.decode(), [r.path for r in replaced]


APPSETTINGS = """{
  "Logging": {"LogLevel": {"Default": "Information", "Microsoft": "Warning"}},
  "Port": 8080,
  "Ratio": 0.5,
  "Enabled": false,
  "Servers": [{"Url": "http://a"}, {"Url": "http://b"}],
  "Features": {"A": true},
  "Octopus": {"Kept": "x"}
}
"""


def test_json_replaces_existing_paths_case_insensitively_and_keeps_types() -> None:
    text, replaced = replace(
        "appsettings.json",
        APPSETTINGS,
        logging__loglevel__default="Warning",
        Port="9090",
        Ratio="0.75",
        Enabled="True",
        Servers__1__Url="http://c",
        Features='{"B": false}',
        Missing__Path="ignored",
        **{"Octopus.Environment.Name": "Production", "Octopus:Kept": "changed"},
    )
    document = json.loads(text)
    assert document["Logging"]["LogLevel"] == {"Default": "Warning", "Microsoft": "Warning"}
    assert document["Port"] == 9090 and document["Ratio"] == 0.75 and document["Enabled"] is True
    assert document["Servers"][1]["Url"] == "http://c"
    assert document["Features"] == {"B": False}
    assert document["Octopus"]["Kept"] == "changed"
    assert "Missing" not in document
    assert sorted(replaced) == sorted(
        ["Logging:LogLevel:Default", "Port", "Ratio", "Enabled", "Servers:1:Url", "Features",
         "Octopus:Kept"]
    )  # fmt: skip


def test_json_value_that_does_not_fit_the_type_becomes_a_string() -> None:
    text, _ = replace("a.json", '{"Port": 1, "On": true}', Port="eighty", On="maybe")
    assert json.loads(text) == {"Port": "eighty", "On": "maybe"}


def test_dots_are_not_separators() -> None:
    text, replaced = replace("a.json", '{"Logging": {"Level": "x"}}', **{"Logging.Level": "y"})
    assert replaced == [] and json.loads(text) == {"Logging": {"Level": "x"}}


YAML = """# service configuration
server:
  port: 8080        # the port
  host: 'localhost'
  debug: false
  name: web
database:
  url: "postgres://db"
  replicas:
    - one
    - two
tags: [a, b]
"""


def test_yaml_is_edited_in_place_keeping_comments_quotes_and_types() -> None:
    text, replaced = replace(
        "config.yaml",
        YAML,
        Server__Port="9090",
        server__host="db.internal",
        server__debug="true",
        server__name="needs: quoting",
        database__url="postgres://prod",
        database__replicas__1="three",
        tags='["x", "y", "z"]',
    )
    assert "# service configuration" in text and "# the port" in text
    assert "port: 9090        # the port" in text
    assert "host: 'db.internal'" in text
    assert "debug: true" in text
    assert 'name: "needs: quoting"' in text
    assert 'url: "postgres://prod"' in text
    assert "- three" in text
    loaded = yaml.safe_load(text)
    assert loaded["tags"] == ["x", "y", "z"] and loaded["server"]["port"] == 9090
    assert len(replaced) == 7


XML = """<?xml version="1.0" encoding="utf-8"?>
<configuration xmlns:x="urn:extra">
  <environment>dev</environment>
  <email role="admin" address="old@example.com"/>
  <x:flag>off</x:flag>
  <parent><child>1</child></parent>
</configuration>
"""


def test_xml_by_xpath() -> None:
    text, replaced = replace(
        "settings.xml",
        XML,
        **{
            "//environment": "production",
            "/configuration/email[@role='admin']/@address": "ops@example.com",
            "//x:flag": "on & off",
            "/configuration/parent": "<child>2</child><child>3</child>",
            "not an xpath": "ignored",
        },
    )
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    assert "<environment>production</environment>" in text
    assert 'address="ops@example.com"' in text
    assert "<x:flag>on &amp; off</x:flag>" in text
    assert "<parent><child>2</child><child>3</child></parent>" in text
    assert len(replaced) == 4


PROPERTIES = """# comment stays
db.url=jdbc:old
db.user = admin
path : C:\\\\old
multi = first \\
  second
flag
Octopus.Skip=1
"""


def test_properties_by_exact_key() -> None:
    text, replaced = replace(
        "app.properties",
        PROPERTIES,
        **{"db.url": "jdbc:new", "DB.USER": "nope", "path": "C:\\new", "multi": "one",
           "flag": "yes", "Octopus.Skip": "2"},
    )  # fmt: skip
    assert "# comment stays" in text
    assert "db.url=jdbc:new" in text
    assert "db.user = admin" in text  # keys are exact
    assert "path : C:\\\\new" in text
    assert "multi = one\nflag" in text
    assert "flag:yes" in text
    assert "Octopus.Skip=1" in text
    assert sorted(replaced) == ["db.url", "flag", "multi", "path"]


def test_unknown_extension_tries_each_format() -> None:
    text, replaced = replace("settings.conf", "a:\n  b: 1\n", a__b="2")
    assert text == "a:\n  b: 2\n" and replaced == ["a:b"]


def test_a_file_in_no_format_is_an_error() -> None:
    with pytest.raises(StructuredError):
        replace("broken.json.xml", "<unclosed", x="y")
    with pytest.raises(StructuredError):
        replace_structured("bin.yaml", b"\xff\xfe\x00", [], lambda name: None)


def test_nested_yaml_aliases_are_walked_once() -> None:
    """A small file of aliases to aliases (a "billion laughs") is read in linear time."""
    import time

    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"a{n}: &a{n} [*a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}, *a{n - 1}]" for n in range(1, 12)
    ]
    started = time.monotonic()
    text, replaced = replace("bomb.yaml", "\n".join(lines) + "\nkey: value\n", key="new")
    assert time.monotonic() - started < 2
    assert replaced == ["key"] and text.endswith("key: new\n")
