"""Sensitive values are masked in what leaves the builder, and found in image config, as
themselves and in the encodings a build step or a filter would print them in."""

from __future__ import annotations

import base64
import html
import json
import urllib.parse

import pytest

from services.builder.redaction import MASK, Masker, base64_cores, holds_secret

SECRET = "Tr0ub4dor&3 'horse' <staple>"
CONFIG = "listen: 8080\ndb:\n  password: {}\n  pool: 5\n"


def config_file(prefix: str) -> bytes:
    """A file holding the secret after ``prefix``: its bytes start at that offset."""
    return (prefix + CONFIG.format(SECRET)).encode()


@pytest.mark.parametrize("prefix", ["", "#", "##", "###", "#" * 40])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_of_a_file_holding_the_secret_is_masked_at_any_offset(
    prefix: str, encode: object
) -> None:
    """``RUN base64 /app.conf``: the secret sits at some offset inside the encoded file."""
    assert callable(encode)
    encoded = encode(config_file(prefix)).decode()
    masked = Masker([SECRET]).mask(f"step output: {encoded}")
    before, after = masked.removeprefix("step output: ").split(MASK)
    assert encoded.startswith(before) and encoded.endswith(after)
    # Hidden: every character that depends on the secret's bytes alone (4 per 3 bytes).
    assert len(encoded) - len(before) - len(after) >= len(SECRET) * 4 // 3 - 1


def test_base64_wrapped_at_76_columns_is_masked_in_one_text_and_line_by_line() -> None:
    masker = Masker([SECRET])
    for prefix_length in range(40, 80):
        wrapped = base64.encodebytes(config_file("x" * prefix_length)).decode()
        assert SECRET.encode() in base64.b64decode(wrapped)
        whole = masker.mask(wrapped)
        assert MASK in whole and whole.count("\n") == wrapped.count("\n")
        line_by_line = [masker.mask(line) for line in wrapped.splitlines()]
        assert any(MASK in line for line in line_by_line)
        cores = base64_cores(SECRET.encode())
        for line in line_by_line:  # no six characters of the secret's encoding survive
            windows = {line[i : i + 6] for i in range(len(line) - 5)}
            assert not any(window in core for window in windows for core in cores)


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
        html.escape(SECRET),
        html.escape(SECRET, quote=False),
        json.dumps(SECRET)[1:-1],
        json.dumps("é" + SECRET)[1:-1],
        json.dumps("é" + SECRET, ensure_ascii=False)[1:-1],
        SECRET.encode().hex(),
        SECRET.encode().hex().upper(),
        base64.b64encode(SECRET.encode()).decode(),
    ],
    ids=["plain", "url", "url-plus", "html", "html-no-quotes", "json", "json-ascii",
         "json-unicode", "hex", "hex-upper", "base64"],
)  # fmt: skip
def test_each_encoding_is_masked(form: str) -> None:
    masked = Masker([SECRET]).mask(f"before {form} after")
    assert masked.startswith("before ") and masked.endswith(" after")
    assert MASK in masked and form not in masked
    assert holds_secret({"config": {"Labels": {"x": f"a {form} b"}}}, [SECRET])


def test_unrelated_text_is_left_alone() -> None:
    masker = Masker([SECRET, "abc"])
    text = "Step 3/7 : RUN make all -j4 && echo 'done' 0123456789ABCDEF QUJD YWJj 6162"
    assert masker.mask(text) == text  # "abc" is YWJj in base64: too short to mask
    assert Masker([]).mask(text) == text and Masker(["", ""]).mask(text) == text
    assert not holds_secret({"config": {"Env": [text]}}, [SECRET])


def test_a_masked_run_keeps_its_line_breaks() -> None:
    secret = "line-one\nline-two"
    assert Masker([secret]).mask(f"a {secret} b\nnext") == f"a {MASK}\n{MASK} b\nnext"
    assert Masker([SECRET]).mask(f"x{SECRET}\n{SECRET}") == f"x{MASK}\n{MASK}"


def test_the_build_log_masks_encoded_values() -> None:
    from services.builder.worker import BuildLog

    build_log = BuildLog([SECRET])
    build_log(base64.b64encode(config_file("##")).decode())
    build_log(f"curl -d 'p={urllib.parse.quote(SECRET, safe='')}'")
    assert all(MASK in line for line in build_log.lines)
    assert not any(SECRET.encode().hex() in line for line in build_log.lines)


def test_a_value_json_could_not_encode_as_utf8_is_still_masked() -> None:
    """A lone surrogate (``"\\ud800"`` in the request's JSON) must not break the build log."""
    secret = "half\ud800pair-secret"
    assert Masker([secret]).mask(f"x {secret} y") == f"x {MASK} y"


PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n"
    "  Nf3Z+OrIQ==\n"
    "-----END PRIVATE KEY-----\n"
)


def test_each_line_of_a_multi_line_value_is_masked_line_by_line() -> None:
    """``RUN cat key.pem``: the build log gets the key a line at a time, none of which holds
    the whole value."""
    from services.builder.worker import BuildLog

    build_log = BuildLog([PEM])
    for line in PEM.splitlines():
        build_log(f"#7 0.412 {line}")
    build_log("#7 DONE 0.5s")
    lines = [line.split("] ", 1)[1] for line in build_log.lines]
    expected = [f"#7 0.412 {' ' * (len(x) - len(x.lstrip()))}{MASK}" for x in PEM.splitlines()]
    assert lines == [*expected, "#7 DONE 0.5s"]
    assert lines[4] == f"#7 0.412   {MASK}"  # the line's own indent is kept
    body = [line.strip() for line in PEM.splitlines()[1:-1]]
    masker = Masker([PEM])
    assert masker.mask(f"x={urllib.parse.quote(body[2], safe='')};") == f"x={MASK};"
    assert masker.mask(body[0].encode().hex()) == MASK
    assert masker.mask(json.dumps({"k": body[1]})) == f'{{"k": "{MASK}"}}'


def test_short_lines_of_a_value_are_not_masked_alone() -> None:
    """A line under six characters would mask noise wherever it appears."""
    masker = Masker(["}\nend\n  ok  \nlong-enough-line\n"])
    assert masker.mask("} end ok fine") == "} end ok fine"
    assert masker.mask("see long-enough-line here") == f"see {MASK} here"
    assert Masker(["single-line value"]).mask("single-line") == "single-line"


def test_a_line_alone_is_masked_but_does_not_make_a_secret_found() -> None:
    """An image may carry a public certificate's ``-----END ...-----`` line innocently."""
    assert not holds_secret({"config": {"Labels": {"x": PEM.splitlines()[-1]}}}, [PEM])
    assert holds_secret({"config": {"Labels": {"x": PEM}}}, [PEM])


# --- the configuration features' writers ----------------------------------------------------

WRITTEN_SECRETS = [
    "alpha\tbravo\x01charlie",  # a tab and a control character
    "alpha-\u00e9\u20ac-bravo\U0001f600charlie",  # Latin-1, past Latin-1, past the BMP
    "alpha \"bravo\" \\ <charlie> & 'delta'",  # quotes, a backslash, markup
    "alpha\u2028bravo\x85charlie\x1bdelta",  # YAML's and JSON's line separators, an escape
    "  alpha: bravo=charlie",  # a .properties key's and value's specials
]
WORDS = ("alpha", "bravo", "charlie", "delta")


def written(filename: str, content: str, name: str, secret: str) -> str | None:
    from services.builder.features.structured import StructuredError, replace_structured

    try:
        out, _ = replace_structured(filename, content.encode(), [name], lambda _: secret)
    except StructuredError:
        return None  # a value the format cannot hold (XML and U+001B)
    return out.decode("utf-8-sig")


STRUCTURED = [
    ("app.json", '{"p": "x"}', "p"),
    ("app.yaml", "db:\n  password: x\n", "db:password"),
    ("app.yaml", "db:\n  password: 'x'\n", "db:password"),
    ("app.xml", "<c><db password='x'/></c>", "/c/db/@password"),
    ("app.xml", "<c><db>x</db></c>", "/c/db"),
    ("app.properties", "db.password=x\n", "db.password"),
]


def assert_masked(masker: Masker, text: str, secret: str) -> None:
    masked = masker.mask(text)
    assert MASK in masked
    left = [word for word in WORDS if word in masked and word in secret]
    assert not left, f"{left} of {secret!r} in {masked!r}"


@pytest.mark.parametrize("secret", WRITTEN_SECRETS)
@pytest.mark.parametrize(("filename", "content", "name"), STRUCTURED)
def test_values_as_the_structured_variables_write_them_are_masked(
    secret: str, filename: str, content: str, name: str
) -> None:
    """What ``spacedock sdi preview`` diffs: .properties ``\\uXXXX``, XML ``&#x9;``, YAML's
    ``\\x01`` and ``\\L``, JSON's ``\\u0001``."""
    text = written(filename, content, name, secret)
    if text is None:
        return
    assert_masked(Masker([secret]), text, secret)
    assert holds_secret({"config": {"Labels": {"file": text}}}, [secret])


ESCAPING_FILTERS = [
    "HtmlEscape", "XmlEscape", "JsonEscape", "YamlSingleQuoteEscape", "YamlDoubleQuoteEscape",
    "PropertiesKeyEscape", "PropertiesValueEscape", "UriEscape", "UriDataEscape",
]  # fmt: skip


@pytest.mark.parametrize("secret", WRITTEN_SECRETS)
@pytest.mark.parametrize("name", ESCAPING_FILTERS)
def test_values_as_the_escaping_filters_write_them_are_masked(secret: str, name: str) -> None:
    from services.builder.features.filters import apply_filter

    escaped = apply_filter(name, secret, ())
    assert escaped is not None
    assert_masked(Masker([secret]), f"value: {escaped};", secret)


@pytest.mark.parametrize("secret", WRITTEN_SECRETS)
def test_values_as_transforms_and_config_variables_write_them_are_masked(secret: str) -> None:
    from services.builder.features.dotnet_config import replace_config_variables
    from services.builder.features.xdt import escape_net

    masker = Masker([secret])
    if not any(char < " " and char not in "\t\n\r" for char in secret):  # lxml refuses those
        config = (
            b'<configuration><appSettings><add key="Pw" value="x" /></appSettings></configuration>'
        )
        out, _ = replace_config_variables(config, ["Pw"], lambda _: secret)
        assert_masked(masker, out.decode("utf-8-sig"), secret)
    assert_masked(masker, escape_net(secret, attribute=True), secret)
    assert_masked(masker, escape_net(secret, attribute=False), secret)
