"""Bad input of every shape gets a clear 4xx with an OCI error body, never a 5xx, and a
refused manifest changes nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.oci import OCI_INDEX, OCI_MANIFEST, Client, digest_of

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PATH_TEXT = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters="/?#%\x00"), min_size=0, max_size=80
)
# Printable ASCII without surrounding spaces: what an HTTP client can put in a header value.
HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=60
).map(str.strip)
# Near-valid digests reach further into the parser than random text does.
DIGEST_TEXT = PATH_TEXT | st.builds(
    "{}:{}".format,
    st.sampled_from(["sha256", "sha512", "md5", "SHA256", ""]),
    st.text(alphabet="0123456789abcdefABCDEF=-_", max_size=130),
)
JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
MANIFEST_KEYS = [
    "schemaVersion",
    "mediaType",
    "config",
    "layers",
    "manifests",
    "subject",
    "artifactType",
    "annotations",
]
MANIFEST_LIKE = st.dictionaries(st.sampled_from(MANIFEST_KEYS), JSON_VALUE, max_size=8)


def assert_client_error(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400 and response.request.method != "HEAD":
        body = response.json()
        assert body["errors"] and all("code" in error for error in body["errors"])


@FUZZ
@given(
    name=PATH_TEXT,
    reference=PATH_TEXT,
    method=st.sampled_from(["GET", "HEAD", "DELETE", "PUT"]),
)
def test_fuzzed_names_and_references(
    client: Client, name: str, reference: str, method: str
) -> None:
    """Any name and reference on the manifest endpoints is answered without a server error."""
    response = client.request(method, f"/v2/spaces-1/{name}/manifests/{reference}", data=b"{}")
    assert_client_error(response)


@FUZZ
@given(digest=DIGEST_TEXT, range_header=HEADER_TEXT)
def test_fuzzed_digests_and_ranges(
    client: Client, repo: str, digest: str, range_header: str
) -> None:
    """Any digest and Range on blob reads, and any digest on referrers, is a clean answer."""
    known = client.push_blob(repo, b"fuzz-target-blob")
    for path in (f"/v2/{repo}/blobs/{digest}", f"/v2/{repo}/referrers/{digest}"):
        assert_client_error(client.request("GET", path, headers={"Range": range_header}))
    response = client.request("GET", f"/v2/{repo}/blobs/{known}", headers={"Range": range_header})
    assert_client_error(response)
    if response.status_code in (200, 206):
        assert response.content in b"fuzz-target-blob"


@FUZZ
@given(content_range=HEADER_TEXT, body=st.binary(max_size=64), digest=DIGEST_TEXT)
def test_fuzzed_upload_requests(
    client: Client, repo: str, content_range: str, body: bytes, digest: str
) -> None:
    """Any Content-Range, body and digest on an upload session is a clean answer."""
    location = client.request("POST", f"/v2/{repo}/blobs/uploads/").headers["Location"]
    assert_client_error(
        client.request("PATCH", location, data=body, headers={"Content-Range": content_range})
    )
    assert_client_error(client.request("PUT", location, params={"digest": digest}, data=body))
    assert_client_error(
        client.request(
            "POST", f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": digest}
        )
    )


@FUZZ
@given(document=MANIFEST_LIKE, media_type=st.sampled_from([OCI_MANIFEST, OCI_INDEX, "", "x/y"]))
def test_fuzzed_manifests_change_nothing(
    client: Client, repo: str, document: dict[str, Any], media_type: str
) -> None:
    """Any manifest-like JSON is stored or refused with a 4xx; a refused one leaves no trace."""
    body = json.dumps(document).encode()
    response = client.put_manifest(repo, "fuzzed", body, media_type)
    assert_client_error(response)
    stored = client.request("GET", f"/v2/{repo}/manifests/{digest_of(body)}")
    if response.status_code == 201:
        assert stored.content == body
    else:
        assert stored.status_code == 404
        assert client.request("GET", f"/v2/{repo}/manifests/fuzzed").status_code == 404
