""".NET configuration transforms (XDT) and configuration variables."""

from __future__ import annotations

import pytest
from lxml import etree

from services.builder.features.dotnet_config import replace_config_variables
from services.builder.features.xdt import TransformError, apply_transform

WEB_CONFIG = b"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="Environment" value="Development" />
    <add key="FeatureX" value="off" />
    <add key="Obsolete" value="1" />
  </appSettings>
  <connectionStrings>
    <add name="Db" connectionString="Server=localhost" providerName="System.Data.SqlClient" />
  </connectionStrings>
  <system.web>
    <compilation debug="true" targetFramework="4.8" />
    <customErrors mode="Off" />
  </system.web>
  <applicationSettings>
    <My.Settings>
      <setting name="Timeout" serializeAs="String"><value>30</value></setting>
      <setting name="Retries" serializeAs="String" />
    </My.Settings>
  </applicationSettings>
</configuration>
"""

RELEASE = b"""<?xml version="1.0"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <appSettings>
    <add key="FeatureX" value="on" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
    <add key="Obsolete" xdt:Transform="Remove" xdt:Locator="Match(key)" />
    <add key="Added" value="yes" xdt:Transform="Insert" />
  </appSettings>
  <system.web>
    <compilation xdt:Transform="RemoveAttributes(debug)" />
    <customErrors mode="RemoteOnly" xdt:Transform="Replace" />
  </system.web>
</configuration>
"""

PRODUCTION = b"""<?xml version="1.0"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <appSettings>
    <add key="Environment" value="Production"
         xdt:Transform="SetAttributes(value)" xdt:Locator="Condition(@key='Environment')" />
  </appSettings>
  <connectionStrings>
    <add name="Db" connectionString="Server=prod-db" xdt:Transform="SetAttributes"
         xdt:Locator="XPath(/configuration/connectionStrings/add[@name='Db'])" />
  </connectionStrings>
  <system.web>
    <httpRuntime maxRequestLength="4096"
                 xdt:Transform="InsertAfter(/configuration/system.web/compilation)" />
    <trace enabled="false" xdt:Transform="InsertBefore(/configuration/system.web/compilation)" />
  </system.web>
</configuration>
"""


def _root(content: bytes) -> etree._Element:
    return etree.fromstring(content)


def _find(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path)
    assert found is not None, path
    return found


def test_release_then_environment_transforms() -> None:
    released = apply_transform(WEB_CONFIG, RELEASE)
    result = apply_transform(released, PRODUCTION)
    root = _root(result)
    settings = {a.get("key"): a.get("value") for a in _find(root, "appSettings")}
    assert settings == {"Environment": "Production", "FeatureX": "on", "Added": "yes"}
    assert _find(root, "connectionStrings/add").get("connectionString") == "Server=prod-db"
    assert _find(root, "connectionStrings/add").get("providerName") == "System.Data.SqlClient"
    web = _find(root, "system.web")
    assert [child.tag for child in web] == ["trace", "compilation", "httpRuntime", "customErrors"]
    assert _find(web, "compilation").get("debug") is None
    assert _find(web, "compilation").get("targetFramework") == "4.8"
    assert _find(web, "customErrors").get("mode") == "RemoteOnly"
    assert b"xdt" not in result and b"XML-Document-Transform" not in result
    assert result.startswith(b'<?xml version="1.0" encoding="utf-8"?>')


def test_remove_all_and_replace_only_the_first() -> None:
    target = b"<c><a k='1'/><a k='2'/><b/></c>"
    transform = (
        b"<c xmlns:xdt='http://schemas.microsoft.com/XML-Document-Transform'>"
        b"<a xdt:Transform='RemoveAll'/><b n='x' xdt:Transform='Replace'/></c>"
    )
    root = _root(apply_transform(target, transform))
    assert [(e.tag, dict(e.attrib)) for e in root] == [("b", {"n": "x"})]


@pytest.mark.parametrize(
    "transform",
    [
        b"<other/>",
        b"<c xmlns:xdt='http://schemas.microsoft.com/XML-Document-Transform'>"
        b"<a xdt:Transform='Explode'/></c>",
        b"<c xmlns:xdt='http://schemas.microsoft.com/XML-Document-Transform'>"
        b"<a xdt:Transform='InsertAfter(/c/nothing)'/></c>",
        b"<c xmlns:xdt='http://schemas.microsoft.com/XML-Document-Transform'>"
        b"<a xdt:Locator='Condition([[[)' xdt:Transform='Remove'/></c>",
        b"<c><unclosed></c>",
    ],
)
def test_bad_transforms_are_errors(transform: bytes) -> None:
    with pytest.raises(TransformError):
        apply_transform(b"<c><a/></c>", transform)


def test_configuration_variables() -> None:
    values = {"environment": "Staging", "DB": "Server=db;Password=s3cret", "Timeout": "60",
              "Retries": "5", "Unused": "x"}  # fmt: skip
    lowered = {k.lower(): v for k, v in values.items()}
    content, replaced = replace_config_variables(
        WEB_CONFIG, values, lambda name: lowered.get(name.lower())
    )
    root = _root(content)
    assert _find(root, "appSettings/add[@key='Environment']").get("value") == "Staging"
    assert _find(root, "connectionStrings/add").get("connectionString") == (
        "Server=db;Password=s3cret"
    )
    settings = _find(root, "applicationSettings/My.Settings")
    assert _find(settings, "setting[@name='Timeout']/value").text == "60"
    assert _find(settings, "setting[@name='Retries']/value").text == "5"
    assert sorted(replaced) == ["DB", "Retries", "Timeout", "environment"]
    unchanged, nothing = replace_config_variables(WEB_CONFIG, ["Other"], lambda name: "x")
    assert unchanged == WEB_CONFIG and nothing == []
