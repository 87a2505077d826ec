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

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from services.builder.archives import ArchiveError, safe_relative
from services.builder.features.dotnet_config import replace_config_variables
from services.builder.features.octostache import Budget, Evaluator, TemplateError
from services.builder.features.structured import StructuredError, replace_structured
from services.builder.features.variables import VariableSet
from services.builder.features.xdt import TransformError, apply_transform
from services.builder.sdi import Features
from services.builder.tree import files, inside

Log = Callable[[str], None]
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


class FeatureError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class FeatureReport:
    changed: set[str] = field(default_factory=set)


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
    names = [variable.name for variable in variables]

    def lookup(name: str) -> str | None:
        try:
            return evaluator.lookup(name)
        except TemplateError as exc:
            raise FeatureError("substitution_failed", f"variable {name}: {exc}") from exc

    if features.substitute_in_files:
        _substitute(context, features.substitute_in_files, evaluator, report, log)
    if features.dotnet_config_transforms or features.additional_transforms:
        _transforms(context, features, environment, tenant, budget, report, log)
    if features.dotnet_config_variables:
        for path in _files(context, "**/*.config"):
            content = _read(context, path)
            try:
                updated, replaced = replace_config_variables(
                    content, names, lookup, max_growth=budget.characters
                )
            except TransformError as exc:
                raise FeatureError(
                    "config_variables_failed", f"{_rel(context, path)}: {exc}"
                ) from exc
            if replaced:
                _rewrite(context, path, content, updated, budget, "config_variables_failed")
                report.changed.add(_rel(context, path))
                log(f"config variables: {len(replaced)} setting(s) in {_rel(context, path)}")
    if features.structured_variables:
        for path in _matches(context, features.structured_variables, evaluator, log):
            content = _read(context, path)
            try:
                updated, replacements = replace_structured(path.name, content, names, lookup)
            except StructuredError as exc:
                raise FeatureError(
                    "structured_variables_failed", f"{_rel(context, path)}: {exc}"
                ) from exc
            if replacements:
                _rewrite(context, path, content, updated, budget, "structured_variables_failed")
                report.changed.add(_rel(context, path))
            log(f"structured variables: {len(replacements)} value(s) in {_rel(context, path)}")
    return report


def _rel(context: Path, path: Path) -> str:
    return path.relative_to(context).as_posix()


# Every file the features find, read or write goes through these: resolved beneath the
# context, never followed out of it, whatever links the tenant's archives made.


def _files(context: Path, pattern: str) -> list[Path]:
    try:
        return files(context, pattern)
    except ArchiveError as exc:
        raise FeatureError(exc.code, str(exc)) from exc


def _inside(context: Path, path: Path) -> Path:
    try:
        return inside(context, path)
    except ArchiveError as exc:
        raise FeatureError(exc.code, str(exc)) from exc


def _read(context: Path, path: Path) -> bytes:
    return _inside(context, path).read_bytes()


def _write(context: Path, path: Path, content: bytes) -> None:
    _inside(context, path).write_bytes(content)


def _rewrite(context: Path, path: Path, old: bytes, new: bytes, budget: Budget, code: str) -> None:
    """``new`` written over ``old``; what it adds spends the feature run's budget first."""
    try:
        budget.produce(max(len(new) - len(old), 0))
    except TemplateError as exc:
        raise FeatureError(
            code,
            f"{_rel(context, path)}: the configuration features would add more than their "
            f"budget of {budget.characters_limit} characters to the files",
        ) from exc
    _write(context, path, new)


def _is_file(context: Path, path: Path) -> bool:
    return _inside(context, path).is_file()


def _matches(
    context: Path, patterns: tuple[str, ...], evaluator: Evaluator, log: Log
) -> list[Path]:
    """Regular files matching any pattern (patterns may hold ``#{}``), once each (a file
    reached by two names too), sorted."""
    found: dict[Path, Path] = {}  # real path -> the first name found for it
    for pattern in patterns:
        try:
            concrete = safe_relative(evaluator.render(pattern), what="file pattern")
        except (ArchiveError, TemplateError) as exc:
            raise FeatureError("sdi_invalid", f"file pattern {pattern!r}: {exc}") from exc
        matched = _files(context, concrete)
        if not matched:
            log(f"no files match {pattern!r}")
        for path in matched:
            found.setdefault(_inside(context, path), path)
    return sorted(found.values(), key=lambda path: _rel(context, path))


def _substitute(
    context: Path, patterns: tuple[str, ...], evaluator: Evaluator, report: FeatureReport, log: Log
) -> None:
    """Render the matched files. The Dockerfile (by whatever name, or link, it is reached)
    becomes image config and history: rendering it may read no sensitive variable, however
    indirectly, since a filter (``ToBase64``, ``Substring``) or a condition would carry the
    value, or part of it, past the check of the final config."""
    try:
        dockerfile: Path | None = _inside(context, context / "Dockerfile")
    except FeatureError:
        dockerfile = None  # a link out of the context: the build refuses that Dockerfile
    for path in _matches(context, patterns, evaluator, log):
        content = _read(context, path)
        bom, encoding = next(((b, e) for b, e in _BOMS if content.startswith(b)), (b"", "utf-8"))
        try:
            text = content[len(bom) :].decode(encoding)
        except UnicodeDecodeError as exc:
            raise FeatureError(
                "substitution_failed", f"{_rel(context, path)} is not {encoding} text"
            ) from exc
        try:
            rendering = evaluator.evaluate(text)
        except TemplateError as exc:
            raise FeatureError("substitution_failed", f"{_rel(context, path)}: {exc}") from exc
        rendered = rendering.text
        if (
            rendering.sensitive
            and dockerfile is not None
            and dockerfile.is_file()
            and _inside(context, path).samefile(dockerfile)
        ):
            raise FeatureError(
                "sensitive_value_in_image",
                f"{_rel(context, path)} is the Dockerfile and reads the sensitive variable(s) "
                f"{', '.join(sorted(rendering.sensitive))}: a value in it would be in the image "
                "config or history; keep it in the files the SDI copies",
            )
        if rendered != text:
            _write(context, path, bom + rendered.encode(encoding))
            report.changed.add(_rel(context, path))
        log(f"substituted variables in {_rel(context, path)}")


def _transforms(
    context: Path,
    features: Features,
    environment: str | None,
    tenant: str | None,
    budget: Budget,
    report: FeatureReport,
    log: Log,
) -> None:
    pairs: list[tuple[Path, Path]] = []
    if features.dotnet_config_transforms:
        for target in _files(context, "**/*.config"):
            if _is_transform_file(context, target):
                continue
            for middle in ("Release", environment, tenant):
                if middle:
                    transform = _sibling(context, target, f"{target.stem}.{middle}{target.suffix}")
                    if transform is not None:
                        pairs.append((transform, target))
    for rule in features.additional_transforms:
        pairs.extend(_additional(context, rule))
    for transform, target in pairs:
        content = _read(context, target)
        try:
            transformed = apply_transform(
                content, _read(context, transform), max_growth=budget.characters
            )
        except TransformError as exc:
            raise FeatureError(
                "config_transform_failed",
                f"{_rel(context, transform)} on {_rel(context, target)}: {exc}",
            ) from exc
        _rewrite(context, target, content, transformed, budget, "config_transform_failed")
        report.changed.add(_rel(context, target))
        log(f"transformed {_rel(context, target)} with {_rel(context, transform)}")


def _is_transform_file(context: Path, path: Path) -> bool:
    """``Web.Release.config`` is a transform of ``Web.config`` when that file exists."""
    parts = path.name.split(".")
    return len(parts) >= 3 and _sibling(context, path, ".".join([parts[0], *parts[2:]])) is not None


def _sibling(context: Path, path: Path, name: str) -> Path | None:
    """The file named ``name`` beside ``path``, matched case-insensitively."""
    lowered = name.lower()
    folder = path.parent
    return next(
        (
            folder / entry.name
            for entry in _inside(context, folder).iterdir()
            if entry.name.lower() == lowered and _is_file(context, folder / entry.name)
        ),
        None,
    )


def _additional(context: Path, rule: str) -> list[tuple[Path, Path]]:
    """``Transform.config => Target.config`` (paths relative to the context, a wildcard
    allowed on the left); ``X.Custom.config`` alone transforms ``X.config`` beside it."""
    left, arrow, right = rule.partition("=>")
    try:
        left_path = safe_relative(left.strip(), what="transform")
        right_path = safe_relative(right.strip(), what="transform target") if arrow else None
    except ArchiveError as exc:
        raise FeatureError("sdi_invalid", str(exc)) from exc
    transforms = _files(context, left_path)
    if not transforms:
        raise FeatureError("config_transform_failed", f"no transform file matches {left.strip()!r}")
    pairs = []
    for transform in transforms:
        if right_path is not None:  # a bare name is beside the transform, a path from the root
            target = context / right_path if "/" in right_path else transform.parent / right_path
        else:
            base = re.sub(r"^([^.]+)\.[^.]+(\..+)$", r"\1\2", transform.name)
            target = transform.parent / base
        if not _is_file(context, target):
            raise FeatureError(
                "config_transform_failed", f"the target of {rule.strip()!r} does not exist"
            )
        pairs.append((transform, target))
    return pairs


def run_features(
    context: Path,
    features: Features,
    variables: VariableSet,
    environment: str | None,
    tenant: str | None,
) -> tuple[str, str, str, list[str], list[str]]:
    """``apply_features`` as data, for a child process: (outcome, code, message, changed
    files, log lines), outcome "ok" or "failed"."""
    lines: list[str] = []
    try:
        report = apply_features(
            context, features, variables, environment=environment, tenant=tenant, log=lines.append
        )
    except FeatureError as exc:
        return "failed", exc.code, str(exc), [], lines
    return "ok", "", "", sorted(report.changed), lines
