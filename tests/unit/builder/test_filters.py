"""Octostache filters, one at a time, as the deployment server's Octostache (.NET, invariant
culture) applies them. ``None`` as a result means Octostache's function gave null: the
evaluator leaves the expression as written."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from services.builder.features import filters
from services.builder.features.filters import (
    FilterError,
    FilterFailed,
    ResultTooLarge,
    apply_filter,
    dates,
)


def run(name: str, value: str | None, *args: str) -> str | None:
    return apply_filter(name, value, args)


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build host's zone is UTC+01:00 and it is 2031-03-04 05:06:07.891234 UTC."""
    monkeypatch.setattr(dates, "local_offset", lambda wall: 60)
    moment = dt.datetime(2031, 3, 4, 5, 6, 7, 891234, tzinfo=dt.UTC)
    monkeypatch.setattr(dates, "now", lambda: moment)


# --- names, missing values and argument counts ---------------------------------------------


def test_an_unknown_filter_is_an_error_for_the_evaluator() -> None:
    with pytest.raises(FilterError):
        run("ToShout", "quiet")


def test_filter_names_are_case_insensitive() -> None:
    assert run("tOuPpEr", "quiet") == "QUIET"


NULL_GIVES_NULL = [
    ("ToUpper", ()),
    ("ToLower", ()),
    ("HtmlEscape", ()),
    ("XmlEscape", ()),
    ("JsonEscape", ()),
    ("YamlSingleQuoteEscape", ()),
    ("YamlDoubleQuoteEscape", ()),
    ("PropertiesKeyEscape", ()),
    ("PropertiesValueEscape", ()),
    ("UriEscape", ()),
    ("UriDataEscape", ()),
    ("ToBase64", ()),
    ("FromBase64", ()),
    ("Markdown", ()),
    ("Trim", ()),
    ("Truncate", ("3",)),
    ("Substring", ("1",)),
    ("Replace", ("a", "b")),
    ("Format", ("N2",)),
    ("Indent", ()),
    ("UriPart", ("Host",)),
    ("StartsWith", ("a",)),
    ("Match", ("a",)),
    ("Md5", ()),
    ("Sha256", ("utf8",)),
    ("VersionMajor", ()),
    ("AddDays", ("1",)),
    ("Append", ()),
    ("Null", ()),
]


@pytest.mark.parametrize(("name", "args"), NULL_GIVES_NULL, ids=[n for n, _ in NULL_GIVES_NULL])
def test_a_missing_value_gives_nothing(name: str, args: tuple[str, ...]) -> None:
    assert apply_filter(name, None, args) is None


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("Append", ("-tail",), "-tail"),
        ("Prepend", ("head-",), "head-"),
        ("NowDateUtc", ("yyyy",), "2031"),
    ],
    ids=["append", "prepend", "now-date"],
)
def test_filters_that_work_without_a_value(name: str, args: tuple[str, ...], expected: str) -> None:
    assert apply_filter(name, None, args) == expected


WRONG_ARGUMENTS = [
    ("ToUpper", ("x",)),
    ("HtmlEscape", ("x",)),
    ("YamlDoubleQuoteEscape", ("x",)),
    ("Markdown", ("x",)),
    ("Trim", ("middle",)),
    ("Trim", ("",)),
    ("Truncate", ()),
    ("Truncate", ("ten",)),
    ("Truncate", ("-2",)),
    ("Truncate", ("99999999999",)),
    ("Substring", ()),
    ("Substring", ("1", "2", "3")),
    ("Substring", ("x",)),
    ("Substring", ("-1",)),
    ("Substring", ("0", "-1")),
    ("Substring", ("40",)),
    ("Substring", ("40", "1")),
    ("Replace", ()),
    ("Contains", ()),
    ("Contains", ("a", "b")),
    ("EndsWith", ("a", "b")),
    ("Match", ()),
    ("Append", ()),
    ("Prepend", ()),
    ("Indent", ("a", "b", "c")),
    ("ToBase64", ("latin1",)),
    ("ToBase64", ("utf8", "extra")),
    ("Format", ()),
    ("Format", ("Int", "N0", "extra")),
    ("Format", ("Money", "N0")),
    ("NowDate", ("yyyy", "zzz")),
    ("Md5", ("zero",)),
    ("Md5", ("0",)),
    ("Md5", ("utf8", "0")),
    ("Md5", ("7", "latin1")),
    ("Md5", ("utf8", "7", "more")),
    ("Sha1", ("base64",)),  # the value is not base64
]


@pytest.mark.parametrize(
    ("name", "args"),
    WRONG_ARGUMENTS,
    ids=[f"{n}-{'-'.join(a) or 'none'}" for n, a in WRONG_ARGUMENTS],
)
def test_arguments_that_do_not_fit_give_nothing(name: str, args: tuple[str, ...]) -> None:
    assert apply_filter(name, "a value of some length", args) is None


def test_now_date_refuses_a_value() -> None:
    assert run("NowDate", "2020-01-01") is None


@pytest.mark.parametrize(
    ("name", "value", "args"),
    [
        ("FromBase64", "%%%%", ()),
        ("FromBase64", "abc", ()),  # not a multiple of four characters
        ("Replace", "text", ("(unclosed",)),
        ("Match", "text", ("[z-a]",)),
        ("VersionMajor", "   ", ()),
        ("VersionMajor", "1.2.3-be ta", ()),
        ("VersionMinor", "1.99999999999", ()),
        ("NowDate", None, ("%",)),
    ],
    ids=["base64-chars", "base64-length", "replace", "match", "blank", "spaced", "big", "now"],
)
def test_where_octostache_throws_the_filter_fails(
    name: str, value: str | None, args: tuple[str, ...]
) -> None:
    with pytest.raises(FilterFailed):
        apply_filter(name, value, args)


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "args", "expected"),
    [
        ("ToUpper", "straße", (), "STRAßE"),  # one character for one, as .NET
        ("ToLower", "ÄRGER İ", (), "ärger i"),
        ("Trim", "\x1c\t pad \u3000", (), "\x1c\t pad"),  # U+001C is not white space in .NET
        ("Trim", "  both  ", ("START",), "both  "),
        ("Trim", "  both  ", ("end",), "  both"),
        ("Truncate", "Spacedock", ("5",), "Space..."),
        ("Truncate", "Spacedock", ("9",), "Spacedock"),
        ("Truncate", "Spacedock", ("0",), "..."),
        ("Truncate", "Spacedock", ("4", "<cut>"), "Spac..."),  # a second argument is ignored
        ("Truncate", "ab\U0001f680cd", ("3",), "ab\ufffd..."),  # cuts a surrogate pair
        ("Substring", "Spacedock", ("5",), "Space"),
        ("Substring", "Spacedock", ("5", "4"), "dock"),
        ("Substring", "Spacedock", ("5", "5"), None),  # a cut past the end gives nothing
        ("Substring", "Spacedock", ("9", "0"), ""),
        ("Substring", "\U0001f680dock", ("2", "4"), "dock"),  # UTF-16 code units
        ("Append", "base", ("-one", " ", "two"), "base-one two"),
        ("Prepend", "base", ("one", "-"), "one-base"),
        ("Null", "anything", (), None),
    ],
    ids=[
        "upper-sharp-s",
        "lower-dotted-i",
        "trim-dotnet-space",
        "trim-start",
        "trim-end",
        "truncate",
        "truncate-exact",
        "truncate-zero",
        "truncate-suffix-ignored",
        "truncate-astral",
        "substring-length",
        "substring-start",
        "substring-past-end",
        "substring-at-end",
        "substring-astral",
        "append",
        "prepend",
        "null",
    ],
)
def test_text_filters(name: str, value: str, args: tuple[str, ...], expected: str | None) -> None:
    assert apply_filter(name, value, args) == expected


LINES = "alpha\nbeta\ngamma"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "    alpha\n    beta\n    gamma"),
        (("1",), " alpha\n beta\n gamma"),
        (("/2",), "alpha\n  beta\n  gamma"),
        (("2/0",), "  alpha\nbeta\ngamma"),
        (("# ",), "# alpha\n# beta\n# gamma"),
        (("<!-- ", "  -- "), "<!-- alpha\n  -- beta\n  -- gamma"),
        (("255",), "\n".join(" " * 255 + w for w in ("alpha", "beta", "gamma"))),
        (("300",), "300alpha\n300beta\n300gamma"),  # past 255 a size is text
        (("/256",), "/256alpha\n/256beta\n/256gamma"),
        (("4/999",), "4/999alpha\n4/999beta\n4/999gamma"),
    ],
    ids=[
        "default",
        "one",
        "others",
        "first-only",
        "text",
        "two-texts",
        "max",
        "over",
        "over-others",
        "over-both",
    ],
)
def test_indent(args: tuple[str, ...], expected: str) -> None:
    assert apply_filter("Indent", LINES, args) == expected


def test_indenting_nothing_gives_nothing_whatever_the_options() -> None:
    assert run("Indent", "", "x", "y", "z") == ""


def test_a_substring_whose_start_and_length_overflow_32_bits_fails() -> None:
    """String.Substring throws when the 32-bit sum of start and length wraps."""
    with pytest.raises(FilterFailed):
        run("Substring", "Spacedock", "2147483000", "1000")


# --- escapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HtmlEscape", "<b a='1'>x & y</b>", "&lt;b a=&apos;1&apos;&gt;x &amp; y&lt;&#x2F;b&gt;"),
        ("XmlEscape", "<t a=\"1\">'&'</t>", "&lt;t a=&quot;1&quot;&gt;&apos;&amp;&apos;&lt;/t&gt;"),
        ("JsonEscape", 'c:\\dir\t"q"\r\n/é', 'c:\\\\dir\\t\\"q\\"\\r\\n/é'),
        ("YamlSingleQuoteEscape", "it's", "it''s"),
        ("YamlSingleQuoteEscape", "one\ntwo\n\nthree", "one\n\ntwo\n\n\nthree"),
        ("YamlSingleQuoteEscape", "win\r\nnext", "win\r\n\r\nnext"),
        ("YamlDoubleQuoteEscape", 'say "hi"\\\t\n', 'say \\"hi\\"\\\\\\t\\n'),
        ("YamlDoubleQuoteEscape", "é\x01~", "\\u00e9\\u0001~"),
        ("YamlDoubleQuoteEscape", "\U0001f680", "\\ud83d\\ude80"),
        ("PropertiesKeyEscape", "a key:=x", "a\\ key\\:\\=x"),
        ("PropertiesKeyEscape", "#!x", "#!x"),
        ("PropertiesKeyEscape", "þÿ\u0100", "þ\\u00ff\\u0100"),
        ("PropertiesValueEscape", " lead a:b=c ", "\\ lead a:b=c "),
        ("PropertiesValueEscape", "c:\\x\r\n\t", "c:\\\\x\\r\\n\\t"),
        ("UriEscape", "a b/c?d=é&e#f%", "a%20b/c?d=%C3%A9&e#f%25"),
        ("UriEscape", '{x}|^`<>"', "%7Bx%7D%7C%5E%60%3C%3E%22"),
        ("UriDataEscape", "a b/c?d=é~._-", "a%20b%2Fc%3Fd%3D%C3%A9~._-"),
        ("UriDataEscape", "\U0001f680", "%F0%9F%9A%80"),
    ],
    ids=[
        "html",
        "xml",
        "json",
        "yaml-single-quote",
        "yaml-single-newlines",
        "yaml-single-crlf",
        "yaml-double",
        "yaml-double-non-ascii",
        "yaml-double-astral",
        "properties-key",
        "properties-key-comment-chars",
        "properties-key-latin1-edge",
        "properties-value-space",
        "properties-value-controls",
        "uri",
        "uri-unwise",
        "uri-data",
        "uri-data-astral",
    ],
)
def test_escapes(name: str, value: str, expected: str) -> None:
    assert run(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value", "args", "expected"),
    [
        ("ToBase64", "Dock ✓", (), "RG9jayDinJM="),
        ("ToBase64", "Dock", ("UTF-8",), "RG9jaw=="),
        ("ToBase64", "Dock", ("Unicode",), "RABvAGMAawA="),
        ("FromBase64", "RG9j\r\nayDinJM=", (), "Dock ✓"),  # white space is skipped
        ("FromBase64", "RABvAGMAawA=", ("unicode",), "Dock"),
        ("FromBase64", "/w==", (), "\ufffd"),  # bytes that are not UTF-8
        ("FromBase64", "RG9jaw==", ("ascii",), None),
    ],
    ids=["to", "to-utf8", "to-unicode", "from", "from-unicode", "from-invalid-utf8", "from-enc"],
)
def test_base64(name: str, value: str, args: tuple[str, ...], expected: str | None) -> None:
    assert apply_filter(name, value, args) == expected


@pytest.mark.parametrize(
    ("name", "digest"),
    [
        ("Md5", "900150983cd24fb0d6963f7d28e17f72"),
        ("Sha1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("Sha256", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "Sha384",
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163"
            "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
        ),
        (
            "Sha512",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        ),
    ],
    ids=["md5", "sha1", "sha256", "sha384", "sha512"],
)
def test_hashes(name: str, digest: str) -> None:
    assert run(name, "abc") == digest
    assert run(name, "abc", "utf-8") == digest
    assert run(name, "YWJj", "base64") == digest  # the bytes of "abc"
    assert run(name, "abc", "4") == digest[:8]  # the first four bytes
    assert run(name, "abc", "utf8", "2") == run(name, "abc", "2", "UTF8") == digest[:4]
    assert run(name, "abc", "5000") == digest  # a size past the digest is the digest
    utf16 = hashlib.new(name.lower(), "abc".encode("utf-16-le")).hexdigest()
    assert run(name, "abc", "unicode") == utf16


# --- comparisons and regular expressions -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "argument", "expected"),
    [
        ("StartsWith", "release/2.1", "release/", "true"),
        ("StartsWith", "release/2.1", "Release/", "false"),
        ("EndsWith", "release/2.1", ".1", "true"),
        ("Contains", "release/2.1", "e/2", "true"),
        ("Contains", "release/2.1", "E/2", "false"),
        ("Match", "build-0042", r"-\d+$", "true"),
        ("Match", "build-0042", r"^\d", "false"),
        ("Match", "build-0042", r"(?<n>\d)\k<n>", "true"),  # .NET's named groups
    ],
    ids=[
        "starts",
        "starts-case",
        "ends",
        "contains",
        "contains-case",
        "match",
        "no-match",
        "named-group",
    ],
)
def test_comparisons(name: str, value: str, argument: str, expected: str) -> None:
    assert run(name, value, argument) == expected


@pytest.mark.parametrize(
    ("value", "args", "expected"),
    [
        ("2024-05-06", (r"(\d+)-(\d+)-(\d+)", "$3/$2/$1"), "06/05/2024"),
        ("2024-05-06", (r"(?<y>\d+)-(?'m'\d+)", "${m}.${y}"), "05.2024-06"),
        ("ab", ("b", "[$&|$`|$'|$_|$$|$9]"), "a[b|a||ab|$|$9]"),
        ("ab", ("(a)(b)", "$+$0"), "bab"),
        ("aaa", ("a", ""), ""),
        ("aaa", ("a",), ""),
        ("line\n", (r"\Z", "!"), "line!\n!"),  # .NET \Z also matches before a final newline
        ("line\n", (r"\z", "!"), "line\n!"),
        ("Mixed", ("mixed", "x"), "Mixed"),
    ],
    ids=[
        "groups",
        "named",
        "specials",
        "last-group",
        "delete",
        "no-replacement",
        "end-Z",
        "end-z",
        "case-sensitive",
    ],
)
def test_replace(value: str, args: tuple[str, ...], expected: str) -> None:
    assert apply_filter("Replace", value, args) == expected


# --- versions --------------------------------------------------------------------------------

PARTS = [
    "VersionMajor",
    "VersionMinor",
    "VersionPatch",
    "VersionRevision",
    "VersionPreRelease",
    "VersionPreReleasePrefix",
    "VersionPreReleaseCounter",
    "VersionMetadata",
]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("7", ["7", "0", "0", "0", "", "", "", ""]),
        ("v3.14", ["3", "14", "0", "0", "", "", "", ""]),
        ("5.6.7.8-rc.2+sha.ab12", ["5", "6", "7", "8", "rc.2", "rc", "2", "sha.ab12"]),
        ("2.0.1-nightly_24-01", ["2", "0", "1", "0", "nightly_24-01", "nightly", "24-01", ""]),
        ("11.0.0.GA", ["11", "0", "0", "0", "GA", "GA", "", ""]),
        ("edge", ["0", "0", "0", "0", "edge", "edge", "", ""]),
        (" 4 . 5 ", ["4", "5", "0", "0", "", "", "", ""]),
    ],
    ids=[
        "major-only",
        "v-prefix",
        "everything",
        "underscore",
        "dotted-word",
        "no-numbers",
        "spaces",
    ],
)
def test_version_parts(version: str, expected: list[str]) -> None:
    assert [run(part, version) for part in PARTS] == expected


# --- URIs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "part", "expected"),
    [
        (
            "http://Build.Example.ORG:8081/a/./b/../c?x=1&y=2#frag",
            "AbsoluteUri",
            "http://build.example.org:8081/a/c?x=1&y=2#frag",
        ),
        ("http://build.example.org:8081/a", "Authority", "build.example.org:8081"),
        ("http://build.example.org:8081/a", "HostAndPort", "build.example.org:8081"),
        ("http://build.example.org/a", "HostAndPort", "build.example.org:80"),
        ("http://build.example.org:8081/a", "IsDefaultPort", "false"),
        ("http://build.example.org:80/a", "IsDefaultPort", "true"),
        ("http://build.example.org:80/a", "Authority", "build.example.org"),
        ("http://build.example.org:8081/a", "SchemeAndServer", "http://build.example.org:8081"),
        ("ftp://files.example.org", "AbsoluteUri", "ftp://files.example.org/"),
        ("ftp://files.example.org", "Port", "21"),
        ("http://build.example.org/my%20dir/a b?q=a b", "AbsolutePath", "/my%20dir/a%20b"),
        ("http://build.example.org/my%20dir/a b?q=a b", "Path", "/my dir/a b"),
        ("http://build.example.org/my%20dir/a b?q=a b", "PathAndQuery", "/my%20dir/a%20b?q=a%20b"),
        ("http://build.example.org/a", "Query", ""),
        ("http://build.example.org/a", "Fragment", ""),
        ("http://127.0.0.1:5000/", "HostNameType", "IPv4"),
        ("http://127.0.0.1:5000/", "IsLoopback", "true"),
        ("http://[::1]:5000/", "Host", "[::1]"),
        ("http://[::1]:5000/", "DnsSafeHost", "::1"),
        ("http://[::1]:5000/", "HostNameType", "IPv6"),
        ("https://ci:s3cret@build.example.org/", "UserInfo", "ci:s3cret"),
        ("https://ci:s3cret@build.example.org/", "Authority", "build.example.org"),
        ("file:///srv/share/x.txt", "IsFile", "true"),
        ("file:///srv/share/x.txt", "IsUnc", "false"),
        ("file://fileserver/share/x.txt", "IsUnc", "true"),
        ("HTTPS://build.example.org", "Scheme", "https"),
        ("urn:isbn:0451450523", "AbsolutePath", "isbn:0451450523"),
        ("custom://thing/x", "Port", "-1"),
        ("relative/path", "IsAbsoluteUri", "false"),
        (
            "relative/path",
            "Scheme",
            "[UriPart Scheme error: This operation is not supported for a relative URI.]",
        ),
        ("relative/path", "Nope", "[UriPart Nope error: argument 'Nope' not supported]"),
        ("https://a.example.org", "nope", "[UriPart nope error: argument 'nope' not supported]"),
        ("http://", "Host", "http://"),  # not a URI at all: the value comes back
        ("http://build.example.org:99999/", "Port", "http://build.example.org:99999/"),
    ],
    ids=lambda v: v if len(v) < 20 else None,
)
def test_uri_part(url: str, part: str, expected: str) -> None:
    assert run("UriPart", url, part) == expected


def test_uri_part_without_a_part_says_so() -> None:
    assert run("UriPart", "https://build.example.org") == "[UriPart error: no argument given]"


@pytest.mark.parametrize(
    ("url", "part", "expected"),
    [
        ("https://Größe.Example/kö", "Host", "größe.example"),
        ("https://Größe.Example/kö", "DnsSafeHost", "größe.example"),
        ("https://Größe.Example/kö", "HostNameType", "Dns"),
        ("https://Größe.Example/kö", "AbsoluteUri", "https://größe.example/k%C3%B6"),
        ("https://build.example.org/%7Ea%2Db?%61=1", "PathAndQuery", "/~a-b?a=1"),
        ("https://build.example.org/a%2Fb%2f", "AbsolutePath", "/a%2Fb%2f"),
        ("https://build.example.org/100%/x%4", "AbsolutePath", "/100%25/x%254"),
        (
            "https://build.example.org/r?p=50%zz#%5F",
            "AbsoluteUri",
            ("https://build.example.org/r?p=50%25zz#_"),
        ),
        ("http://bad host.example/", "Host", "http://bad host.example/"),
    ],
    ids=[
        "idn-host",
        "idn-dns-safe-host",
        "idn-host-type",
        "idn-absolute",
        "unreserved-escapes-decoded",
        "reserved-escapes-kept",
        "lone-percent",
        "bad-escape-query",
        "space-in-host",
    ],
)
def test_uri_part_escapes_as_system_uri_does(url: str, part: str, expected: str) -> None:
    """A host outside ASCII is a DNS name kept as written (lower case); an escape of an
    unreserved character is decoded, other escapes stay, and a stray '%' is escaped."""
    assert run("UriPart", url, part) == expected


# --- dates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "args", "expected"),
    [
        ("2029/11/03 14:07:09", ("Date", "HH:mm dd-MMM-yyy"), "14:07 03-Nov-2029"),
        (
            "2029/11/03 14:07:09",
            ("DateTime", "dddd d MMMM yy, h:m:s tt"),
            "Saturday 3 November 29, 2:7:9 PM",
        ),
        ("2029-11-03T14:07:09.1234567", ("DateTime", "ss.fff FFFFFFF"), "09.123 1234567"),
        ("2029-11-03T14:07:09", ("DateTime", "HH:mm:ss.FFF"), "14:07:09"),
        ("2029-11-03T14:07:09", ("DateTime", "'at' HH \\h mm"), "at 14 h 07"),
        ("2029-11-03T14:07:09", ("DateTime", "%d"), "3"),
        ("2029-11-03T14:07:09", ("DateTime", "d"), "11/03/2029"),
        ("2029-11-03T14:07:09", ("DateTime", "D"), "Saturday, 03 November 2029"),
        ("2029-11-03T14:07:09", ("DateTime", "f"), "Saturday, 03 November 2029 14:07"),
        ("2029-11-03T14:07:09", ("DateTime", "g"), "11/03/2029 14:07"),
        ("2029-11-03T14:07:09", ("DateTime", "G"), "11/03/2029 14:07:09"),
        ("2029-11-03T14:07:09", ("DateTime", "M"), "November 03"),
        ("2029-11-03T14:07:09", ("DateTime", "s"), "2029-11-03T14:07:09"),
        ("2029-11-03T14:07:09", ("DateTime", "t"), "14:07"),
        ("2029-11-03T14:07:09", ("DateTime", "y"), "2029 November"),
        ("2029-11-03T14:07:09", ("DateTime", "R"), "Sat, 03 Nov 2029 14:07:09 GMT"),
        ("2029-11-03T14:07:09", ("DateTime", "O"), "2029-11-03T14:07:09.0000000"),
        ("2029-11-03T14:07:09Z", ("DateTime", "O"), "2029-11-03T15:07:09.0000000+01:00"),
        ("2029-11-03T14:07:09", ("DateTimeOffset", "o"), "2029-11-03T14:07:09.0000000+01:00"),
        ("2029-11-03T14:07:09-05:30", ("DateTimeOffset", "zzz|zz|z"), "-05:30|-05|-5"),
        ("2029-11-03T14:07:09-05:30", ("DateTimeOffset", "u"), "2029-11-03 19:37:09Z"),
        ("Sat, 03 Nov 2029 14:07:09 GMT", ("DateTimeOffset", "s zzz"), "9 +00:00"),
        ("November 3, 2029", ("Date", "yyyy-MM-dd"), "2029-11-03"),
        ("3 Nov 2029 2:07 PM", ("Date", "yyyy-MM-dd HH:mm"), "2029-11-03 14:07"),
        ("11/3/29", ("Date", "yyyy-MM-dd"), "2029-11-03"),
        ("2029-11-03T14:07:09", ("yyyy",), "2029"),  # not a decimal, so a DateTimeOffset
        ("Friday, 3 Nov 2029", ("Date", "d"), None),  # it was a Saturday
        ("2029-02-30", ("Date", "d"), None),
        ("2029-11-03", ("Date", "Q"), None),  # not a standard format
        ("2029-11-03", ("Date", "ffffffff"), None),  # eight fraction digits
        ("2029-11-03", ("DateTimeOffset", "U"), None),
        ("next tuesday", ("Date", "d"), None),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 24 else None,
)
def test_format_dates(value: str, args: tuple[str, ...], expected: str | None) -> None:
    assert apply_filter("Format", value, args) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Nov 2029", "2029-11-01"),
        ("2029 November", "2029-11-01"),
        ("2029-11", "2029-11-01"),
        ("11/2029", "2029-11-01"),
        ("Nov 3", "2031-11-03"),  # this year (the clock says 2031)
        ("11/3", "2031-11-03"),
        ("3 Nov", "2003-11-01"),  # a number before a month name is a two-digit year
        ("Nov 3 14:07", "2031-11-03"),
        ("Nov 40", None),
    ],
    ids=lambda v: v,
)
def test_dates_without_a_day_or_a_year(value: str, expected: str | None) -> None:
    """DateTime.TryParse in the invariant culture (month-day and year-month patterns): a
    missing day is the first, a missing year is this year."""
    assert run("Format", value, "DateTime", "yyyy-MM-dd") == expected


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ("AddSeconds 90", "2029-11-03T14:08:39.0000000"),
        ("AddMinutes -7", "2029-11-03T14:00:09.0000000"),
        ("AddHours 0.25", "2029-11-03T14:22:09.0000000"),
        ("AddHours 36", "2029-11-05T02:07:09.0000000"),
        ("AddDays -3.5", "2029-10-31T02:07:09.0000000"),
        ("AddWeeks 2", "2029-11-17T14:07:09.0000000"),
        ("AddMonths -11", "2028-12-03T14:07:09.0000000"),
        ("AddTimeSpan 1:30", "2029-11-03T15:37:09.0000000"),
        ("AddTimeSpan 3", "2029-11-06T14:07:09.0000000"),
        ("AddTimeSpan -0:00:09.5", "2029-11-03T14:06:59.5000000"),
        ("AddTimeSpan 1.01:01:01", "2029-11-04T15:08:10.0000000"),
        ("AddTimeSpan 30:00:00", "2029-12-03T14:07:09.0000000"),  # 30 days: hours stop at 23
    ],
    ids=lambda v: v,
)
def test_date_arithmetic(filter_: str, expected: str) -> None:
    name, amount = filter_.split(" ")
    assert run(name, "2029-11-03 14:07:09", amount) == expected


@pytest.mark.parametrize(
    ("value", "months", "expected"),
    [
        ("2029-08-31", "1", "2029-09-30T00:00:00.0000000"),
        ("2028-03-31", "-1", "2028-02-29T00:00:00.0000000"),
        ("2029-10-31", "1", "2029-11-30T00:00:00.0000000"),
    ],
    ids=["short-month", "leap-february", "thirty"],
)
def test_add_months_keeps_to_the_end_of_a_shorter_month(
    value: str, months: str, expected: str
) -> None:
    assert run("AddMonths", value, months) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2029-11-03T14:07:09Z", "2029-11-03T16:07:09.0000000Z"),  # UTC stays UTC
        ("2029-11-03T14:07:09+09:00", "2029-11-03T16:07:09.0000000+09:00"),  # the offset stays
        ("2029-11-03T14:07:09.25", "2029-11-03T16:07:09.2500000"),
    ],
    ids=["utc", "offset", "unspecified"],
)
def test_date_arithmetic_keeps_the_kind_of_date(value: str, expected: str) -> None:
    assert run("AddHours", value, "2") == expected


@pytest.mark.parametrize(
    ("name", "value", "amount"),
    [
        ("AddHours", "2029-11-03", "two"),
        ("AddMonths", "2029-11-03", "1.5"),  # whole months only
        ("AddMonths", "2029-11-03", "200000"),
        ("AddDays", "9999-12-31", "1"),  # past the last day .NET has
        ("AddDays", "2029-11-03", "NaN"),
        ("AddDays", "2029-11-03", "1e300"),
        ("AddTimeSpan", "2029-11-03", "1:60"),
        ("AddTimeSpan", "2029-11-03", "1:2:3:4:5"),
        ("AddHours", "not a date", "1"),
    ],
    ids=[
        "word",
        "fraction-month",
        "many-months",
        "past-end",
        "nan",
        "huge",
        "minutes",
        "parts",
        "not-date",
    ],
)
def test_date_arithmetic_that_does_not_fit_gives_nothing(
    name: str, value: str, amount: str
) -> None:
    assert run(name, value, amount) is None


def test_now_date_is_local_and_unmarked_now_date_utc_is_marked() -> None:
    assert run("NowDate", None) == "2031-03-04T06:06:07.8912340"
    assert run("NowDateUtc", None) == "2031-03-04T05:06:07.8912340Z"
    assert run("NowDate", None, "HH:mm zzz") == "06:06 +01:00"
    assert run("NowDateUtc", None, "HH:mm zzz K") == "05:06 +00:00 Z"


def test_now_date_chains_into_date_filters() -> None:
    utc = run("NowDateUtc", None)
    assert run("Format", run("AddDays", utc, "1"), "DateTimeOffset", "yyyy-MM-dd zz") == (
        "2031-03-05 +00"
    )
    local = run("NowDate", None)
    assert run("Format", local, "DateTimeOffset", "zzz") == "+01:00"


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "args", "expected"),
    [
        ("9876.545", ("N2",), "9,876.55"),  # half away from zero
        ("-9876.545", ("N",), "-9,876.55"),
        ("9876.545", ("F1",), "9876.5"),
        ("9876.545", ("F",), "9876.55"),
        ("0.125", ("P1",), "12.5 %"),
        ("-0.125", ("P0",), "-13 %"),
        ("42.5", ("C",), "¤42.50"),
        ("-42.5", ("C0",), "(¤43)"),
        ("9876.545", ("E2",), "9.88E+003"),
        ("9876.545", ("e",), "9.876545e+003"),
        ("9876.5450", ("G",), "9876.5450"),  # a decimal keeps its scale
        ("9876.545", ("G3",), "9.88E+03"),
        ("1,234.5", ("F0",), "1235"),  # group separators are read
        ("12-", ("F0",), "-12"),  # so is a trailing sign
        ("42", ("Int", "D6"), "000042"),
        ("-42", ("Int32", "D4"), "-0042"),
        ("255", ("int", "X"), "FF"),
        ("-1", ("int", "x4"), "ffffffff"),
        ("42.5", ("Int", "D"), None),  # not an integer
        ("42", ("Decimal", "D"), None),  # 'D' is for integers
        ("0.1", ("Double", "R"), "0.1"),
        ("1e21", ("Double", "G"), "1E+21"),
        ("0.00001", ("Double", "G"), "1E-05"),
        ("0.0001", ("Double", "G"), "0.0001"),
        ("0.1", ("Double", "F20"), "0.10000000000000000555"),  # every digit of the double
        ("-0.001", ("Double", "F1"), "-0.0"),  # a negative double keeps its sign
        ("-0.001", ("F1",), "0.0"),  # a decimal does not
        ("1234567.891", ("#,##0.00",), "1,234,567.89"),
        ("1234567.891", ("0,,.0",), "1.2"),  # each ',' before the point divides by 1000
        ("0.4567", ("0.0%",), "45.7%"),
        ("1234.5", ("0.00E+00",), "1.23E+03"),
        ("1234.5", ("'#'0",), "#1235"),
        ("5550123", ("###-####",), "555-0123"),
        ("3", ("00-00",), "00-03"),
        ("0", ("#",), ""),
        ("-8", ("0;(0);none",), "(8)"),
        ("0", ("0;(0);none",), "none"),
        ("-0.004", ("0.00;(0.00);none",), "none"),  # rounds to zero: the zero section
        ("-8", ("0;;none",), "-8"),  # an empty negative section: the first, with a sign
        ("7", ("plain",), "plain"),
        ("12.5", ("N100",), None),  # a precision .NET Framework refuses
        ("1e5", ("F0",), None),  # no exponent in a decimal, and not a date
        ("hello", ("Double", "F0"), None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_format_numbers(value: str, args: tuple[str, ...], expected: str | None) -> None:
    assert apply_filter("Format", value, args) == expected


def test_a_decimal_holds_96_bits() -> None:
    assert run("Format", "79228162514264337593543950335", "N0") == (
        "79,228,162,514,264,337,593,543,950,335"
    )
    assert run("Format", "79228162514264337593543950336", "N0") is None
    assert run("Format", "0.12345678901234567890123456789", "F30") == (
        "0.123456789012345678901234567900"  # rounded to 28 decimals when read
    )


@pytest.mark.parametrize(
    ("value", "args", "expected"),
    [
        ("2.5", ("Double", "F0"), "2"),
        ("3.5", ("Double", "F0"), "4"),
        ("0.125", ("Double", "N2"), "0.12"),
        ("0.375", ("Double", "C2"), "¤0.38"),
        ("0.125", ("Double", "P0"), "12 %"),
        ("1250", ("Double", "E1"), "1.2E+003"),
        ("1250", ("Double", "G2"), "1.2E+03"),
        ("2.5", ("Decimal", "F0"), "3"),  # a decimal rounds half away from zero
        ("0.125", ("N2",), "0.13"),
        ("0.125", ("Double", "0.00"), "0.13"),  # a custom format rounds the digits up
        ("0.1", ("Double", "G0"), "0.1"),  # G0 is G: the shortest text
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v),
)
def test_an_exact_tie_in_a_double_rounds_to_even_in_standard_formats(
    value: str, args: tuple[str, ...], expected: str
) -> None:
    assert apply_filter("Format", value, args) == expected


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        ("9876.5", "#,##0 'r' #", "9,87 r 7"),  # separators follow digits, not placeholders
        ("7654321", "#,#-#0", "7,654,3-21"),
        ("7654321", "#,##0 units", "7,654,321 units"),
        ("98.5", ".00", "98.50"),  # digits before a leading point
        ("0.5", "#.#", ".5"),
        ("0", "0.#", "0"),
        ("9876.5", "#0.0E0", "98.8E2"),  # the integer placeholders set the exponent
        ("9876.5", "0.0E+0 E+0", "9.9E+3 E+0"),  # only the first E is an exponent
        ("7654321", "#,##0,", "7,654"),  # grouping, then a ',' before the point scales
    ],
    ids=lambda v: v,
)
def test_custom_numeric_formats_place_digits_as_dotnet_does(
    value: str, spec: str, expected: str
) -> None:
    assert run("Format", value, spec) == expected


# --- Markdown --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("*hello*", "<p><em>hello</em></p>\n\n"),
        (
            "see https://docs.example.org/x.",
            ('<p>see <a href="https://docs.example.org/x">https://docs.example.org/x</a>.</p>\n\n'),
        ),
        ("[home](https://example.org)", '<p><a href="https://example.org">home</a></p>\n\n'),
        (
            "|a|b|\n|-|-|\n|1|2|",
            (
                "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n"
                "<tbody>\n<tr>\n<td>1</td>\n<td>2</td>\n</tr>\n</tbody>\n</table>\n\n"
            ),
        ),
        ("~~old~~ H~2~O x^2^", "<p><del>old</del> H<sub>2</sub>O x<sup>2</sup></p>\n\n"),
        ("```sh\nmake all\n```", '<pre><code class="language-sh">make all\n</code></pre>\n\n'),
        ("  \n", "\n"),
    ],
    ids=["emphasis", "autolink", "link", "table", "emphasis-extras", "fenced-code", "blank"],
)
def test_markdown(value: str, expected: str) -> None:
    assert run("MarkdownToHTML", value) == run("Markdown", value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('a "quoted" <br> & more', "<p>a &quot;quoted&quot; <br> &amp; more</p>\n\n"),
        (
            "Steps:\n- build\n- ship",
            "<p>Steps:</p>\n<ul>\n<li>build</li>\n<li>ship</li>\n</ul>\n\n",
        ),
        (
            "- outer\n  - inner",
            "<ul>\n<li>outer\n<ul>\n<li>inner</li>\n</ul>\n</li>\n</ul>\n\n",
        ),
        ("++added++ ==marked==", "<p><ins>added</ins> <mark>marked</mark></p>\n\n"),
        ("1 ++ 2 ^ 3", "<p>1 ++ 2 ^ 3</p>\n\n"),  # lone markers stay text
        (
            "|l|r|\n|:-|-:|\n|1|2|",
            (
                '<table>\n<thead>\n<tr>\n<th style="text-align: left;">l</th>\n'
                '<th style="text-align: right;">r</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n'
                '<td style="text-align: left;">1</td>\n<td style="text-align: right;">2</td>\n'
                "</tr>\n</tbody>\n</table>\n\n"
            ),
        ),
        (
            "(www.example.org) [x](https://a.example)",
            '<p>(<a href="http://www.example.org">www.example.org</a>) '
            '<a href="https://a.example">x</a></p>\n\n',
        ),
        ("---", "<hr />\n\n"),
    ],
    ids=[
        "quotes",
        "list-after-paragraph",
        "two-space-nesting",
        "ins-mark",
        "lone-markers",
        "table-alignment",
        "www-autolink",
        "rule",
    ],
)
def test_markdown_is_commonmark_as_markdig_writes_it(value: str, expected: str) -> None:
    assert run("Markdown", value) == expected


# --- hostile input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "args"),
    [
        ("Indent", "\n" * 2000, ("x" * 100,)),
        ("Append", "x" * 5000, ("y" * 6000,)),
        ("Prepend", "", ("y" * 6000, "z" * 6000)),
        ("Replace", "x" * 3000, ("", "abcd")),
        ("Format", "1", ("0." + "0" * 20_000,)),
        ("Format", "1", ("%" * 6000 + "0",)),
        ("HtmlEscape", "'" * 3000, ()),
        ("YamlDoubleQuoteEscape", "é" * 2000, ()),
        ("UriDataEscape", "\U0001f680" * 1000, ()),
    ],
    ids=[
        "indent",
        "append",
        "prepend",
        "replace",
        "format-places",
        "format-scale",
        "html",
        "yaml",
        "uri",
    ],
)
def test_results_that_would_grow_past_the_limit_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, args: tuple[str, ...]
) -> None:
    monkeypatch.setattr(filters, "MAX_RESULT", 10_000)
    with pytest.raises(ResultTooLarge):
        apply_filter(name, value, args)


@pytest.mark.parametrize(
    ("name", "value", "args"),
    [
        ("Truncate", "text", ("9" * 5000,)),
        ("Substring", "text", ("1" * 5000,)),
        ("Format", "9" * 5000, ("N0",)),
        ("Format", "0." + "9" * 5000, ("Int", "D")),
        ("Md5", "text", ("9" * 5000,)),
        ("AddTimeSpan", "2029-11-03", ("9" * 5000,)),
        ("AddMonths", "2029-11-03", ("9" * 5000,)),
        ("Format", "2029-11-03" + " " * 5000 + "x", ("Date", "d")),
    ],
    ids=["truncate", "substring", "decimal", "int", "hash", "timespan", "months", "date"],
)
def test_long_numbers_are_refused_not_computed(
    name: str, value: str, args: tuple[str, ...]
) -> None:
    assert apply_filter(name, value, args) is None


def test_a_long_decimal_fraction_is_rounded_in_one_step() -> None:
    assert run("Format", "0." + "3" * 100_000, "F2") == "0.33"


def test_a_long_value_that_escapes_little_is_escaped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filters, "MAX_RESULT", 10_000)
    assert run("HtmlEscape", "a" * 5000 + "&") == "a" * 5000 + "&amp;"


def test_a_markdown_value_past_the_limit_fails_before_it_is_parsed() -> None:
    limit = filters.markdown_html.MAX_MARKDOWN
    assert run("Markdown", "a" * limit) == "<p>" + "a" * limit + "</p>\n\n"
    with pytest.raises(FilterFailed) as caught:
        run("Markdown", "![" * (limit // 2 + 1))  # re-scans link labels at every '['
    assert "![" not in str(caught.value)


def test_markdown_table_rows_may_leave_only_so_many_cells_to_fill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A header of many columns and rows of one cell: the parser fills every row to the
    header's width, so a few characters make thousands of cells."""
    monkeypatch.setattr(filters.markdown_html, "MAX_FILLED_CELLS", 100)
    header = "|" + "h|" * 21 + "\n|" + "-|" * 21 + "\n"
    filled = run("Markdown", header + "|a|\n" * 5)  # 100 cells filled in
    assert filled is not None and filled.count("<td></td>") == 100
    with pytest.raises(FilterFailed):
        run("Markdown", header + "|a|\n" * 6)
    with pytest.raises(FilterFailed):  # counted over the whole document
        run("Markdown", header + "|a|\n" * 3 + "\n" + header + "|a|\n" * 3)


def test_markdown_tables_written_in_full_fill_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filters.markdown_html, "MAX_FILLED_CELLS", 0)
    table = "|a|b|c|\n|-|-|-|\n" + "|1|2|3|\n" * 50 + "|1|2|3|4|\n"
    html = run("Markdown", table + "\ntext\n")
    assert html is not None and html.count("<td>1</td>") == 51 and "<td>4</td>" not in html
    assert html.endswith("</table>\n<p>text</p>\n\n")


def test_a_custom_format_of_many_group_separators_reads_them_in_one_pass() -> None:
    assert run("Format", "1234567", "#," * 50_000 + "0") == "1,234,567"
    assert run("Format", "1234567", "0" + "," * 50_000) == "0"


def test_what_a_filter_reads_is_weighted_by_its_work_per_character() -> None:
    """The evaluator charges ``read_cost`` to its budget: Markdown's parser does hundreds of
    times the work per character of an escape, so its input costs that much more."""
    assert filters.read_cost("ToUpper", "abcd", ("xy",)) == 6
    assert filters.read_cost("Replace", None, ("a", "b")) == 2
    assert filters.read_cost("markdown", "abcd") == filters.read_cost("MarkdownToHTML", "abcd")
    assert filters.read_cost("Markdown", "abcd") >= 4 * 256
