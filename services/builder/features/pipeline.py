"""The configuration features of an ``sdi.yaml``, run on the build context in the deployment
server's order: substitute variables in templates, .NET configuration transforms, .NET
configuration variables, structured configuration variables.

Only file names and counts are reported: values (sensitive ones included) go into files the
SDI named and nowhere else.

One Budget bounds what a feature run makes: the templates' characters, and what transforms,
.NET configuration variables and structured variables add to the files they rewrite (the
first two also refuse, as they work, to grow a file by more than what is left of it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.builder.archives import safe_relative
from services.builder.features import transforms
from services.builder.features.dotnet_config import replace_config_variables
from services.builder.features.dotnet_encodings import (
    DotnetEncoding,
    dotnet_encoding,
    is_utf7,
    server_bytes,
)
from services.builder.features.octostache import Budget, Evaluator, TemplateError
from services.builder.features.structured import (
    JSON_ONLY_FLAG,
    StructuredError,
    StructuredGrowthError,
    decode_text,
    replace_structured,
)
from services.builder.features.variables import VariableSet
from services.builder.features.xdt import TransformError, Work, XmlInvalid, apply_transform
from services.builder.tree import files, inside
from shared.builds.errors import (
    ArchiveAbsolutePath,
    ArchiveError,
    ArchivePathTraversal,
    BuildError,
    ConfigTransformFailed,
    ConfigVariablesFailed,
    FeatureFailed,
    SdiInvalid,
    SensitiveValueInImage,
    StructuredVariablesFailed,
    SubstitutionFailed,
)
from shared.sdi import Features

Log = Callable[[str], None]
# The server's variables that turn its errors into warnings and back (read as flags):
# what a template could not evaluate is a warning, and the file keeps it as written...
FAIL_ON_SUBSTITUTION_ERRORS = "ShouldFailDeploymentOnSubstitutionFails"  # ...unless true
# a transform's warnings fail it (true by default); ignoring errors makes warnings notes,
# and a file or transform that is not XML a warning
TRANSFORM_WARNINGS_ARE_ERRORS = "Octopus.Action.Package.TreatConfigTransformationWarningsAsErrors"
IGNORE_TRANSFORM_ERRORS = "Octopus.Action.Package.IgnoreConfigTransformationErrors"
# a .config file the configuration variables cannot rewrite is a warning, not a failure
IGNORE_CONFIG_VARIABLE_ERRORS = "Octopus.Action.Package.IgnoreVariableReplacementErrors"
# The server's variable naming the .NET encoding substituted files are written in.
SUBSTITUTE_OUTPUT_ENCODING = "Octopus.Action.SubstituteInFiles.OutputEncoding"


@dataclass(slots=True)
class FeatureReport:
    changed: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class FeatureRun:
    """What ``run_features`` hands back from its child process (all of it pickles): the
    build's error when the features failed, else the files they changed; the log lines."""

    error: BuildError | None
    changed: list[str]
    lines: list[str]


def apply_features(
    context: Path,
    features: Features,
    variables: VariableSet,
    *,
    environment: str | None,
    tenant: str | None,
    log: Log,
    budget: Budget | None = None,
) -> FeatureReport:
    """Run the features on ``context``, spending ``budget`` (a default one if None)."""
    report = FeatureReport()
    evaluator = Evaluator(variables, budget)
    budget = evaluator.budget
    work = Work()  # XPath and node work, shared by every file of the run
    names = [variable.name for variable in variables]

    def lookup(name: str) -> str | None:
        try:
            return evaluator.lookup(name)
        except TemplateError as exc:
            raise SubstitutionFailed(f"variable {name}: {exc}") from exc

    if features.substitute_in_files:
        _substitute(context, features.substitute_in_files, evaluator, report, log)
    applied: set[str] = set()  # transform files, which the configuration variables skip
    if features.dotnet_config_transforms or features.additional_transforms:
        applied = _transforms(context, features, environment, tenant, evaluator, work, report, log)
    if features.dotnet_config_variables:
        ignore_errors = _flag(evaluator, IGNORE_CONFIG_VARIABLE_ERRORS)
        for path in files(context, "**/*.config"):
            if _rel(context, path) in applied:
                continue
            content = _read(context, path)
            try:
                updated, replaced = replace_config_variables(
                    content, names, lookup, max_growth=budget.characters
                )
            except TransformError as exc:
                if ignore_errors:
                    log(f"warning: {_rel(context, path)}: {exc}")
                    continue
                raise ConfigVariablesFailed(f"{_rel(context, path)}: {exc}") from exc
            if replaced:
                _rewrite(context, path, content, updated, budget, ConfigVariablesFailed)
                report.changed.add(_rel(context, path))
                log(f"config variables: {len(replaced)} setting(s) in {_rel(context, path)}")
    if features.structured_variables:
        json_only = _flag(evaluator, JSON_ONLY_FLAG)
        for path in _matches(context, features.structured_variables, evaluator, log):
            content = _read(context, path)
            try:
                updated, replacements = replace_structured(
                    path.name, content, names, lookup, max_growth=budget.characters,
                    json_only=json_only, work=work,
                )  # fmt: skip
            except StructuredGrowthError as exc:
                raise _over_budget(context, path, budget, StructuredVariablesFailed) from exc
            except StructuredError as exc:
                raise StructuredVariablesFailed(f"{_rel(context, path)}: {exc}") from exc
            if updated != content:  # the server writes the file back even if nothing matched
                _rewrite(context, path, content, updated, budget, StructuredVariablesFailed)
                report.changed.add(_rel(context, path))
            log(f"structured variables: {len(replacements)} value(s) in {_rel(context, path)}")
    return report


def _rel(context: Path, path: Path) -> str:
    return path.relative_to(context).as_posix()


# Every file the features find, read or write is found by ``files`` or resolved by
# ``inside``: beneath the context, never followed out of it, whatever links the tenant's
# archives made (ArchiveLinkEscape otherwise).


def _read(context: Path, path: Path) -> bytes:
    return inside(context, path).read_bytes()


def _write(context: Path, path: Path, content: bytes) -> None:
    inside(context, path).write_bytes(content)


def _rewrite(
    context: Path, path: Path, old: bytes, new: bytes, budget: Budget, failed: type[FeatureFailed]
) -> None:
    """``new`` written over ``old``; what it adds spends the feature run's budget first
    (``failed``, the feature's error, when it would spend more)."""
    try:
        budget.produce(max(len(new) - len(old), 0))
    except TemplateError as exc:
        raise _over_budget(context, path, budget, failed) from exc
    _write(context, path, new)


def _over_budget(
    context: Path, path: Path, budget: Budget, failed: type[FeatureFailed]
) -> FeatureFailed:
    return failed(
        f"{_rel(context, path)}: the configuration features would add more than their "
        f"budget of {budget.characters_limit} characters to the files"
    )


def _matches(
    context: Path, patterns: tuple[str, ...], evaluator: Evaluator, log: Log
) -> list[Path]:
    """Regular files matching any pattern (patterns may hold ``#{}``), once each (a file
    reached by two names too), sorted. Which files a pattern matches is in the log, so a
    pattern may read no sensitive variable, however indirectly (a ``Substring`` per pattern
    and a file per character would spell a value out); errors quote the pattern as written,
    never as rendered."""
    found: dict[Path, Path] = {}  # real path -> the first name found for it
    for pattern in patterns:
        concrete = _pattern(pattern, evaluator)
        matched = files(context, concrete)
        if not matched:
            log(f"no files match {pattern!r}")
        for path in matched:
            found.setdefault(inside(context, path), path)
    return sorted(found.values(), key=lambda path: _rel(context, path))


# Why safe_relative refuses a rendered pattern, without the rendering (which it quotes).
_PATTERN_PROBLEMS: dict[type[ArchiveError], str] = {
    ArchiveAbsolutePath: "renders as an absolute path",
    ArchivePathTraversal: "renders as a path that leaves the folder (..)",
}


def _pattern(pattern: str, evaluator: Evaluator) -> str:
    """``pattern`` rendered, as a relative path; SdiInvalid when it cannot be rendered,
    reads a sensitive variable or does not stay in the build folder."""
    try:
        rendering = evaluator.evaluate(pattern)
    except TemplateError as exc:
        raise SdiInvalid(f"file pattern {pattern!r}: {exc}") from exc
    if rendering.sensitive:
        raise SdiInvalid(
            f"file pattern {pattern!r} reads the sensitive variable(s) "
            f"{', '.join(sorted(rendering.sensitive))}: the files a pattern matches are named "
            "in the build log, so a pattern may not depend on a sensitive value",
        )
    try:
        return safe_relative(rendering.text, what="file pattern")
    except ArchiveError as exc:
        problem = _PATTERN_PROBLEMS.get(type(exc), "renders as no path in the build folder")
        raise SdiInvalid(f"file pattern {pattern!r} {problem}") from exc


def _substitute(
    context: Path, patterns: tuple[str, ...], evaluator: Evaluator, report: FeatureReport, log: Log
) -> None:
    """Render the matched files. The Dockerfile (by whatever name, or link, it is reached)
    becomes image config and history: rendering it may read no sensitive variable, however
    indirectly, since a filter (``ToBase64``, ``Substring``) or a condition would carry the
    value, or part of it, past the check of the final config."""
    try:
        dockerfile: Path | None = inside(context, context / "Dockerfile")
    except ArchiveError:
        dockerfile = None  # a link out of the context: the build refuses that Dockerfile
    fail_on_errors = _flag(evaluator, FAIL_ON_SUBSTITUTION_ERRORS)
    paths = _matches(context, patterns, evaluator, log)
    requested = _requested_output_encoding(evaluator, log) if paths else None
    for path in paths:
        content = _read(context, path)
        # Read as the server reads it: in the encoding its BOM names, else UTF-8, else
        # windows-1252.
        text, encoding = decode_text(content)
        try:
            rendering = evaluator.evaluate(text)
        except TemplateError as exc:
            raise SubstitutionFailed(f"{_rel(context, path)}: {exc}") from exc
        if rendering.error:
            # The server writes what it could evaluate and warns, or fails when asked to.
            problem = f"{_rel(context, path)}: {rendering.error}"
            if fail_on_errors:
                raise SubstitutionFailed(problem)
            log(f"warning: {problem}")
        rendered = rendering.text
        if (
            rendering.sensitive
            and dockerfile is not None
            and dockerfile.is_file()
            and inside(context, path).samefile(dockerfile)
        ):
            raise SensitiveValueInImage(
                f"{_rel(context, path)} is the Dockerfile and reads the sensitive variable(s) "
                f"{', '.join(sorted(rendering.sensitive))}: a value in it would be in the image "
                "config or history; keep it in the files the SDI copies",
            )
        # The server writes every file back, so what it read and cannot write as it was (a
        # byte a BOM's encoding could not read, say) changes even when nothing is replaced.
        try:
            written = server_bytes(rendered, encoding, requested)
        except StructuredError as exc:
            raise SubstitutionFailed(f"{_rel(context, path)}: {exc}") from exc
        if written != content:
            if requested is not None:  # what a new encoding adds beyond the rendering (x4)
                grown = len(written) - len(content) - max(len(rendered) - len(text), 0)
                try:
                    evaluator.budget.produce(max(grown, 0))
                except TemplateError as exc:
                    raise _over_budget(context, path, evaluator.budget, SubstitutionFailed) from exc
            _write(context, path, written)
            report.changed.add(_rel(context, path))
        log(f"substituted variables in {_rel(context, path)}")


def _requested_output_encoding(evaluator: Evaluator, log: Log) -> DotnetEncoding | None:
    """The encoding the server's output encoding variable names; None (each file keeps its
    own) when it is unset or names none .NET knows, as the server does."""
    try:
        name = evaluator.lookup(SUBSTITUTE_OUTPUT_ENCODING)
    except TemplateError as exc:
        raise SubstitutionFailed(f"variable {SUBSTITUTE_OUTPUT_ENCODING}: {exc}") from exc
    if name is None:
        return None
    if is_utf7(name):
        raise SubstitutionFailed(
            f"{SUBSTITUTE_OUTPUT_ENCODING} names UTF-7, which the server refuses to write",
        )
    encoding = dotnet_encoding(name)
    if encoding is None:
        log(
            f"warning: {SUBSTITUTE_OUTPUT_ENCODING} names no encoding this builder writes; "
            "files keep their own encoding, as the server does for a name it does not know"
        )
    return encoding


def _transforms(
    context: Path,
    features: Features,
    environment: str | None,
    tenant: str | None,
    evaluator: Evaluator,
    work: Work,
    report: FeatureReport,
    log: Log,
) -> set[str]:
    """The server's configuration transforms: every candidate file, each rule in turn
    (services.builder.features.transforms); a rule that finds nothing is logged. The
    transform files applied."""
    budget = evaluator.budget
    ignore_errors = _flag(evaluator, IGNORE_TRANSFORM_ERRORS)
    warnings_are_errors = _flag(evaluator, TRANSFORM_WARNINGS_ARE_ERRORS, default=True)
    applied: set[str] = set()
    try:
        explicit, automatic = transforms.rules(
            features.additional_transforms,
            automatic=features.dotnet_config_transforms,
            environment=environment,
            tenant=tenant,
        )
    except transforms.RuleError as exc:
        raise SdiInvalid(str(exc)) from exc
    for folder in transforms.named_folders(explicit):
        inside(context, context / folder)  # a folder a rule names may not be a link out
    candidates: dict[str, None] = {}
    for pattern in transforms.candidate_patterns(explicit, automatic=bool(automatic)):
        candidates.update((_rel(context, path), None) for path in files(context, f"**/{pattern}"))
    folders = transforms.PackageFolders(context, lambda path: inside(context, path))
    try:
        plan = transforms.plan(sorted(candidates), explicit, automatic, folders)
    except transforms.RuleError as exc:
        raise ConfigTransformFailed(str(exc)) from exc
    for rule in plan.unused:
        log(f"the transform rule {rule.text!r} matched no files")
    for transform_name, target_name in plan.pairs:
        transform, target = context / transform_name, context / target_name
        content = _read(context, target)

        def note(line: str, prefix: str = f"{transform_name} on {target_name}: ") -> None:
            log(prefix + line)

        try:
            transformed = apply_transform(
                content, _read(context, transform), max_growth=budget.characters, log=note,
                warnings_are_errors=warnings_are_errors and not ignore_errors, work=work,
            )  # fmt: skip
        except TransformError as exc:
            if ignore_errors and isinstance(exc, XmlInvalid):  # the server could not load it
                note(f"warning: {exc}")
                continue
            raise ConfigTransformFailed(f"{transform_name} on {target_name}: {exc}") from exc
        applied.add(transform_name)
        if transformed != content:
            _rewrite(context, target, content, transformed, budget, ConfigTransformFailed)
            report.changed.add(target_name)
        log(f"transformed {target_name} with {transform_name}")
    return applied


def run_features(
    context: Path,
    features: Features,
    variables: VariableSet,
    environment: str | None,
    tenant: str | None,
) -> FeatureRun:
    """``apply_features`` as data, for a child process."""
    lines: list[str] = []
    try:
        report = apply_features(
            context, features, variables, environment=environment, tenant=tenant, log=lines.append
        )
    except BuildError as exc:
        return FeatureRun(exc, [], lines)
    return FeatureRun(None, sorted(report.changed), lines)


def _flag(evaluator: Evaluator, name: str, *, default: bool = False) -> bool:
    """A flag variable read as the server reads one: ``true`` or ``false`` in any case, with
    blanks around it allowed; ``default`` for any other value, or none."""
    try:
        value = evaluator.lookup(name)
    except TemplateError as exc:
        raise SubstitutionFailed(f"variable {name}: {exc}") from exc
    word = (value or "").strip(" \t\r\n").lower()
    return {"true": True, "false": False}.get(word, default)
