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
