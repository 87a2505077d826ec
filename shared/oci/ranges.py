"""``Content-Range`` of upload chunks and ``Range`` of blob reads."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.oci.errors import BlobUploadInvalid, RangeInvalid

_CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d{1,19})-(\d{1,19})(?:/(?:\d{1,19}|\*))?$")
_RANGE_RE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """An inclusive byte range ``start``..``end``."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(value: str) -> ByteRange:
    """A chunk's ``Content-Range: <start>-<end>`` (inclusive, as in the distribution spec).

    ``bytes <start>-<end>/<total>`` (RFC 9110 form) is accepted as well.
    """
    match = _CONTENT_RANGE_RE.fullmatch(value.strip())
    if match is None:
        raise BlobUploadInvalid("malformed Content-Range", detail={"content_range": value[:100]})
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeInvalid("Content-Range end before start", detail={"content_range": value})
    return ByteRange(start, end)


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """A blob GET ``Range`` header resolved against the blob size (RFC 9110 §14).

    Returns None when the whole blob should be sent: no header, or one we may ignore
    (other units, several ranges). Raises RangeInvalid when it cannot be satisfied.
    """
    if value is None:
        return None
    value = value.strip()
    if not value.startswith("bytes=") or "," in value:
        return None
    match = _RANGE_RE.fullmatch(value)
    if match is None:
        return None
    first, last = match.groups()
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0:
            raise RangeInvalid(detail={"range": value, "size": size})
        if size == 0:
            return None  # a non-empty suffix of an empty blob: send it whole (RFC 9110 14.1.1)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: ignored, as RFC 9110 says
    if start >= size:
        raise RangeInvalid(detail={"range": value, "size": size})
    return ByteRange(start, end)
