"""Octostache filters: ``#{Name | Filter arg "another arg"}``, chainable, names
case-insensitive, each behaving as the deployment server's (Octostache on .NET, invariant
culture).

``apply_filter`` receives the value (None when the variable is not defined, or when the
previous filter gave nothing) and the arguments as Octostache tokenizes them. It returns the
result, or None where Octostache's function returns null: the evaluator then leaves the
expression as written. It raises

- FilterError for a filter Octostache does not have (also left as written);
- FilterFailed where Octostache's function throws (text that is not base64, a pattern that is
  not a regular expression, a version that cannot be parsed): the deployment server reports
  an error there rather than a value;
- ResultTooLarge when a result would grow past MAX_RESULT characters (``Replace``, ``Indent``,
  ``Append``, wide numeric precisions): the evaluator reports a spent budget.

Strings are measured as .NET measures them, in UTF-16 code units: ``Substring`` and
``Truncate`` count a character outside the Basic Multilingual Plane as two, and the escapes
that write ``\\uXXXX`` write it as its surrogate pair. A lone surrogate that such a cut leaves
is written as U+FFFD, as .NET's UTF-8 encoder writes it.

One module per concern: ``text``, ``patterns`` (Match, Replace), ``escapes``,
``encodings`` (base64, hashes), ``versions``, ``dates``, ``numbers``, ``formatting`` (Format),
``uris`` (UriPart) and ``markdown_html``; ``dotnet`` holds .NET's view of strings and numbers
they share, ``errors`` the errors and the bound.
"""

from __future__ import annotations

import re

from services.builder.features.filters import (
    dates,
    encodings,
    escapes,
    formatting,
    markdown_html,
    patterns,
    text,
    uris,
    versions,
)
from services.builder.features.filters.errors import (
    FilterError,
    FilterFailed,
    FilterFunction,
    ResultTooLarge,
)

MAX_RESULT = 64 * 1024 * 1024  # characters; the modules read it here at each check
# What a character of its input costs a filter, in characters of the evaluator's budget, where
# that is more than one: markdown-it does hundreds of times the work per character of the
# others (up to ~70 us on a run of ``![``), so a feature run's budget of characters bounds
# its Markdown too.
_READ_WEIGHT = {"markdown": 512, "markdowntohtml": 512}

__all__ = [
    "MAX_RESULT",
    "FilterError",
    "FilterFailed",
    "ResultTooLarge",
    "apply_filter",
    "read_cost",
]


def apply_filter(name: str, value: str | None, args: tuple[str, ...]) -> str | None:
    function = _FILTERS.get(name.lower())
    if function is None:
        raise FilterError(f"unknown filter {name!r}")
    try:
        return function(value, args)
    except FilterError:
        raise
    except (ValueError, IndexError, ArithmeticError, re.error) as exc:
        raise FilterFailed(f"{name}: {exc}") from exc


def read_cost(name: str, value: str | None, args: tuple[str, ...] = ()) -> int:
    """What applying the filter ``name`` to ``value`` and ``args`` reads, weighted by its
    work per character: the evaluator charges it to its budget before the filter runs."""
    weight = _READ_WEIGHT.get(name.lower(), 1)
    return weight * len(value or "") + sum(map(len, args))


_FILTERS: dict[str, FilterFunction] = {
    "tolower": text.to_lower,
    "toupper": text.to_upper,
    "tobase64": encodings.to_base64,
    "frombase64": encodings.from_base64,
    "htmlescape": escapes.html_escape,
    "uriescape": escapes.uri_escape,
    "uridataescape": escapes.uri_data_escape,
    "xmlescape": escapes.xml_escape,
    "jsonescape": escapes.json_escape,
    "yamlsinglequoteescape": escapes.yaml_single_quote_escape,
    "yamldoublequoteescape": escapes.yaml_double_quote_escape,
    "propertieskeyescape": escapes.properties_key_escape,
    "propertiesvalueescape": escapes.properties_value_escape,
    "markdown": markdown_html.markdown_to_html,
    "markdowntohtml": markdown_html.markdown_to_html,
    "nowdate": dates.now_date(utc=False),
    "nowdateutc": dates.now_date(utc=True),
    "addseconds": dates.add_duration(dates.TICKS_PER_SECOND),
    "addminutes": dates.add_duration(60 * dates.TICKS_PER_SECOND),
    "addhours": dates.add_duration(3600 * dates.TICKS_PER_SECOND),
    "adddays": dates.add_duration(dates.TICKS_PER_DAY),
    "addweeks": dates.add_duration(dates.TICKS_PER_DAY, factor=7),
    "addmonths": dates.add_months,
    "addtimespan": dates.add_time_span,
    "format": formatting.format_filter,
    "match": patterns.match,
    "replace": patterns.replace,
    "startswith": text.comparison(str.startswith),
    "endswith": text.comparison(str.endswith),
    "contains": text.comparison(lambda value, part: part in value),
    "substring": text.substring,
    "truncate": text.truncate,
    "trim": text.trim,
    "indent": text.indent,
    "uripart": uris.uri_part,
    "versionmajor": versions.version_part("major"),
    "versionminor": versions.version_part("minor"),
    "versionpatch": versions.version_part("patch"),
    "versionrevision": versions.version_part("revision"),
    "versionprerelease": versions.version_part("prerelease"),
    "versionprereleaseprefix": versions.version_part("prereleaseprefix"),
    "versionprereleasecounter": versions.version_part("prereleasecounter"),
    "versionmetadata": versions.version_part("buildmetadata"),
    "append": text.append,
    "prepend": text.prepend,
    "md5": encodings.hash_filter("md5"),
    "sha1": encodings.hash_filter("sha1"),
    "sha256": encodings.hash_filter("sha256"),
    "sha384": encodings.hash_filter("sha384"),
    "sha512": encodings.hash_filter("sha512"),
    "null": text.null,
}
