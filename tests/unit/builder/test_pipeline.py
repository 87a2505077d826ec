"""sdi.yaml and the configuration features run on a build context, in order."""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from services.builder.features.pipeline import apply_features
from services.builder.features.variables import VariableSet, system_variables
from shared.builds.errors import BuildError
from shared.sdi import Features, SdiInvalid, parse_sdi

SDI = """
packages:
  - id: mywebapp
    version: 1.2.0
    extract_to: app
features:
  substitute_in_files: ["app/entrypoint.sh", "app/config/*.conf"]
  dotnet_config_transforms: true
  dotnet_config_variables: true
  structured_variables: ["app/appsettings.json", "app/*.yaml", "app/*.properties"]
"""


def test_sdi_yaml_is_read() -> None:
    spec = parse_sdi(SDI)
    assert [(p.id, p.version, p.extract_to) for p in spec.packages] == [
        ("mywebapp", "1.2.0", "app")
    ]
    assert spec.features.substitute_in_files == ("app/entrypoint.sh", "app/config/*.conf")
    assert spec.features.dotnet_config_transforms and spec.features.dotnet_config_variables
    assert parse_sdi(None).packages == () and parse_sdi("").features == Features()
    assert parse_sdi("packages:\n  - id: tool\n").packages[0].extract_to == "tool"


@pytest.mark.parametrize(
    "text",
    ["- a list", "packages: {}", "packages:\n  - version: 1\n", "unknown: 1",
     "features:\n  substitute_in_files: 5\n", "features:\n  dotnet_config_transforms: yes-ish\n",
     "packages:\n  - id: x\n    extract_to: ../up\n",
     "packages:\n  - id: x\n    extract_to: /abs\n", "features:\n  nope: true\n",
     "a: [unclosed"],
)  # fmt: skip
def test_bad_sdi_yaml_is_sdi_invalid(text: str) -> None:
    with pytest.raises(SdiInvalid):
        parse_sdi(text)


def write(root: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


WEB = """<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings><add key="Environment" value="Dev" /><add key="AppName" value="x" /></appSettings>
  <connectionStrings><add name="Db" connectionString="Server=local" /></connectionStrings>
</configuration>
"""
XDT = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'
WEB_RELEASE = f"""<configuration {XDT}>
  <appSettings><add key="Release" value="yes" xdt:Transform="Insert" /></appSettings>
</configuration>"""
WEB_PRODUCTION = f"""<configuration {XDT}>
  <appSettings>
    <add key="Environment" value="Prod" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
  </appSettings>
</configuration>"""


def context_with_everything(root: Path) -> None:
    write(
        root,
        {
            "Dockerfile": "FROM base\nCOPY app /app\n",
            "app/entrypoint.sh": "#!/bin/sh\necho #{AppName} in #{Octopus.Environment.Name}\n",
            "app/config/site.conf": "listen #{Port | Format 0};\n#{if Debug}debug on;#{/if}\n",
            "app/appsettings.json": json.dumps(
                {
                    "Logging": {"LogLevel": {"Default": "Information"}},
                    "ConnectionStrings": {"Db": "dev"},
                }
            ),
            "app/config.yaml": "app:\n  name: placeholder  # kept\n  replicas: 1\n",
            "app/app.properties": "db.password=none\n",
            "app/Web.config": WEB,
            "app/Web.Release.config": WEB_RELEASE,
            "app/Web.Production.config": WEB_PRODUCTION,
            "app/Web.Test.config": WEB_PRODUCTION.replace("Prod", "Test"),
        },
    )


def variables(environment: str) -> VariableSet:
    values = {
        "AppName": "web",
        "Port": "8080",
        "Debug": "False",
        "Logging:LogLevel:Default": "Warning",
        "app:name": "#{AppName}-#{Octopus.Environment.Name}",
        "app:replicas": "3",
        **system_variables({"id": "deployments-75", "environment": environment}, "spaces-1"),
    }
    secret = "Server=db;Password=s3cret"
    return VariableSet(
        values, {"ConnectionStrings:Db": secret, "Db": secret, "db.password": "s3cret"}
    )


def test_every_feature_runs_in_order(tmp_path: Path) -> None:
    context_with_everything(tmp_path)
    lines: list[str] = []
    report = apply_features(
        tmp_path,
        parse_sdi(SDI).features,
        variables("Production"),
        environment="Production",
        tenant=None,
        log=lines.append,
    )
    app = tmp_path / "app"
    assert (app / "entrypoint.sh").read_text() == "#!/bin/sh\necho web in Production\n"
    assert (app / "config/site.conf").read_text() == "listen 8080;\n\n"
    settings = json.loads((app / "appsettings.json").read_text())
    assert settings["Logging"]["LogLevel"]["Default"] == "Warning"
    assert settings["ConnectionStrings"]["Db"] == "Server=db;Password=s3cret"
    config = (app / "config.yaml").read_text()
    assert (
        # the server writes one space before an inline comment
        "name: web-Production # kept" in config and yaml.safe_load(config)["app"]["replicas"] == 3
    )
    assert (app / "app.properties").read_text() == "db.password=s3cret\n"
    web = (app / "Web.config").read_text()
    assert 'key="Environment" value="Prod"' in web  # Production transform, not Test
    assert 'key="Release" value="yes"' in web
    assert 'key="AppName" value="web"' in web  # configuration variables ran after transforms
    assert 'connectionString="Server=db;Password=s3cret"' in web
    assert report.changed == {
        "app/entrypoint.sh", "app/config/site.conf", "app/appsettings.json", "app/config.yaml",
        "app/app.properties", "app/Web.config",
    }  # fmt: skip
    assert not any("s3cret" in line for line in lines)


def test_failures_carry_their_feature_code(tmp_path: Path) -> None:
    xdt = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'
    remove = f'<c {xdt}><d xdt:Transform="Remove"/></c>'  # selects nothing: the server fails
    write(tmp_path, {"a.sh": "#{X | FromBase64}", "b.json": "{broken", "Web.config": "<c/>",
                     "Web.Release.config": remove})  # fmt: skip
    cases = [
        (Features(substitute_in_files=("a.sh",)), "substitution_failed"),
        (Features(structured_variables=("b.json",)), "structured_variables_failed"),
        (Features(dotnet_config_transforms=True), "config_transform_failed"),
        (Features(additional_transforms=("/etc/x.config => Web.config",)), "sdi_invalid"),
        (Features(substitute_in_files=("../outside",)), "sdi_invalid"),
    ]
    for features, code in cases:
        with pytest.raises(BuildError) as caught:
            apply_features(tmp_path, features, VariableSet({"X": "1"}), environment=None,
                           tenant=None, log=lambda line: None)  # fmt: skip
        assert caught.value.code == code, features


def test_secrets_are_found_in_decoded_text_whatever_json_escapes() -> None:
    from services.builder.redaction import holds_secret

    secret = 'pässwörd "quoted" back\\slash'
    config = json.loads(json.dumps({"config": {"Env": [f"DB={secret}"]}, "history": []}))
    assert holds_secret(config, [secret])
    assert holds_secret({"history": [{"created_by": f"RUN echo {secret}"}]}, [secret])
    assert not holds_secret(config, ["other", ""])


def host_folder(tmp_path: Path) -> dict[str, tuple[bytes, int]]:
    """Files beside the context standing for the builder host's; their bytes and times."""
    write(
        tmp_path / "host",
        {"host-only-name.json": '{"Db": "host value"}', "host-only.config": WEB,
         "Web.config": WEB, "T.config": WEB_PRODUCTION},
    )  # fmt: skip
    return host_state(tmp_path)


def host_state(tmp_path: Path) -> dict[str, tuple[bytes, int]]:
    return {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in (tmp_path / "host").iterdir()
    }


@pytest.mark.parametrize(
    ("features", "links"),
    [
        (Features(substitute_in_files=("a/*",)), {"a": "../../host"}),
        (Features(structured_variables=("a/*",)), {"a": "../../host"}),
        (Features(structured_variables=("*/*.json",)), {"a": "../../host"}),
        (Features(structured_variables=("*.json",)),
         {"settings.json": "../../host/host-only-name.json"}),
        (Features(dotnet_config_variables=True),
         {"app/x.config": "../../../host/host-only.config"}),
        (Features(dotnet_config_transforms=True),
         {"app/Web.Release.config": "../../../host/T.config"}),
        (Features(additional_transforms=("a/*.config => app/Web.config",)), {"a": "../../host"}),
        (Features(additional_transforms=("app/Web.Test.config => out/Web.config",)),
         {"out": "../../host"}),
    ],
)  # fmt: skip
def test_features_never_follow_a_link_out_of_the_context(
    tmp_path: Path, features: Features, links: dict[str, str]
) -> None:
    """With a link out of the context (one verify_tree would have refused), each feature
    fails with archive_link_escape before reading or writing what it leads to, and neither
    the error nor the log names a host file."""
    before = host_folder(tmp_path)
    context = tmp_path / "work" / "context"
    write(context, {"Dockerfile": "FROM base\n", "app/Web.config": WEB,
                    "app/Web.Test.config": WEB_PRODUCTION})  # fmt: skip
    for name, target in links.items():
        (context / name).symlink_to(target)
    lines: list[str] = []
    with pytest.raises(BuildError) as caught:
        apply_features(context, features, variables("Production"), environment="Production",
                       tenant=None, log=lines.append)  # fmt: skip
    assert caught.value.code == "archive_link_escape"
    assert not any("host" in text for text in [str(caught.value), *lines])
    assert host_state(tmp_path) == before


def test_features_follow_links_that_stay_inside(tmp_path: Path) -> None:
    """current -> v1 and a file link to a sibling work; a file reached by two names is
    changed once."""
    settings = {"Logging": {"LogLevel": {"Default": "x"}}}
    write(tmp_path, {"v1/entrypoint.sh": "echo #{AppName}\n",
                     "v1/appsettings.json": json.dumps(settings)})  # fmt: skip
    (tmp_path / "current").symlink_to("v1")
    (tmp_path / "settings.json").symlink_to("v1/appsettings.json")
    lines: list[str] = []
    features = Features(
        substitute_in_files=("current/*.sh",),
        structured_variables=("settings.json", "v1/*.json", "current/*.json"),
    )
    report = apply_features(tmp_path, features, variables("Production"),
                            environment="Production", tenant=None, log=lines.append)  # fmt: skip
    assert (tmp_path / "v1/entrypoint.sh").read_text() == "echo web\n"
    assert json.loads((tmp_path / "v1/appsettings.json").read_text()) == {
        "Logging": {"LogLevel": {"Default": "Warning"}}
    }
    assert report.changed == {"current/entrypoint.sh", "settings.json"}  # the first name
    assert sum("structured variables" in line for line in lines) == 1
    assert (tmp_path / "current").is_symlink() and (tmp_path / "settings.json").is_symlink()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(codecs.BOM_UTF8 + b"port=#{Port}\n", codecs.BOM_UTF8 + b"port=8080\n",
                     id="utf8-bom-kept"),
        pytest.param(codecs.BOM_UTF16_LE + "\u20ac #{Port}".encode("utf-16-le"),
                     codecs.BOM_UTF16_LE + "\u20ac 8080".encode("utf-16-le"), id="utf16-bom-kept"),
        pytest.param("\u00e9t\u00e9 #{Port}".encode("cp1252"),
                     "\u00e9t\u00e9 8080".encode("cp1252"), id="windows-1252-kept"),
        pytest.param("\u00e9 #{Sign}".encode("cp1252"), "\u00e9 \u20a9".encode(),
                     id="windows-1252-upgraded-to-utf8-when-a-value-does-not-fit"),
    ],
)  # fmt: skip
def test_substitution_writes_files_back_in_their_encoding(
    tmp_path: Path, content: bytes, expected: bytes
) -> None:
    (tmp_path / "app.conf").write_bytes(content)
    apply_features(tmp_path, Features(substitute_in_files=("app.conf",)),
                   VariableSet({"Port": "8080", "Sign": "\u20a9"}), environment=None,
                   tenant=None, log=lambda line: None)  # fmt: skip
    assert (tmp_path / "app.conf").read_bytes() == expected


def test_structured_files_are_written_back_in_the_servers_layout(tmp_path: Path) -> None:
    """As the server does, a file no variable names is still written back reformatted; a
    file already in that layout is left as it is and not reported."""
    write(tmp_path, {"loose.json": '{"a":1}', "tidy.json": '{\r\n  "a": 1\r\n}'})
    report = apply_features(tmp_path, Features(structured_variables=("*.json",)),
                            VariableSet({"Other": "x"}), environment=None, tenant=None,
                            log=lambda line: None)  # fmt: skip
    assert (tmp_path / "loose.json").read_bytes() == b'{\r\n  "a": 1\r\n}'
    assert report.changed == {"loose.json"}


@pytest.mark.parametrize(
    ("template", "written"),
    [
        pytest.param("port #{Port} #{if Port}no end", "port 80 #{if Port}no end",
                     id="unclosed-if-rest-evaluated"),
        pytest.param("port #{Port} host #{Nowhere}", "port 80 host #{Nowhere}",
                     id="undefined-variable"),
    ],
)  # fmt: skip
def test_what_a_template_cannot_evaluate_is_a_warning_unless_the_server_flag_asks_to_fail(
    tmp_path: Path, template: str, written: str
) -> None:
    """As the server substitutes in files: what it cannot evaluate stays as written and is
    logged as a warning; ``ShouldFailDeploymentOnSubstitutionFails`` makes it a failure."""
    write(tmp_path, {"site.conf": template})
    lines: list[str] = []
    features = Features(substitute_in_files=("site.conf",))
    apply_features(tmp_path, features, VariableSet({"Port": "80"}), environment=None,
                   tenant=None, log=lines.append)  # fmt: skip
    assert (tmp_path / "site.conf").read_text() == written
    assert any(line.startswith("warning: site.conf: ") for line in lines), lines

    write(tmp_path, {"site.conf": template})
    strict = VariableSet({"Port": "80", "ShouldFailDeploymentOnSubstitutionFails": " True "})
    with pytest.raises(BuildError) as caught:
        apply_features(tmp_path, features, strict, environment=None, tenant=None,
                       log=lines.append)  # fmt: skip
    assert caught.value.code == "substitution_failed"
    assert (tmp_path / "site.conf").read_text() == template


def test_a_variable_with_no_value_is_null_in_json_empty_in_templates_and_settings(
    tmp_path: Path,
) -> None:
    write(tmp_path, {
        "s.json": '{\n  "Mode": "on",\n  "Level": 2\n}',
        "t.conf": "mode=#{Mode}|\n",
        "Web.config": '<configuration><appSettings><add key="Mode" value="on"/></appSettings>'
                      "</configuration>",
    })  # fmt: skip
    features = Features(substitute_in_files=("t.conf",), dotnet_config_variables=True,
                        structured_variables=("s.json",))  # fmt: skip
    apply_features(tmp_path, features, VariableSet({"Mode": None, "Level": None}),
                   environment=None, tenant=None, log=lambda line: None)  # fmt: skip
    assert (tmp_path / "s.json").read_text() == '{\n  "Mode": null,\n  "Level": null\n}'
    assert (tmp_path / "t.conf").read_text() == "mode=|\n"
    assert '<add key="Mode" value="" />' in (tmp_path / "Web.config").read_text("utf-8-sig")


XDT_NS = 'xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform"'


def features_run(root: Path, features: Features, values: Mapping[str, str | None]) -> list[str]:
    lines: list[str] = []
    apply_features(root, features, VariableSet(values), environment=None, tenant=None,
                   log=lines.append)  # fmt: skip
    return lines


@pytest.mark.parametrize(
    ("files", "features", "flags", "code"),
    [
        pytest.param({"Web.config": "<c><d/></c>",
                      "Web.Release.config": f'<c {XDT_NS}><e xdt:Transform="Remove"/></c>'},
                     Features(dotnet_config_transforms=True),
                     {"Octopus.Action.Package.TreatConfigTransformationWarningsAsErrors": "False"},
                     "config_transform_failed", id="transform-warning"),
        pytest.param({"Web.config": "<c><d/></c>",
                      "Web.Release.config": f'<c {XDT_NS}><e xdt:Transform="Remove"/></c>'},
                     Features(dotnet_config_transforms=True),
                     {"Octopus.Action.Package.IgnoreConfigTransformationErrors": "true"},
                     "config_transform_failed", id="transform-warning-under-ignored-errors"),
        pytest.param({"Web.config": "<c><d></c>",
                      "Web.Release.config": f'<c {XDT_NS}><d xdt:Transform="Remove"/></c>'},
                     Features(dotnet_config_transforms=True),
                     {"Octopus.Action.Package.IgnoreConfigTransformationErrors": "True"},
                     "config_transform_failed", id="file-that-is-not-xml"),
        pytest.param({"App.config": "<configuration><appSettings>&nbsp;</appSettings>"
                                    "</configuration>"},
                     Features(dotnet_config_variables=True),
                     {"Octopus.Action.Package.IgnoreVariableReplacementErrors": "True"},
                     "config_variables_failed", id="config-variables-on-bad-xml"),
    ],
)  # fmt: skip
def test_the_servers_flags_turn_configuration_errors_into_warnings(
    tmp_path: Path,
    files: dict[str, str],
    features: Features,
    flags: dict[str, str],
    code: str,
) -> None:
    """Without its flag each case fails with its code; with it, the step logs a warning,
    leaves the file as it was and goes on."""
    write(tmp_path, files)
    with pytest.raises(BuildError) as caught:
        features_run(tmp_path, features, {})
    assert caught.value.code == code
    lines = features_run(tmp_path, features, flags)
    assert any("warning: " in line for line in lines), lines
    for name, text in files.items():
        assert (tmp_path / name).read_text() == text


def test_configuration_variables_skip_the_transform_files_applied(tmp_path: Path) -> None:
    setting = '<appSettings><add key="Mode" value="{}"{}/></appSettings>'
    replace = ' xdt:Transform="Replace"'
    write(tmp_path, {
        "Web.config": f"<configuration>{setting.format('base', '')}</configuration>",
        "Web.Release.config":
            f"<configuration {XDT_NS}>{setting.format('release', replace)}</configuration>",
    })  # fmt: skip
    release = (tmp_path / "Web.Release.config").read_text()
    features_run(tmp_path, Features(dotnet_config_transforms=True, dotnet_config_variables=True),
                 {"Mode": "from-variable"})  # fmt: skip
    assert 'value="from-variable"' in (tmp_path / "Web.config").read_text("utf-8-sig")
    assert (tmp_path / "Web.Release.config").read_text() == release


def test_the_fallback_flag_reads_every_structured_file_as_json(tmp_path: Path) -> None:
    write(tmp_path, {"app.yaml": "mode: base\n"})
    features = Features(structured_variables=("app.yaml",))
    features_run(tmp_path, features, {"mode": "yaml"})
    assert (tmp_path / "app.yaml").read_text() == "mode: yaml\n"
    with pytest.raises(BuildError) as caught:
        fallback = {"Octopus.Action.StructuredConfigurationFallbackFlag": "True"}
        features_run(tmp_path, features, {"mode": "json", **fallback})
    assert caught.value.code == "structured_variables_failed"
