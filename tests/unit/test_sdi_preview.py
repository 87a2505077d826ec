"""``spacedock sdi preview``: an SDI's features run locally, as a build runs them, with a
masked diff of what they changed and the build's error codes when a build would fail."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from services.builder.archives import Limits
from services.builder.features.variables import VariableSet
from shared.builds.errors import BuildError
from spacedock.cli import main
from spacedock.sdi_preview import UsageError, preview, read_variables

PASSWORD = "Tr0ub4dor&3-horse"
SDI_YAML = """\
packages:
  - id: shared-assets
    version: 2.4.0
    extract_to: assets
features:
  substitute_in_files: ["web/*.ini"]
  structured_variables: ["web/appsettings.json"]
"""
FILES = {
    "Dockerfile": "FROM base\nCOPY web /srv/web\n",
    "sdi.yaml": SDI_YAML,
    "web/site.ini": "[site]\ntitle = #{SiteTitle}\nsecret = #{ApiPassword}\nkeep = as is\n",
    "web/appsettings.json": '{"Cache": {"Minutes": 5}, "Api": {"Password": ""}}\n',
    "web/untouched.txt": "#{SiteTitle} is not in a pattern\n",
}


def sdi_folder(root: Path, files: dict[str, str] = FILES) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def as_zip(root: Path, files: dict[str, str] = FILES) -> Path:
    path = root / "orders-sdi.3.1.0.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        for name, text in files.items():
            bundle.writestr(name, text)
    return path


def as_tar_gz(root: Path, files: dict[str, str] = FILES) -> Path:
    path = root / "orders-sdi.3.1.0.tar.gz"
    with tarfile.open(path, "w:gz") as bundle:
        for name, text in files.items():
            data = text.encode()
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            bundle.addfile(entry, io.BytesIO(data))
    return path


def variables() -> VariableSet:
    return VariableSet(
        {"SiteTitle": "Orders", "Cache:Minutes": "15"},
        {"ApiPassword": PASSWORD, "Api:Password": PASSWORD},
    )


# How structured variables lay out JSON is theirs to decide; the templates' lines are exact.
SITE_INI_DIFF = """\
--- a/web/site.ini
+++ b/web/site.ini
@@ -1,4 +1,4 @@
 [site]
-title = #{SiteTitle}
-secret = #{ApiPassword}
+title = Orders
+secret = ********
 keep = as is
"""

SOURCES: dict[str, Callable[[Path], Path]] = {
    "folder": lambda root: sdi_folder(root / "sdi"),
    "zip": as_zip,
    "tar.gz": as_tar_gz,
}


@pytest.mark.parametrize("make", SOURCES.values(), ids=SOURCES.keys())
def test_the_diff_shows_every_changed_file_with_sensitive_values_masked(
    tmp_path: Path, make: Callable[[Path], Path]
) -> None:
    context = tmp_path / "out"
    result = preview(
        make(tmp_path), context, variables(), environment=None, tenant=None, scratch=tmp_path
    )
    assert result.changed == ["web/appsettings.json", "web/site.ini"]
    json_diff, _, ini_diff = result.diff.partition("--- a/web/site.ini\n")
    assert "--- a/web/site.ini\n" + ini_diff == SITE_INI_DIFF
    assert json_diff.startswith("--- a/web/appsettings.json\n+++ b/web/appsettings.json\n@@ ")
    assert '"********"' in json_diff and "15" in json_diff
    assert PASSWORD not in result.diff
    # The files themselves hold the values, as the image would.
    assert PASSWORD in (context / "web/site.ini").read_text()
    assert json.loads((context / "web/appsettings.json").read_text())["Cache"]["Minutes"] == 15
    assert result.packages == ["shared-assets 2.4.0 -> assets"]  # named, not fetched
    assert not (context / "assets").exists()


@pytest.mark.parametrize(
    ("files", "code", "words"),
    [
        ({"sdi.yaml": "features: [substitute_in_files]\n"}, "sdi_invalid",
         "features must be a mapping"),
        ({"sdi.yaml": "packages:\n  - id: kit\n    extract_to: /abs\n"}, "sdi_invalid",
         "has an absolute path"),
        ({"sdi.yaml": "features:\n  substitute_in_files: [../outside.conf]\n"}, "sdi_invalid",
         "leaves the folder"),
        ({"sdi.yaml": "features:\n  substitute_in_files: [Dockerfile]\n",
          "Dockerfile": "FROM base\nENV KEY=#{ApiPassword}\n"}, "sensitive_value_in_image",
         "reads the sensitive variable(s) ApiPassword"),
        ({"web/appsettings.json": '{"Cache": {"Minutes": 5,'}, "structured_variables_failed",
         "web/appsettings.json"),
    ],
    ids=["not-a-mapping", "absolute-extract-to", "climbing-pattern", "secret-in-dockerfile",
         "broken-json"],
)  # fmt: skip
def test_a_preview_fails_where_a_build_would_with_its_code(
    tmp_path: Path, files: dict[str, str], code: str, words: str
) -> None:
    folder = tmp_path / "sdi"
    sdi_folder(folder, FILES)
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(BuildError) as failed:
        preview(folder, tmp_path / "out", variables(), environment=None, tenant=None,
                scratch=tmp_path)  # fmt: skip
    assert failed.value.code == code
    assert words in str(failed.value)
    assert PASSWORD not in str(failed.value)


@pytest.mark.parametrize(
    ("link", "target", "code"),
    [
        ("web/passwd", "/etc/passwd", "archive_link_escape"),
        ("web/up", "../../outside", "archive_link_escape"),
        ("sdi.yaml", "web/site.ini", "archive_link_escape"),  # must be a regular file
    ],
    ids=["absolute-link", "climbing-link", "linked-sdi-yaml"],
)
def test_the_tree_is_judged_as_the_builder_judges_it(
    tmp_path: Path, link: str, target: str, code: str
) -> None:
    folder = sdi_folder(tmp_path / "sdi")
    (folder / link).unlink(missing_ok=True)
    (folder / link).symlink_to(target)
    with pytest.raises(BuildError) as failed:
        preview(folder, tmp_path / "out", variables(), environment=None, tenant=None,
                scratch=tmp_path)  # fmt: skip
    assert failed.value.code == code


def test_extraction_keeps_the_builders_budget(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as failed:
        preview(as_zip(tmp_path), tmp_path / "out", variables(), environment=None, tenant=None,
                scratch=tmp_path, limits=Limits(max_bytes=1024**2, max_files=3))  # fmt: skip
    assert failed.value.code == "archive_too_large"


def test_environment_and_tenant_become_system_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = sdi_folder(
        tmp_path / "sdi",
        {
            "Dockerfile": "FROM base\n",
            "sdi.yaml": "features:\n  substitute_in_files: [app.conf]\n",
            "app.conf": "env=#{Octopus.Environment.Name} tenant=#{Octopus.Tenant.Name}\n",
        },
    )
    names = tmp_path / "vars.json"
    names.write_text("{}")
    status = main(["sdi", "preview", str(folder), "--variables", str(names),
                   "--environment", "Staging", "--tenant", "Acme"])  # fmt: skip
    assert status == 0
    assert "+env=Staging tenant=Acme\n" in capsys.readouterr().out


def test_the_command_prints_the_diff_and_keeps_the_files_in_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain, secret = tmp_path / "vars.json", tmp_path / "secret.json"
    plain.write_text(json.dumps({"SiteTitle": "Orders", "Cache:Minutes": 15}))
    secret.write_text(json.dumps({"ApiPassword": PASSWORD}))
    out = tmp_path / "kept"
    status = main(["sdi", "preview", str(as_tar_gz(tmp_path)), "--variables", str(plain),
                   "--sensitive", str(secret), "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr()
    assert status == 0
    assert "+secret = ********\n" in printed.out and PASSWORD not in printed.out + printed.err
    assert "not fetched (sdi.yaml lists it): shared-assets 2.4.0 -> assets" in printed.err
    assert f"changed 2 file(s); the files are in {out}" in printed.err
    assert PASSWORD in (out / "web/site.ini").read_text()


def test_a_failing_preview_exits_1_with_the_build_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = sdi_folder(tmp_path / "sdi")
    (folder / "sdi.yaml").write_text("features:\n  substitute_in_file: [x]\n")
    names = tmp_path / "vars.json"
    names.write_text("{}")
    assert main(["sdi", "preview", str(folder), "--variables", str(names)]) == 1
    assert capsys.readouterr().err.strip() == (
        "spacedock: sdi_invalid: features: unknown keys substitute_in_file"
    )


def non_empty_folder(out: Path) -> None:
    out.mkdir()
    (out / "left-over.txt").write_text("x")


def a_file(out: Path) -> None:
    out.write_text("x")


@pytest.mark.parametrize("prepare", [non_empty_folder, a_file], ids=["non-empty-folder", "a-file"])
def test_out_must_be_an_empty_or_new_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prepare: Callable[[Path], None]
) -> None:
    out = tmp_path / "kept"
    prepare(out)
    names = tmp_path / "vars.json"
    names.write_text("{}")
    status = main(["sdi", "preview", str(sdi_folder(tmp_path / "sdi")), "--variables",
                   str(names), "--out", str(out)])  # fmt: skip
    assert status == 2
    assert f"--out {out} is not an empty folder" in capsys.readouterr().err


def a_link_to_nothing(out: Path) -> Path:
    out.symlink_to(out.parent / "nowhere" / "x")
    return out


def under_a_file(out: Path) -> Path:
    out.write_text("x")
    return out / "sub"


@pytest.mark.parametrize(
    "prepare", [a_link_to_nothing, under_a_file], ids=["dangling-link", "under-a-file"]
)
def test_an_out_folder_that_cannot_be_made_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prepare: Callable[[Path], Path]
) -> None:
    """mkdir's FileExistsError or NotADirectoryError: exit status 2, not a traceback."""
    out = prepare(tmp_path / "kept")
    names = tmp_path / "vars.json"
    names.write_text("{}")
    status = main(["sdi", "preview", str(sdi_folder(tmp_path / "sdi")), "--variables",
                   str(names), "--out", str(out)])  # fmt: skip
    assert status == 2
    assert f"spacedock: --out {out} cannot be made an empty folder: " in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"A": "x", "B": null, "C": true, "D": false, "E": 3, "F": 2.5}',
         {"A": "x", "B": None, "C": "True", "D": "False", "E": "3", "F": "2.5"}),
        ('{"Section:Key": "value with #{Nested}"}', {"Section:Key": "value with #{Nested}"}),
        ("{}", {}),
    ],
    ids=["scalars", "names-kept-as-written", "empty"],
)  # fmt: skip
def test_variables_files_read_as_a_build_request_reads_variables(
    tmp_path: Path, text: str, expected: dict[str, str | None]
) -> None:
    path = tmp_path / "vars.json"
    path.write_text(text)
    assert read_variables(path) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not json", "is not JSON"),
        ('["A", "B"]', "variables must be an object"),
        ('{"A": {"nested": "x"}}', "variables.A must be a string"),
        ('{"": "x"}', "variables holds an empty name"),
        ("[" * 100_000 + "]" * 100_000, "not JSON"),
    ],
    ids=["not-json", "a-list", "nested-value", "empty-name", "deep-nesting"],
)
def test_bad_variables_files_are_usage_errors(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "vars.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=words):
        read_variables(path)
