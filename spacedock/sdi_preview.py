"""``spacedock sdi preview``: an SDI's configuration features, run here on its own files (no
registry, no engine), and a diff of what they changed.

The SDI becomes a build context as the builder makes one: a folder is packed as a package of
it would be, and the archive is extracted with the builder's checks and budgets
(``SPACEDOCK_BUILD_MAX_EXTRACT_BYTES``, ``SPACEDOCK_BUILD_MAX_FILES``); ``sdi.yaml`` is read
as a build reads it, and the features run in a child process under the builder's time budget
(``SPACEDOCK_BUILD_FEATURES_SECONDS``). So a preview fails where a build would, with the
build's error code. Packages that ``sdi.yaml`` names are not fetched: the features run on
the SDI's own files only.

Sensitive values are masked, with their usual encodings, in everything printed (the diff, the
features' log, errors); the files themselves hold them, as an image would.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import difflib
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from services.builder.archives import ArchiveError, Limits, extract
from services.builder.features.pipeline import FeatureRun, run_features
from services.builder.features.variables import VariableSet, system_variables
from services.builder.isolation import IsolatedFailure, IsolatedRunner, IsolatedTimeout
from services.builder.redaction import Masker
from services.builder.tree import inside, read_regular
from shared.build_requests import RequestInvalid, variable_values
from shared.builds.errors import ArchiveInvalid, BuildError, FeaturesFailed, SubstitutionFailed
from shared.sdi import MAX_SDI_FILE_BYTES, SdiSpec, parse_sdi_file
from shared.settings import Settings
from spacedock.json_files import JsonFileError, read_json_file

MAX_DIFF_BYTES = 2 * 1024 * 1024  # a larger file is said to differ, not diffed
MAX_VARIABLES_FILE_BYTES = 64 * 1024 * 1024
PACKAGE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

DESCRIPTION = """\
Run an SDI's configuration features (sdi.yaml) locally, as a build would run them, and
print a unified diff of every file they changed. Nothing is fetched and nothing is built:
no registry, no engine. Packages that sdi.yaml lists are NOT fetched; the features run on
the SDI's own files only, so patterns that only match files of those packages match nothing.
"""

EPILOG = """\
Variables files are JSON objects of name to value, as in a build request's "variables":
  {"AppName": "web", "Logging:Level": "Warning", "Feature.Enabled": true, "Empty": null}
A value is a string; true/false become "True"/"False", numbers their text, and null is a
variable with no value (empty in templates, null in JSON). Values from --sensitive are
masked in the output (the files hold them).
Octopus.Environment.Name and Octopus.Tenant.Name come from --environment and --tenant.

Exit status: 0 when the features ran, 1 with the build's error code (sdi_invalid,
substitution_failed, archive_link_escape, ...) when a build would fail, 2 for a usage error.
"""


class UsageError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Preview:
    changed: list[str]  # relative paths, sorted
    diff: str  # masked
    log: list[str] = field(default_factory=list)  # masked
    packages: list[str] = field(default_factory=list)  # "<id> <version> -> <folder>", not fetched


def add_verbs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sdi preview`` on the ``spacedock`` parser."""
    sdi = commands.add_parser("sdi", help="work on a Source Docker Image locally")
    verbs = sdi.add_subparsers(dest="verb", required=True)
    parser = verbs.add_parser(
        "preview",
        help="run an SDI's configuration features locally and show the diff",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sdi", type=Path, metavar="SDI", help="a folder, or a .zip/.tar.gz/.tgz package"
    )
    parser.add_argument(
        "--variables", type=Path, required=True, metavar="FILE", help="a variables file (JSON)"
    )
    parser.add_argument("--sensitive", type=Path, metavar="FILE", help="sensitive variables")
    parser.add_argument("--environment", metavar="NAME", help="the deployment's environment")
    parser.add_argument("--tenant", metavar="NAME", help="the deployment's tenant")
    parser.add_argument("--space", default="spaces-1", metavar="ID", help="Octopus.Space.Id")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="an empty (or new) folder that keeps the "
        "configured files; without it a temporary one is used and removed"
    )  # fmt: skip


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The verb, for ``spacedock.cli``: the diff on stdout, notes and errors on stderr."""
    try:
        variables = _variable_set(args)
        out = _out_folder(args.out)
    except UsageError as exc:
        print(f"spacedock: {exc}", file=sys.stderr)
        return 2
    masker = Masker(variables.secrets())
    limits = Limits(settings.build_max_extract_bytes, settings.build_max_files)
    with tempfile.TemporaryDirectory(prefix="spacedock-preview-") as scratch:
        context = out if out is not None else Path(scratch) / "context"
        try:
            result = preview(
                args.sdi,
                context,
                variables,
                environment=args.environment,
                tenant=args.tenant,
                scratch=Path(scratch),
                limits=limits,
                seconds=settings.build_features_seconds,
            )
        except BuildError as exc:  # a build of this SDI would fail with it
            print(f"spacedock: {exc.code}: {masker.mask(exc.message)}", file=sys.stderr)
            return 1
        for line in result.log:
            print(line, file=sys.stderr)
        for package in result.packages:
            print(f"not fetched (sdi.yaml lists it): {package}", file=sys.stderr)
        sys.stdout.write(result.diff)
        kept = f"; the files are in {out}" if out is not None else ""
        print(
            f"configuration features changed {len(result.changed)} file(s){kept}", file=sys.stderr
        )
    return 0


def preview(
    source: Path,
    context: Path,
    variables: VariableSet,
    *,
    environment: str | None,
    tenant: str | None,
    scratch: Path,
    limits: Limits | None = None,
    seconds: float = 30.0,
) -> Preview:
    """Make ``context`` from the SDI at ``source`` (a folder or a package file), run its
    features there and diff each changed file against its original (kept under
    ``scratch``). The build's error (``shared.builds.errors``) when a build would fail,
    sensitive values masked in its message."""
    archive = _archive(source, scratch)
    original = scratch / "original"
    for destination in (original, context):
        try:
            extract(archive, destination, (limits or Limits()).budget())
        except ArchiveError as exc:  # the same refusal, naming the SDI
            raise type(exc)(f"{source.name}: {exc.message}") from exc
    spec = _spec(context)
    features = _run_features(context, spec, variables, environment, tenant, seconds)
    masker = Masker(variables.secrets())
    if features.error is not None:
        raise type(features.error)(masker.mask(features.error.message))
    diff = "".join(_diff(original, context, name) for name in features.changed)
    return Preview(
        changed=list(features.changed),
        diff=masker.mask(diff),
        log=[masker.mask(line) for line in features.lines],
        packages=[
            f"{package.id} {package.version or '(newest)'} -> {package.extract_to or '.'}"
            for package in spec.packages
        ],
    )


# --- the SDI as a build context ----------------------------------------------------------


def _archive(source: Path, scratch: Path) -> Path:
    """The SDI as a package file: itself, or a folder packed as ``tar czf`` would pack it
    (links kept as links, special files as such) for the builder's extraction to judge."""
    if source.is_dir():
        packed = scratch / "sdi.tar.gz"
        with tarfile.open(packed, "w:gz") as bundle:
            for child in sorted(source.iterdir()):
                bundle.add(child, arcname=child.name)
        return packed
    if source.is_file() and source.name.lower().endswith(PACKAGE_SUFFIXES):
        return source
    raise ArchiveInvalid(f"{source} is not a folder or a .zip/.tar.gz package")


def _spec(context: Path) -> SdiSpec:
    return parse_sdi_file(read_regular(context, "sdi.yaml", MAX_SDI_FILE_BYTES))


def _run_features(
    context: Path,
    spec: SdiSpec,
    variables: VariableSet,
    environment: str | None,
    tenant: str | None,
    seconds: float,
) -> FeatureRun:
    """The features in a child process of their own, stopped at ``seconds`` as the builder
    stops them."""
    runner = IsolatedRunner(workers=1)

    async def call() -> FeatureRun:
        try:
            result: FeatureRun = await runner.run(
                run_features, context, spec.features, variables, environment, tenant,
                timeout=seconds,
            )  # fmt: skip
            return result
        finally:
            runner.close()

    try:
        result = asyncio.run(call())
    except IsolatedTimeout as exc:
        raise SubstitutionFailed(
            f"the configuration features took longer than {exc.seconds:g}s (a runaway "
            "template or regular expression?); SPACEDOCK_BUILD_FEATURES_SECONDS sets the budget",
        ) from exc
    except IsolatedFailure as exc:
        raise FeaturesFailed(str(exc)) from exc
    return result


# --- the diff ------------------------------------------------------------------------------


def _diff(original: Path, context: Path, name: str) -> str:
    before = _content(original, name)
    after = _content(context, name)
    if before is None or after is None:
        return f"Files a/{name} and b/{name} differ (too large to show)\n"
    old, new = _text(before), _text(after)
    if old is None or new is None:
        return f"Binary files a/{name} and b/{name} differ\n"
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{name}", f"b/{name}"
    )
    return "".join(line if line.endswith("\n") else f"{line}\n\\ No newline at end of file\n"
                   for line in lines)  # fmt: skip


def _content(root: Path, name: str) -> bytes | None:
    """The file's bytes, reached as the features reached it (through links that stay in
    the tree); None when it is larger than MAX_DIFF_BYTES."""
    try:
        path = inside(root, root / name)
    except ArchiveError:
        return None
    with path.open("rb") as handle:
        content = handle.read(MAX_DIFF_BYTES + 1)
    return None if len(content) > MAX_DIFF_BYTES else content


def _text(content: bytes) -> str | None:
    bom, encoding = next(((b, e) for b, e in _BOMS if content.startswith(b)), (b"", "utf-8"))
    try:
        return content[len(bom) :].decode(encoding)
    except UnicodeDecodeError:
        return None


# --- arguments -----------------------------------------------------------------------------


def _variable_set(args: argparse.Namespace) -> VariableSet:
    variables = VariableSet(
        read_variables(args.variables),
        read_variables(args.sensitive) if args.sensitive is not None else {},
    )
    deployment = {"environment": args.environment, "tenant": args.tenant}
    for name, value in system_variables(deployment, args.space).items():
        variables.set(name, value)
    return variables


def read_variables(path: Path) -> dict[str, str | None]:
    """A variables file: a JSON object of name to value, read as a build request's
    ``variables`` are (true/false as "True"/"False", numbers as text, null kept)."""
    try:
        document = read_json_file(path, MAX_VARIABLES_FILE_BYTES)
    except JsonFileError as exc:
        raise UsageError(f"{path}{exc}") from exc
    try:
        return variable_values(document, "variables")
    except RequestInvalid as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _out_folder(out: Path | None) -> Path | None:
    """``out``, an empty folder made if need be; UsageError for anything else (a file, a link
    to nothing, a folder under a file or one this user may not make or read)."""
    if out is None:
        return None
    try:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"--out {out} is not an empty folder")
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"--out {out} cannot be made an empty folder: {reason}") from exc
    return out
