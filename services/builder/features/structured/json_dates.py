"""Date strings in JSON, as the server's JSON library reads and writes them.

The library's reader turns a string value into a date when it is an ISO 8601 date and time
(19 to 40 characters, a digit first and ``T`` eleventh: ``yyyy-MM-ddTHH:mm:ss``, then an
optional fraction and zone) or a Microsoft JSON date (``/Date(ticks)/``,
``/Date(ticks+hhmm)/``). Its writer then writes the date back in its own ISO format:
``yyyy-MM-ddTHH:mm:ss``, the fraction to seven digits with trailing zeros dropped, then ``Z``
for a UTC date, the local offset for a local one, nothing for one without a zone. A date
with an offset is converted to local time. The local time zone is the server's; we take it
to be UTC, so such a date is written in UTC with ``+00:00``.

The parsing follows the library's character by character, quirks included (a fraction of
more than seven digits is cut at seven, and two further digits read as zone minutes).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

from services.builder.features.structured.common import StructuredError

_TICKS_PER_SECOND = 10_000_000
_TICKS_PER_DAY = 86_400 * _TICKS_PER_SECOND
_MAX_TICKS = 3_155_378_975_999_999_999  # 9999-12-31T23:59:59.9999999
_UNIX_EPOCH_TICKS = 621_355_968_000_000_000
_MICROSOFT_DATE = re.compile(r"/Date\((.*)\)/\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class JsonDate:
    """A string the server reads as a date, with the text its writer writes for it."""

    text: str


def parse_date(value: str) -> JsonDate | None:
    """The date ``value`` is to the server's reader, or None when it is just a string."""
    if value.startswith("/"):
        if len(value) >= 9 and _MICROSOFT_DATE.match(value):
            return _microsoft(value)
        return None
    if 19 <= len(value) <= 40 and value[0].isdigit() and value[10] == "T":
        return _Iso(value).parse()
    return None


def _write(ticks: int, kind: str) -> JsonDate:
    """A date as the writer writes it; ``kind`` is utc, local or unspecified."""
    days, rest = divmod(ticks, _TICKS_PER_DAY)
    seconds, fraction = divmod(rest, _TICKS_PER_SECOND)
    year, month, day = _civil(days)
    text = (
        f"{year:04d}-{month:02d}-{day:02d}T{seconds // 3600:02d}:"
        f"{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    )
    if fraction:
        text += "." + f"{fraction:07d}".rstrip("0")
    if kind == "utc":
        text += "Z"
    elif kind == "local":
        text += "+00:00"  # the server's offset from UTC, taken to be zero
    return JsonDate(text)


def _civil(days: int) -> tuple[int, int, int]:
    """The year, month and day ``days`` after 0001-01-01."""
    year = 1 + days * 400 // 146_097
    while _days_before(year + 1) <= days:
        year += 1
    while _days_before(year) > days:
        year -= 1
    days -= _days_before(year)
    month = 1
    while days >= calendar.monthrange(year, month)[1]:
        days -= calendar.monthrange(year, month)[1]
        month += 1
    return year, month, days + 1


def _days_before(year: int) -> int:
    previous = year - 1
    return previous * 365 + previous // 4 - previous // 100 + previous // 400


def _ticks(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    days = _days_before(year) + sum(calendar.monthrange(year, m)[1] for m in range(1, month))
    days += day - 1
    return (days * 86_400 + hour * 3600 + minute * 60 + second) * _TICKS_PER_SECOND


def _microsoft(value: str) -> JsonDate | None:
    inner = value[6:-2]
    sign_at = value.find("+", 7, len(value) - 1)
    if sign_at < 0:
        sign_at = value.find("-", 7, len(value) - 1)
    kind = "utc"
    if sign_at >= 0:
        kind = "local"
        hours = value[sign_at + 1 : sign_at + 3]
        if not re.fullmatch(r"[0-9]{2}", hours):
            return None
        minutes = value[sign_at + 3 : sign_at + 5]
        if len(value) - sign_at > 5 and not re.fullmatch(r"[0-9]{2}", minutes):
            return None
        inner = value[6:sign_at]
    if not re.fullmatch(r"-?[0-9]+", inner) or not -(2**63) <= int(inner) < 2**63:
        return None
    ticks = int(inner) * 10_000 + _UNIX_EPOCH_TICKS  # milliseconds since 1970, in UTC
    if not 0 <= ticks <= _MAX_TICKS:
        raise StructuredError("a date string in the file is outside the years 1 to 9999")
    return _write(ticks, kind)  # a local date is the same instant at offset zero


class _Iso:
    """The library's ISO 8601 parser, position by position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.end = len(text)

    def digits(self, start: int, count: int) -> int | None:
        if start + count - 1 >= self.end:
            return None
        chunk = self.text[start : start + count]
        return int(chunk) if all("0" <= c <= "9" for c in chunk) else None

    def char(self, start: int, expected: str) -> bool:
        return start < self.end and self.text[start] == expected

    def parse(self) -> JsonDate | None:
        year, month, day = self.digits(0, 4), self.digits(5, 2), self.digits(8, 2)
        if year is None or month is None or day is None or year < 1 or not 1 <= month <= 12:
            return None
        if not (self.char(4, "-") and self.char(7, "-") and self.char(10, "T")):
            return None
        if not 1 <= day <= calendar.monthrange(year, month)[1]:
            return None
        hour, minute, second = self.digits(11, 2), self.digits(14, 2), self.digits(17, 2)
        if hour is None or minute is None or second is None:
            return None
        if not (self.char(13, ":") and self.char(16, ":")) or hour > 24 or minute > 59:
            return None
        if second > 59 or (hour == 24 and (minute or second)):
            return None
        position, fraction = 19, 0
        if self.char(position, "."):
            count = 0
            position += 1
            while position < self.end and count < 7 and "0" <= self.text[position] <= "9":
                fraction = fraction * 10 + int(self.text[position])
                count += 1
                position += 1
            if count == 0:
                return None
            fraction *= 10 ** (7 - count)
            if hour == 24 and fraction:
                return None
        zone = self.zone(position)
        if zone is None:
            return None
        kind, offset_minutes = zone
        ticks = _ticks(year, month, day, 0 if hour == 24 else hour, minute, second) + fraction
        if hour == 24:
            ticks += _TICKS_PER_DAY
        if ticks > _MAX_TICKS:
            raise StructuredError("a date string in the file is outside the years 1 to 9999")
        if kind == "local":
            # To UTC, then to the local zone (UTC), clamped to the representable range.
            ticks = min(max(ticks - offset_minutes * 60 * _TICKS_PER_SECOND, 0), _MAX_TICKS)
        return _write(ticks, kind)

    def zone(self, start: int) -> tuple[str, int] | None:
        """The zone from ``start`` (kind, offset east of UTC in minutes), None when the
        text does not end there as the library requires."""
        kind, hours, minutes, sign = "unspecified", 0, 0, 0
        if start < self.end:
            char = self.text[start]
            if char in "zZ":
                kind = "utc"
                start += 1
            else:
                zone_hours = self.digits(start + 1, 2) if start + 2 < self.end else None
                if zone_hours is not None and char in "+-":
                    kind, hours, sign = "local", zone_hours, (1 if char == "+" else -1)
                    start += 3
                if start < self.end:
                    if self.char(start, ":"):
                        start += 1
                        found = self.digits(start, 2) if start + 1 < self.end else None
                    else:
                        found = self.digits(start, 2) if start + 1 < self.end else None
                    if found is not None:
                        minutes = found
                        start += 2
        if start != self.end:
            return None
        return kind, sign * (hours * 60 + minutes)
