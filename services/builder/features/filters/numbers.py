""".NET numbers: decimal.TryParse, and ToString's standard formats (``N2``, ``C``,
``E3``, ``G``, ``R``, ``D``, ``X``, ``P``) and custom formats (``#,##0.00;(#);zero``) as the
invariant culture writes int, double and decimal."""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import dataclass

from services.builder.features.filters.dotnet import dotnet_double, dotnet_int
from services.builder.features.filters.errors import bounded

MAX_PRECISION = 99  # digits in a standard numeric format ("N2", "D8"), as .NET Framework

_NUMBER_STYLE = re.compile(
    r"[ \t\n\v\f\r]*(?P<lead>[+-])?[ \t\n\v\f\r]*(?P<digits>[0-9][0-9,]*|)"
    r"(?:\.(?P<fraction>[0-9]*))?[ \t\n\v\f\r]*(?P<trail>[+-])?[ \t\n\v\f\r]*"
)
# Exact arithmetic (results are bounded by MAX_RESULT before they are made); rounding, when
# asked for, is half away from zero, as .NET formats numbers.
_CONTEXT = decimal.Context(
    prec=decimal.MAX_PREC,
    rounding=decimal.ROUND_HALF_UP,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
)


def _dotnet_decimal(text: str) -> decimal.Decimal | None:
    """``decimal.TryParse``: Number style (white space, a leading or trailing sign, ``,``
    between digits, one ``.``); a 96-bit coefficient, decimals past what fits rounded."""
    match = _NUMBER_STYLE.fullmatch(text)
    if match is None or (match.group("lead") and match.group("trail")):
        return None
    digits, fraction = match.group("digits").replace(",", ""), match.group("fraction") or ""
    if not digits and not fraction:
        return None
    number = decimal.Decimal(f"{digits or '0'}.{fraction}" if fraction else digits)
    if number != 0 and number.adjusted() >= 29:  # past 2**96
        return None
    scale = -int(number.as_tuple().exponent)
    if scale > 0:
        keep = min(scale, 28, max(0, 28 - number.adjusted()))
        number = _round(number, keep)
        if _coefficient(number) >= 2**96 and keep > 0:
            number = _round(number, keep - 1)
    if _coefficient(number) >= 2**96:
        return None
    negative = "-" in (match.group("lead"), match.group("trail")) and number != 0
    return number.copy_negate() if negative else number.copy_abs()


def _round(
    value: decimal.Decimal, places: int, rounding: str = decimal.ROUND_HALF_UP
) -> decimal.Decimal:
    """``value`` rounded to ``places`` decimals, if the digits fit: half away from zero unless
    told otherwise."""
    bounded(max(value.adjusted(), 0) + max(places, 0), "Format")
    return value.quantize(_unit(-places), rounding=rounding, context=_CONTEXT)


def _tie_rounding(number: _Number) -> str:
    """How a standard format settles an exact tie. .NET writes a double's digits with Dragon4,
    which rounds a tie to the even digit (2.5 is "2" in F0, 0.125 is "0.12" in F2); a decimal
    or an integer rounds its digits half away from zero."""
    return decimal.ROUND_HALF_EVEN if number.kind == "double" else decimal.ROUND_HALF_UP


def _unit(exponent: int) -> decimal.Decimal:
    """``1E{exponent}``: the step ``quantize`` rounds to."""
    return decimal.Decimal((0, (1,), exponent))


def _coefficient(number: decimal.Decimal) -> decimal.Decimal:
    return number.scaleb(-int(number.as_tuple().exponent), context=_CONTEXT).copy_abs()


@dataclass(frozen=True, slots=True)
class _Number:
    """A number of a .NET type: "int", "double" or "decimal"."""

    value: decimal.Decimal
    kind: str
    double: float = 0.0


def _standard_number(number: _Number, spec: str) -> str | None:
    """A standard numeric format (``N2``, ``C``, ``E3``), or None when ``spec`` is not one."""
    match = re.fullmatch(r"([A-Za-z])([0-9]{0,9})", spec)
    if match is None:
        return None
    letter, digits = match.group(1), match.group(2)
    precision = int(digits) if digits else None
    if precision is not None and precision > MAX_PRECISION:
        raise ValueError(f"a precision above {MAX_PRECISION}")
    kind, value = letter.upper(), number.value
    if kind == "D":
        if number.kind != "int":
            raise ValueError("'D' formats integers only")
        text = str(abs(int(value))).rjust(precision or 0, "0")
        return "-" + text if value < 0 else text
    if kind == "X":
        if number.kind != "int":
            raise ValueError("'X' formats integers only")
        text = f"{int(value) & 0xFFFFFFFF:x}".rjust(precision or 0, "0")
        return text.upper() if letter == "X" else text
    if kind in ("F", "N", "C", "P"):
        places = 2 if precision is None else precision
        scaled = value.scaleb(2, context=_CONTEXT) if kind == "P" else value
        rounded = _round(scaled, places, _tie_rounding(number))
        body = _fixed(rounded.copy_abs(), places, grouped=kind != "F")
        negative = rounded < 0 or (rounded == 0 and _negative_zero(number))
        if kind == "C":
            return f"(¤{body})" if negative else f"¤{body}"
        if kind == "P":
            return f"-{body} %" if negative else f"{body} %"
        return "-" + body if negative else body
    if kind == "E":
        return _scientific(number, 6 if precision is None else precision, letter, 3, trim=False)
    if kind == "G":
        return _general(number, precision, "E" if letter == "G" else "e")
    if kind == "R":
        if number.kind != "double":
            raise ValueError("'R' formats floating point numbers only")
        return _general(number, None, "E")
    raise ValueError(f"{spec!r} is not a numeric format")


def _negative_zero(number: _Number) -> bool:
    """.NET Core keeps the sign of a negative double that rounds to zero (``-0.00``); an
    integer or a decimal that rounds to zero has none."""
    return number.kind == "double" and math.copysign(1.0, number.double) < 0


def _fixed(value: decimal.Decimal, places: int, grouped: bool) -> str:
    text = f"{value:.{places}f}"
    if not grouped:
        return text
    whole, _, fraction = text.partition(".")
    whole = f"{int(whole):,}"
    return f"{whole}.{fraction}" if fraction else whole


def _scientific(number: _Number, places: int, letter: str, width: int, trim: bool) -> str:
    value = number.value
    if value == 0:
        mantissa, exponent = decimal.Decimal(0), 0
    else:
        exponent = value.adjusted()
        mantissa = _round(value.scaleb(-exponent, context=_CONTEXT), places, _tie_rounding(number))
        if mantissa.copy_abs() >= 10:
            exponent += 1
            mantissa = _round(
                value.scaleb(-exponent, context=_CONTEXT), places, _tie_rounding(number)
            )
    body = f"{mantissa.copy_abs():.{places}f}"
    if trim and "." in body:
        body = body.rstrip("0").rstrip(".")
    sign = "-" if value < 0 else ""
    exponent_sign = "-" if exponent < 0 else "+"
    return f"{sign}{body}{letter}{exponent_sign}{abs(exponent):0{width}d}"


def _general(number: _Number, precision: int | None, letter: str) -> str:
    """``G``: the shortest text for a double, every digit (and the scale) of a decimal, or
    ``precision`` significant digits, in scientific notation when the exponent is at least
    the digits shown or below -5."""
    if number.kind == "double" and not precision:  # G0 is G for a double
        if math.isnan(number.double):
            return "NaN"
        if math.isinf(number.double):
            return "-Infinity" if number.double < 0 else "Infinity"
        shortest = decimal.Decimal(repr(number.double))
        significant = len(shortest.as_tuple().digits)
        if shortest != 0 and not -5 < shortest.adjusted() < 15:
            shown = _Number(shortest, "double")
            return _scientific(shown, significant - 1, letter, 2, trim=True)
        text = f"{shortest.normalize(context=_CONTEXT):f}"
        return "-0" if number.double == 0 and math.copysign(1, number.double) < 0 else text
    value = number.value
    if precision is None or precision == 0:
        if number.kind == "decimal" and precision is None:
            return f"{value:f}"
        precision = {"int": 10, "double": 15, "decimal": 29}[number.kind]
    if value == 0:
        return "0"
    rounded = _round(value, precision - 1 - value.adjusted(), _tie_rounding(number))
    exponent = rounded.adjusted()
    if exponent >= precision or exponent <= -5:
        return _scientific(_Number(rounded, number.kind), precision - 1, letter, 2, trim=True)
    text = f"{rounded:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


@dataclass(slots=True)
class _Section:
    """One section of a custom numeric format, read as .NET reads it: the pieces in order
    (``0`` and ``#`` placeholders, the point, an exponent, literal text; a ``,`` is never
    written) and what the pieces add up to."""

    pieces: list[tuple[str, str]]  # ("0" | "#" | "." | "E" | "literal", text)
    placeholders: int = 0  # '0' and '#', on both sides of the point
    point: int = -1  # placeholders before the first '.' (all of them when there is none)
    first_zero: int | None = None  # placeholders before the first '0'
    after_last_zero: int = 0  # placeholders up to and with the last '0'
    grouped: bool = False  # a ',' between placeholders before the point
    scale: int = 0  # powers of ten: % is +2, ‰ +3, each ',' just before the point -3
    exponent: tuple[bool, int] | None = None  # the first E+0: always signed, minimum digits


def _custom_number(number: _Number, spec: str) -> str:
    """A custom format: up to three sections (positive; negative; zero), ``0`` and ``#``
    placeholders, ``.``, ``,`` (grouping, or thousands scaling before the point), ``%``,
    ``‰``, ``E+0``, quoted and escaped literals."""
    sections = _split_sections(spec)
    value = number.value
    if number.kind == "double":  # .NET formats doubles to 15 significant digits here
        value = _significant(value, 15)
    negative = value < 0
    zero_section = sections[2] if len(sections) > 2 and sections[2].pieces else None
    if negative and len(sections) > 1 and sections[1].pieces:
        text, is_zero = _apply_section(sections[1], value.copy_abs())
        if not is_zero:
            return text
        return _apply_section(zero_section or sections[0], decimal.Decimal(0))[0]
    text, is_zero = _apply_section(sections[0], value.copy_abs())
    if is_zero and zero_section is not None:
        return _apply_section(zero_section, decimal.Decimal(0))[0]
    return "-" + text if negative and not is_zero else text


def _significant(value: decimal.Decimal, digits: int) -> decimal.Decimal:
    if value == 0:
        return value
    return value.quantize(_unit(value.adjusted() - digits + 1), context=_CONTEXT).normalize(
        context=_CONTEXT
    )


_EXPONENT = re.compile(r"[eE][+-]?0+")


def _split_sections(spec: str) -> list[_Section]:
    raw: list[list[tuple[str, str]]] = [[]]
    position = 0
    while position < len(spec):
        char = spec[position]
        exponent = _EXPONENT.match(spec, position) if char in "eE" else None
        if char in "'\"":
            end = spec.find(char, position + 1)
            end = len(spec) if end < 0 else end
            raw[-1].append(("literal", spec[position + 1 : end]))
            position = end + 1
        elif char == "\\":
            raw[-1].append(("literal", spec[position + 1 : position + 2]))
            position += 2
        elif char == ";":
            if len(raw) < 3:
                raw.append([])
            position += 1
        elif exponent is not None:
            raw[-1].append(("E", exponent.group()))
            position = exponent.end()
        elif char in "0#.,%‰":
            raw[-1].append((char, char))
            position += 1
        else:
            raw[-1].append(("literal", char))
            position += 1
    return [_read_section(pieces) for pieces in raw]


def _read_section(pieces: list[tuple[str, str]]) -> _Section:
    section = _Section([])
    comma_at = -1  # placeholders before the last ',' that counts, and how many in a row
    commas = 0
    for kind, text in pieces:
        if kind in "0#":
            if kind == "0":
                if section.first_zero is None:
                    section.first_zero = section.placeholders
                section.after_last_zero = section.placeholders + 1
            section.placeholders += 1
        elif kind == "." and section.point < 0:
            section.point = section.placeholders
        elif kind == ",":
            if section.placeholders > 0 and section.point < 0:
                if comma_at == section.placeholders:
                    commas += 1
                else:
                    section.grouped = section.grouped or comma_at >= 0
                    comma_at, commas = section.placeholders, 1
            continue  # a ',' is never written
        elif kind in "%‰":
            section.scale += 2 if kind == "%" else 3
            kind = "literal"
        elif kind == "E" and section.exponent is None:
            section.exponent = ("+" in text, min(len(text.lstrip("eE+-")), 10))
        elif kind == "E":
            kind = "literal"  # only the first exponent is one
        section.pieces.append((kind, text))
    if section.point < 0:
        section.point = section.placeholders
    if comma_at >= 0:
        if comma_at == section.point:  # commas just before the point scale the number
            section.scale -= 3 * commas
        else:
            section.grouped = True
    return section


def _apply_section(section: _Section, value: decimal.Decimal) -> tuple[str, bool]:
    """``value`` (not negative) in ``section``, and whether it rounded to zero. Digits go
    into the placeholders from the left, those the integer placeholders cannot hold into
    the first of them; a group separator follows every digit whose position from the point
    is past a multiple of three, whatever literal comes next."""
    value = value.scaleb(section.scale, context=_CONTEXT)
    if section.exponent is not None and value != 0:
        keep = section.placeholders - 1 - value.adjusted()
        rounded = _round(value, keep)
    else:
        rounded = _round(value, section.placeholders - section.point)
    digits = "".join(map(str, rounded.as_tuple().digits)).strip("0")
    scale = rounded.adjusted() + 1 if digits else 0
    bounded(max(scale, 0), "Format")
    exponent_text = ""
    position = max(scale, section.point)  # of the next digit, counted from the point
    surplus = scale - section.point  # digits the integer placeholders cannot hold
    if section.exponent is not None:
        signed, width = section.exponent
        shift = scale - section.point if digits else 0
        sign = "-" if shift < 0 else ("+" if signed else "")
        exponent_text = f"E{sign}{abs(shift):0{width}d}"
        position, surplus = section.point, 0
    zeros_from = section.point - section.first_zero if section.first_zero is not None else 0
    zeros_to = min(section.point - section.after_last_zero, 0)
    out: list[str] = []
    taken = 0

    def write_digit(digit: str) -> None:
        out.append(digit)
        if section.grouped and position > 3 and (position - 1) % 3 == 0:
            out.append(",")

    point_written = False
    for kind, text in section.pieces:
        if surplus > 0 and kind in "0#.":
            while surplus > 0:
                write_digit(digits[taken] if taken < len(digits) else "0")
                taken += 1
                position -= 1
                surplus -= 1
        if kind in "0#":
            if surplus < 0:
                surplus += 1
                digit = "0" if position <= zeros_from else ""
            elif taken < len(digits):
                digit = digits[taken]
                taken += 1
            else:
                digit = "0" if position > zeros_to else ""
            if digit:
                write_digit(digit)
            position -= 1
        elif kind == ".":
            shown = zeros_to < 0 or (section.point < section.placeholders and taken < len(digits))
            if position == 0 and not point_written and shown:
                out.append(".")
                point_written = True
        elif kind == "E":
            out.append(text[0] + exponent_text[1:])
        else:
            out.append(text)
    return "".join(out), rounded == 0


def format_number(number: _Number, spec: str) -> str:
    if number.kind == "double" and not math.isfinite(number.double):
        if math.isnan(number.double):
            return "NaN"
        return "-Infinity" if number.double < 0 else "Infinity"
    standard = _standard_number(number, spec)
    if standard is not None:
        return standard
    text = _custom_number(number, spec)
    bounded(len(text), "Format")
    return text


def as_number(kind: str, text: str) -> _Number | None:
    if kind == "int":
        integer = dotnet_int(text)
        return None if integer is None else _Number(decimal.Decimal(integer), "int")
    if kind == "double":
        double = dotnet_double(text, thousands=True)
        if double is None:
            return None
        exact = decimal.Decimal(double) if math.isfinite(double) else decimal.Decimal(0)
        return _Number(exact, "double", double)
    found = _dotnet_decimal(text)
    return None if found is None else _Number(found, "decimal")
