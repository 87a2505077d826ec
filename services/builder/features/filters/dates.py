""".NET dates: DateTime.TryParse and DateTimeOffset.TryParse in the invariant culture,
DateTime.ToString's standard and custom formats, and the filters NowDate, NowDateUtc,
AddSeconds ... AddWeeks, AddMonths and AddTimeSpan.

``now`` and ``local_offset`` are the clock and the build host's zone: tests replace them."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from services.builder.features.filters.dotnet import DOTNET_WHITESPACE, dotnet_double, dotnet_int
from services.builder.features.filters.errors import FilterFailed, FilterFunction

TICKS_PER_SECOND = 10_000_000
TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
_MAX_TICKS = 3_155_378_975_999_999_999  # 9999-12-31T23:59:59.9999999
_EPOCH = dt.datetime(1, 1, 1)


@dataclass(frozen=True, slots=True)
class Moment:
    """A .NET DateTime or DateTimeOffset: wall-clock ticks since 0001-01-01 and what the
    wall clock is. ``kind`` is "unspecified", "utc" or "local" for a DateTime, "offset" for a
    DateTimeOffset (``offset`` minutes from UTC)."""

    ticks: int
    kind: str
    offset: int = 0

    @property
    def wall(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self.ticks // 10)

    def shifted(self, ticks: int) -> Moment:
        moved = self.ticks + ticks
        if not 0 <= moved <= _MAX_TICKS:
            raise OverflowError("the date is out of range")
        return replace(self, ticks=moved)


def _ticks(wall: dt.datetime, extra: int = 0) -> int:
    delta = wall - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * TICKS_PER_SECOND + delta.microseconds * 10 + extra


def local_offset(wall: dt.datetime) -> int:
    """Minutes the local time zone is ahead of UTC at the local wall-clock time ``wall``."""
    try:
        aware = wall.astimezone()
    except (OverflowError, ValueError, OSError):
        aware = dt.datetime.now().astimezone()
    offset = aware.utcoffset()
    assert offset is not None
    return int(offset.total_seconds() // 60)


def now() -> dt.datetime:
    """The current UTC time (a seam for tests)."""
    return dt.datetime.now(dt.UTC)


def _now_moment(utc: bool) -> Moment:
    current = now()
    if utc:
        return Moment(_ticks(current.replace(tzinfo=None)), "utc")
    offset = local_offset(current.replace(tzinfo=None))
    local = current.replace(tzinfo=None) + dt.timedelta(minutes=offset)
    return Moment(_ticks(local), "unspecified")


_MONTHS = [calendar.month_name[i] for i in range(1, 13)]  # the invariant culture's names
_MONTHS_ABBR = [calendar.month_abbr[i] for i in range(1, 13)]
_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_DAYS_ABBR = [day[:3] for day in _DAYS]
_MONTH_NUMBERS = {
    **{name.lower(): i + 1 for i, name in enumerate(_MONTHS)},
    **{name.lower(): i + 1 for i, name in enumerate(_MONTHS_ABBR)},
    "sept": 9,
}
_DAY_NUMBERS = {
    **{name.lower(): i for i, name in enumerate(_DAYS)},
    **{name.lower(): i for i, name in enumerate(_DAYS_ABBR)},
}
_TIME = re.compile(
    r"(?P<hour>\d{1,2})(?::(?P<minute>\d{1,2})(?::(?P<second>\d{1,2})"
    r"(?:\.(?P<fraction>\d{1,7})\d*)?)?)?\s*(?P<ampm>[AaPp][Mm])?"
)
_ZONE = re.compile(r"(?P<z>Z|GMT|UTC)|(?P<sign>[+-])(?P<hh>\d{1,2})(?::?(?P<mm>\d{2}))?", re.I)


@dataclass(frozen=True, slots=True)
class _Written:
    """What DateTime.TryParse read: the wall clock as written and the zone, if any."""

    wall_ticks: int
    zone: int | None  # minutes ahead of UTC; None when the text names no zone
    utc: bool  # written with Z or GMT


def _parse_written(text: str) -> _Written | None:
    """The forms DateTime.TryParse reads in the invariant culture: ISO 8601, year/month/day,
    month/day/year, day or month names (``22 May 2030``, ``May 22, 2030``, an optional
    weekday that has to be right), an optional time (``9:05``, ``09:05:00.1234567``,
    ``9:05 PM``) and zone (``Z``, ``GMT``, ``+02:00``). A time alone is today's."""
    rest = text.strip(DOTNET_WHITESPACE)
    if not rest or len(rest) > 200:
        return None
    date, rest = _take_date(rest)
    rest = rest.lstrip(" ,")
    if rest[:1] in ("T", "t") and date is not None:
        rest = rest[1:]
    hour = minute = second = fraction = 0
    time_given = False
    match = _TIME.match(rest)
    if match is not None and (match.group("minute") or match.group("ampm")):
        time_given = True
        hour, minute = int(match.group("hour")), int(match.group("minute") or 0)
        second = int(match.group("second") or 0)
        fraction = int((match.group("fraction") or "").ljust(7, "0"))
        ampm = (match.group("ampm") or "").upper()
        if ampm:
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if ampm == "PM" else 0)
        rest = rest[match.end() :].lstrip()
    zone: int | None = None
    utc = False
    zone_match = _ZONE.match(rest)
    if zone_match is not None and (time_given or date is not None):
        if zone_match.group("z"):
            zone, utc = 0, True
        else:
            hours, minutes = int(zone_match.group("hh")), int(zone_match.group("mm") or 0)
            if hours > 14 or minutes > 59:
                return None
            zone = (hours * 60 + minutes) * (-1 if zone_match.group("sign") == "-" else 1)
        rest = rest[zone_match.end() :].strip()
    if rest or (date is None and not time_given):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    if date is None:
        date = _local_today()
    wall = dt.datetime(date.year, date.month, date.day, hour, minute, second)
    return _Written(_ticks(wall) + fraction, zone, utc)


def _take_date(text: str) -> tuple[dt.date | None, str]:
    """A date at the start of ``text`` and what follows it."""
    weekday: int | None = None
    words = re.match(r"([A-Za-z]+)\.?,?\s*", text)
    if words is not None and words.group(1).lower() in _DAY_NUMBERS:
        weekday = _DAY_NUMBERS[words.group(1).lower()]
        text = text[words.end() :]
    found = _date_forms(text)
    if found is None:
        return None, text
    (year, month, day), rest = found
    try:
        date = dt.date(year, month, day)
    except ValueError:
        return None, "!"  # a date that does not exist: nothing can parse
    if weekday is not None and (date.weekday() + 1) % 7 != weekday:
        return None, "!"
    return date, rest


def _date_forms(text: str) -> tuple[tuple[int, int, int], str] | None:
    """The numbers and month name at the start of ``text`` as year, month and day, in the
    order the invariant culture reads them (its patterns are month-day and year-month):
    a missing day is the first, a missing year this year's. A number of three or four digits
    is a year; ``22 May`` reads as May 2022, as .NET reads it."""
    for pattern, order in _DATE_FORMS:
        match = pattern.match(text)
        if match is None:
            continue
        parts = dict(zip(order, match.groups(), strict=True))
        month = parts["m"]
        if not month.isdigit():
            if month.lower() not in _MONTH_NUMBERS:
                continue
            month = str(_MONTH_NUMBERS[month.lower()])
        year = _full_year(parts["y"]) if "y" in parts else _local_today().year
        day = int(parts.get("d", "1"))
        return (year, int(month), day), text[match.end() :]
    return None


_NAME = r"([A-Za-z]+)\.?"
_APART = r"[\s\-/.,]*"
_END = r"(?![\d:/.\-])"
_DATE_FORMS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\d{4})([-/.])(\d{1,2})\2(\d{1,2})" + _END), "y-md"),
    (re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(\d{4}|\d{2})" + _END), "m-dy"),
    (re.compile(r"(\d{1,2})" + _APART + _NAME + _APART + r"(\d{4}|\d{2})" + _END), "dmy"),
    (re.compile(_NAME + _APART + r"(\d{1,2})(?:st|nd|rd|th)?" + _APART + r"(\d{4})" + _END), "mdy"),
    (re.compile(_NAME + _APART + r"(\d{3,4})" + _END), "my"),
    (re.compile(r"(\d{3,4})" + _APART + _NAME + _END), "ym"),
    (re.compile(_NAME + _APART + r"(\d{1,2})" + _END), "md"),
    (re.compile(r"(\d{1,2})" + _APART + _NAME + r"(?![A-Za-z])"), "ym"),
    (re.compile(r"(\d{4})[-/.](\d{1,2})" + _END), "ym"),
    (re.compile(r"(\d{1,2})[-/.](\d{4})" + _END), "my"),
    (re.compile(r"(\d{1,2})[-/.](\d{1,2})" + _END), "md"),
]


def _local_today() -> dt.date:
    offset = dt.timedelta(minutes=local_offset(dt.datetime.now()))
    return (now().replace(tzinfo=None) + offset).date()


def _full_year(digits: str) -> int:
    """Two digits as the invariant calendar reads them: up to 49 is 20xx."""
    year = int(digits)
    if len(digits) <= 2:
        year += 2000 if year <= 49 else 1900
    return year


def parse_datetime(text: str, roundtrip: bool = False) -> Moment | None:
    """``DateTime.TryParse``: a zone moves the time to local time (kind local); with
    ``roundtrip`` (DateTimeStyles.RoundtripKind) a ``Z`` keeps it UTC."""
    written = _parse_written(text)
    if written is None:
        return None
    if written.zone is None:
        return Moment(written.wall_ticks, "unspecified")
    if roundtrip and written.utc:
        return Moment(written.wall_ticks, "utc")
    utc_ticks = written.wall_ticks - written.zone * 60 * TICKS_PER_SECOND
    utc_wall = _EPOCH + dt.timedelta(microseconds=utc_ticks // 10)
    offset = local_offset(utc_wall + dt.timedelta(minutes=local_offset(utc_wall)))
    local = utc_ticks + offset * 60 * TICKS_PER_SECOND
    return Moment(local, "local", offset) if 0 <= local <= _MAX_TICKS else None


def parse_datetime_offset(text: str) -> Moment | None:
    """``DateTimeOffset.TryParse``: no zone written means the local zone."""
    written = _parse_written(text)
    if written is None:
        return None
    if written.zone is None:
        wall = _EPOCH + dt.timedelta(microseconds=written.wall_ticks // 10)
        return Moment(written.wall_ticks, "offset", local_offset(wall))
    return Moment(written.wall_ticks, "offset", written.zone)


def _moment_offset(moment: Moment) -> int:
    """The minutes ``z``, ``zz`` and ``zzz`` write."""
    if moment.kind == "offset":
        return moment.offset
    if moment.kind == "utc":
        return 0
    return local_offset(moment.wall)


def _to_utc(moment: Moment) -> Moment:
    if moment.kind == "utc":
        return moment
    offset = moment.offset if moment.kind == "offset" else local_offset(moment.wall)
    return Moment(moment.ticks - offset * 60 * TICKS_PER_SECOND, "utc")


def _offset_text(minutes: int, width: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    if width == 1:
        return f"{sign}{hours}"
    if width == 2:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}:{rest:02d}"


_STANDARD_DATE_FORMATS = {
    "d": "MM/dd/yyyy",
    "D": "dddd, dd MMMM yyyy",
    "f": "dddd, dd MMMM yyyy HH:mm",
    "F": "dddd, dd MMMM yyyy HH:mm:ss",
    "g": "MM/dd/yyyy HH:mm",
    "G": "MM/dd/yyyy HH:mm:ss",
    "m": "MMMM dd",
    "M": "MMMM dd",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "t": "HH:mm",
    "T": "HH:mm:ss",
    "y": "yyyy MMMM",
    "Y": "yyyy MMMM",
}


def format_moment(moment: Moment, spec: str) -> str:
    """``DateTime.ToString(spec)`` / ``DateTimeOffset.ToString(spec)``, invariant culture.
    ValueError where .NET throws a FormatException."""
    if spec == "":
        spec = "G"
    if len(spec) == 1:
        if spec in "oO":
            zone = "zzz" if moment.kind == "offset" else "K"
            return _custom_date(moment, f"yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffff{zone}")
        if spec in "rR":
            moment = _to_utc(moment) if moment.kind == "offset" else moment
            return _custom_date(moment, "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'")
        if spec == "u":
            moment = _to_utc(moment) if moment.kind == "offset" else moment
            return _custom_date(moment, "yyyy'-'MM'-'dd HH':'mm':'ss'Z'")
        if spec == "U":
            if moment.kind == "offset":
                raise ValueError("'U' is not a DateTimeOffset format")
            return _custom_date(_to_utc(moment), _STANDARD_DATE_FORMATS["F"])
        if spec not in _STANDARD_DATE_FORMATS:
            raise ValueError(f"{spec!r} is not a date format")
        return _custom_date(moment, _STANDARD_DATE_FORMATS[spec])
    return _custom_date(moment, spec)


_DATE_SPECIFIERS = "dfFghHKmMstyz:/"


def _custom_date(moment: Moment, spec: str) -> str:
    wall = moment.wall
    fraction = f"{moment.ticks % TICKS_PER_SECOND:07d}"
    out: list[str] = []
    position = 0
    while position < len(spec):
        char = spec[position]
        run = 1
        while position + run < len(spec) and spec[position + run] == char:
            run += 1
        if char in "'\"":
            end = spec.find(char, position + 1)
            while end > 0 and spec[end - 1] == "\\" and _escaped(spec, end):
                end = spec.find(char, end + 1)
            if end < 0:
                raise ValueError("an unclosed quote in the format")
            out.append(re.sub(r"\\(.)", r"\1", spec[position + 1 : end]))
            position = end + 1
            continue
        if char == "%":
            following = spec[position + 1 : position + 2]
            if following in ("", "%"):
                raise ValueError("'%' needs a specifier after it")
            if following in _DATE_SPECIFIERS:
                out.append(_date_token(moment, wall, fraction, following, 1, out))
            else:
                out.append(following)
            position += 2
            continue
        if char == "\\":
            if position + 1 >= len(spec):
                raise ValueError("a trailing '\\' in the format")
            out.append(spec[position + 1])
            position += 2
            continue
        if char in _DATE_SPECIFIERS:
            out.append(_date_token(moment, wall, fraction, char, run, out))
        else:
            out.append(char * run)
        position += run
    return "".join(out)


def _escaped(spec: str, at: int) -> bool:
    slashes = len(spec[:at]) - len(spec[:at].rstrip("\\"))
    return slashes % 2 == 1


def _date_token(
    moment: Moment, wall: dt.datetime, fraction: str, char: str, run: int, out: list[str]
) -> str:
    if char == "d":
        if run == 1:
            return str(wall.day)
        if run == 2:
            return f"{wall.day:02d}"
        weekday = (wall.weekday() + 1) % 7
        return _DAYS_ABBR[weekday] if run == 3 else _DAYS[weekday]
    if char in "fF":
        if run > 7:
            raise ValueError("more than seven fraction digits")
        digits = fraction[:run]
        if char == "F":
            digits = digits.rstrip("0")
            if not digits and out and out[-1].endswith("."):
                out[-1] = out[-1][:-1]
        return digits
    if char == "g":
        return "A.D."
    if char == "h":
        hour = wall.hour % 12 or 12
        return str(hour) if run == 1 else f"{hour:02d}"
    if char == "H":
        return str(wall.hour) if run == 1 else f"{wall.hour:02d}"
    if char == "K":
        if moment.kind == "utc":
            return "Z" * run
        if moment.kind == "unspecified":
            return ""
        return _offset_text(_moment_offset(moment), 3) * run
    if char == "m":
        return str(wall.minute) if run == 1 else f"{wall.minute:02d}"
    if char == "M":
        if run == 1:
            return str(wall.month)
        if run == 2:
            return f"{wall.month:02d}"
        return _MONTHS_ABBR[wall.month - 1] if run == 3 else _MONTHS[wall.month - 1]
    if char == "s":
        return str(wall.second) if run == 1 else f"{wall.second:02d}"
    if char == "t":
        designator = "AM" if wall.hour < 12 else "PM"
        return designator[0] if run == 1 else designator
    if char == "y":
        if run == 1:
            return str(wall.year % 100)
        if run == 2:
            return f"{wall.year % 100:02d}"
        return f"{wall.year:0{run}d}"
    if char == "z":
        return _offset_text(_moment_offset(moment), min(run, 3))
    return char * run  # ':' and '/': the invariant culture's separators


def now_date(utc: bool) -> FilterFunction:
    """``NowDate`` / ``NowDateUtc``, optionally with a format; it reads no value."""

    def now_date(value: str | None, args: tuple[str, ...]) -> str | None:
        if value is not None or len(args) > 1:
            return None
        try:
            return format_moment(_now_moment(utc), args[0] if args else "O")
        except ValueError as exc:
            raise FilterFailed(str(exc)) from exc

    return now_date


def _shift(value: str | None, ticks: Callable[[Moment], int | None]) -> str | None:
    if value is None:
        return None
    moment = parse_datetime(value, roundtrip=True)
    if moment is None or moment.kind == "local":
        moment = parse_datetime_offset(value)
    if moment is None:
        return None
    try:
        amount = ticks(moment)
        if amount is None:
            return None
        return format_moment(moment.shifted(amount), "O")
    except (OverflowError, ValueError):
        return None


def add_duration(unit_ticks: int, factor: int = 1) -> FilterFunction:
    """``AddHours 1.5``: any double; the ticks it comes to are truncated, as TimeSpan does."""

    def add(value: str | None, args: tuple[str, ...]) -> str | None:
        amount = dotnet_double(args[0]) if len(args) == 1 else None
        if amount is None:
            return None
        ticks = amount * factor * unit_ticks
        if not -(2**63) <= ticks < 2**63:
            return None
        return _shift(value, lambda _: int(ticks))

    return add


def add_months(value: str | None, args: tuple[str, ...]) -> str | None:
    months = dotnet_int(args[0]) if len(args) == 1 else None
    if months is None:
        return None

    def ticks(moment: Moment) -> int | None:
        if not -120_000 <= months <= 120_000:
            return None
        wall = moment.wall
        index = wall.year * 12 + wall.month - 1 + months
        year, month = divmod(index, 12)
        if not 1 <= year <= 9999:
            return None
        day = min(wall.day, calendar.monthrange(year, month + 1)[1])
        moved = wall.replace(year=year, month=month + 1, day=day)
        return _ticks(moved) - _ticks(wall)

    return _shift(value, ticks)


_TIME_SPAN = re.compile(r"[ \t\n\v\f\r]*(-?)([0-9.:]+)[ \t\n\v\f\r]*")
# The separators between the numbers of a TimeSpan, and what the numbers are.
_TIME_SPAN_FORMS = {
    "": ("d",),
    ":": ("h", "m"),
    "::": ("h", "m", "s"),
    ".:": ("d", "h", "m"),
    ".::": ("d", "h", "m", "s"),
    "::.": ("h", "m", "s", "f"),
    ".::.": ("d", "h", "m", "s", "f"),
    ":::": ("d", "h", "m", "s"),
    ":::.": ("d", "h", "m", "s", "f"),
}


def _time_span(text: str) -> int | None:
    """``TimeSpan.TryParse`` (invariant): ``d``, ``h:m``, ``h:m:s``, ``d.h:m[:s[.f]]``,
    ``h:m:s.f``, ``d:h:m:s[.f]``; ``a:b:c`` with ``a`` above 23 is days, hours and
    minutes."""
    match = _TIME_SPAN.fullmatch(text)
    if match is None:
        return None
    numbers = re.split(r"[.:]", match.group(2))
    separators = "".join(re.findall(r"[.:]", match.group(2)))
    form = _TIME_SPAN_FORMS.get(separators)
    if form is None or not all(n.isascii() and n.isdigit() and len(n) <= 10 for n in numbers):
        return None
    parts = dict(zip(form, numbers, strict=True))
    if len(parts.get("f", "")) > 7:
        return None
    if separators == "::" and int(parts["h"]) > 23:
        parts = {"d": parts["h"], "h": parts["m"], "m": parts["s"]}
    days, hours = int(parts.get("d", 0)), int(parts.get("h", 0))
    minutes, seconds = int(parts.get("m", 0)), int(parts.get("s", 0))
    if hours > 23 or minutes > 59 or seconds > 59 or days > 10_675_199:
        return None
    fraction = int(parts.get("f", "").ljust(7, "0"))
    total = (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * TICKS_PER_SECOND + fraction
    return -total if match.group(1) else total


def add_time_span(value: str | None, args: tuple[str, ...]) -> str | None:
    span = _time_span(args[0]) if len(args) == 1 else None
    if span is None:
        return None
    return _shift(value, lambda _: span)
