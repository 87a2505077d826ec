"""Content-Range of upload chunks and Range of blob reads (RFC 9110 §14)."""

from __future__ import annotations

import pytest

from shared.oci.errors import BlobUploadInvalid, RangeInvalid
from shared.oci.ranges import ByteRange, parse_content_range, parse_range


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [
        ("0-99", 0, 99),
        ("bytes 0-99/100", 0, 99),
        ("bytes 0-99/*", 0, 99),
        ("bytes=0-99", 0, 99),
        ("bytes 0-99", 0, 99),
        ("0-99/100", 0, 99),
        ("100-199", 100, 199),
        ("5-5", 5, 5),
        ("  0-99  ", 0, 99),
        ("0-9223372036854775807", 0, 9223372036854775807),
    ],
)
def test_content_range_forms_are_accepted(value: str, start: int, end: int) -> None:
    """The distribution-spec and RFC 9110 Content-Range forms parse to an inclusive range."""
    assert parse_content_range(value) == ByteRange(start, end)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-",
        "0-",
        "-99",
        "0 - 99",
        "a-b",
        "0-99/",
        "0-99/abc",
        "bytes:0-99",
        "bits 0-99",
        "bytes  0-99",
        "0-99,100-199",
        "-1-5",
        "0-12345678901234567890",
    ],
)
def test_malformed_content_range_is_an_invalid_upload(value: str) -> None:
    """A Content-Range that does not parse raises BlobUploadInvalid (400)."""
    with pytest.raises(BlobUploadInvalid) as caught:
        parse_content_range(value)
    assert caught.value.status == 400


@pytest.mark.parametrize("value", ["99-0", "bytes 10-9/100", "bytes=1-0"])
def test_content_range_ending_before_it_starts_is_a_range_error(value: str) -> None:
    """A Content-Range whose end precedes its start raises RangeInvalid (416)."""
    with pytest.raises(RangeInvalid) as caught:
        parse_content_range(value)
    assert caught.value.status == 416


@pytest.mark.parametrize(("start", "end", "length"), [(0, 0, 1), (0, 99, 100), (10, 19, 10)])
def test_byte_range_length_is_inclusive(start: int, end: int, length: int) -> None:
    """ByteRange.length counts both ends."""
    assert ByteRange(start, end).length == length


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        ("bytes=0-", 100, ByteRange(0, 99)),
        ("bytes=0-0", 100, ByteRange(0, 0)),
        ("bytes=10-19", 100, ByteRange(10, 19)),
        ("bytes=99-", 100, ByteRange(99, 99)),
        ("bytes=99-99", 100, ByteRange(99, 99)),
        ("bytes=0-99", 100, ByteRange(0, 99)),
        ("bytes=-5", 100, ByteRange(95, 99)),
        ("bytes=-1", 100, ByteRange(99, 99)),
        ("bytes=-100", 100, ByteRange(0, 99)),
        ("bytes=-500", 100, ByteRange(0, 99)),
        ("bytes=50-1000", 100, ByteRange(50, 99)),
        ("bytes=0-100", 100, ByteRange(0, 99)),
        ("bytes=0-9999999999999999999", 100, ByteRange(0, 99)),
        ("  bytes=10-19  ", 100, ByteRange(10, 19)),
        ("bytes=0-", 1, ByteRange(0, 0)),
        ("bytes=-1", 1, ByteRange(0, 0)),
    ],
)
def test_satisfiable_ranges_resolve_against_the_size(
    value: str, size: int, expected: ByteRange
) -> None:
    """A satisfiable single byte range resolves to inclusive offsets within the blob."""
    assert parse_range(value, size) == expected


@pytest.mark.parametrize(
    "value",
    [
        "bytes=0-10,20-30",
        "bytes=0-10, 20-30",
        "bytes=-5,0-1",
        "items=0-10",
        "pages=1-2",
        "bytes 0-10",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=0-1-2",
        "bytes=0--1",
        "bytes= 0-1",
        "0-10",
        "",
        "bytes=5-3",
        "bytes=99-0",
    ],
)
def test_ignorable_ranges_mean_the_whole_blob(value: str) -> None:
    """Other units, several ranges and invalid syntax are ignored: None sends the whole blob."""
    assert parse_range(value, 100) is None


def test_no_range_header_means_the_whole_blob() -> None:
    """Without a Range header the whole blob is sent."""
    assert parse_range(None, 100) is None
    assert parse_range(None, 0) is None


def test_backwards_range_is_ignored_even_beyond_the_size() -> None:
    """An invalid ``last < first`` range is ignored rather than judged unsatisfiable."""
    assert parse_range("bytes=500-300", 100) is None


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("bytes=100-", 100),
        ("bytes=100-200", 100),
        ("bytes=1000-", 100),
        ("bytes=1-", 1),
        ("bytes=-0", 100),
        ("bytes=0-", 0),
        ("bytes=0-0", 0),
        ("bytes=-0", 0),
    ],
)
def test_unsatisfiable_ranges_raise_range_invalid(value: str, size: int) -> None:
    """A range starting at or past the end, or an empty suffix, raises RangeInvalid (416)."""
    with pytest.raises(RangeInvalid) as caught:
        parse_range(value, size)
    assert caught.value.status == 416
    assert caught.value.detail == {"range": value.strip(), "size": size}
