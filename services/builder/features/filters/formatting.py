"""The Format filter: a number or a date, as the type named (or guessed) reads it, in a
.NET format."""

from __future__ import annotations

from services.builder.features.filters.dates import (
    format_moment,
    parse_datetime,
    parse_datetime_offset,
)
from services.builder.features.filters.errors import ResultTooLarge
from services.builder.features.filters.numbers import as_number, format_number

_FORMAT_TYPES = {
    "int32": "int",
    "int": "int",
    "double": "double",
    "decimal": "decimal",
    "date": "datetime",
    "datetime": "datetime",
    "datetimeoffset": "datetimeoffset",
}


def format_filter(value: str | None, args: tuple[str, ...]) -> str | None:
    """``Format spec`` reads the value as a decimal, else as a DateTimeOffset;
    ``Format Type spec`` as that type (Int, Int32, Double, Decimal, Date, DateTime,
    DateTimeOffset). What does not read as the type, or a spec .NET refuses, gives nothing."""
    if value is None or not args or len(args) > 2:
        return None
    try:
        if len(args) == 1:
            number = as_number("decimal", value)
            if number is not None:
                return format_number(number, args[0])
            moment = parse_datetime_offset(value)
            return None if moment is None else format_moment(moment, args[0])
        kind = _FORMAT_TYPES.get(args[0].lower())
        if kind in ("int", "double", "decimal"):
            number = as_number(kind, value)
            return None if number is None else format_number(number, args[1])
        if kind == "datetime":
            moment = parse_datetime(value)
            return None if moment is None else format_moment(moment, args[1])
        if kind == "datetimeoffset":
            moment = parse_datetime_offset(value)
            return None if moment is None else format_moment(moment, args[1])
        return None
    except ResultTooLarge:
        raise
    except ValueError:  # .NET's FormatException: Octostache catches it
        return None
