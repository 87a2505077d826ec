"""Pushing blobs (distribution-spec end-4a/4b, 5, 6, 11, 13), on both storage drivers."""

from __future__ import annotations

import os

import pytest

from tests.support.oci import Client, digest_of, error_codes

MiB = 1024 * 1024


def start(client: Client, repo: str) -> str:
    response = client.request("POST", f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    assert response.headers["Docker-Upload-UUID"]
    return response.headers["Location"]


def blob_is_readable(client: Client, repo: str, data: bytes) -> bool:
    response = client.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}")
    return response.status_code == 200 and response.content == data


def test_monolithic_post_then_put(client: Client, repo: str) -> None:
    """POST then a PUT carrying the whole blob creates it (201 with its location)."""
    data = os.urandom(10_000)
    location = start(client, repo)
    response = client.request("PUT", location, params={"digest": digest_of(data)}, data=data)
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{repo}/blobs/{digest_of(data)}"
    assert response.headers["Docker-Content-Digest"] == digest_of(data)
    assert blob_is_readable(client, repo, data)


def test_single_post_with_digest(client: Client, repo: str) -> None:
    """One POST with ?digest= and the body creates the blob."""
    data = os.urandom(5000)
    response = client.request(
        "POST", f"/v2/{repo}/blobs/uploads/", params={"digest": digest_of(data)}, data=data
    )
    assert response.status_code == 201
    assert blob_is_readable(client, repo, data)


def test_streamed_patch_without_content_range(client: Client, repo: str) -> None:
    """A PATCH streaming the whole blob (no Content-Range), then an empty PUT, creates it."""
    data = os.urandom(7 * MiB + 3)
    location = start(client, repo)

    def generate() -> object:
        for i in range(0, len(data), 256 * 1024):
            yield data[i : i + 256 * 1024]

    patched = client.request("PATCH", location, data=generate())
    assert patched.status_code == 202
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    done = client.request("PUT", patched.headers["Location"], params={"digest": digest_of(data)})
    assert done.status_code == 201
    assert blob_is_readable(client, repo, data)


@pytest.mark.parametrize("chunk", [1, 1000, 3 * MiB, 5 * MiB + 1])
def test_chunked_upload_in_any_chunk_size(client: Client, repo: str, chunk: int) -> None:
    """Chunks of any size, each with its Content-Range, assemble the blob exactly."""
    data = os.urandom(min(chunk * 3 + 7, 12 * MiB))
    location = start(client, repo)
    for offset in range(0, len(data), chunk):
        piece = data[offset : offset + chunk]
        response = client.request(
            "PATCH",
            location,
            data=piece,
            headers={
                "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert response.status_code == 202, response.text
        assert response.headers["Range"] == f"0-{offset + len(piece) - 1}"
        location = response.headers["Location"]
        if chunk == 1 and offset >= 5:
            # Tiny chunks: the rest goes as the final PUT's body.
            rest = data[offset + 1 :]
            done = client.request("PUT", location, params={"digest": digest_of(data)}, data=rest)
            assert done.status_code == 201, done.text
            break
    else:
        done = client.request("PUT", location, params={"digest": digest_of(data)})
        assert done.status_code == 201, done.text
    assert blob_is_readable(client, repo, data)


def test_out_of_order_and_repeated_chunks_get_416(client: Client, repo: str) -> None:
    """A chunk that does not start at the current offset is refused with 416; the upload
    then resumes from the offset a status GET reports."""
    data = os.urandom(3000)
    location = start(client, repo)
    first = client.request("PATCH", location, data=data[:1000], headers={"Content-Range": "0-999"})
    assert first.status_code == 202
    skipped = client.request(
        "PATCH", location, data=data[2000:], headers={"Content-Range": "2000-2999"}
    )
    assert skipped.status_code == 416
    assert error_codes(skipped) == ["RANGE_INVALID"]
    repeated = client.request(
        "PATCH", location, data=data[:1000], headers={"Content-Range": "0-999"}
    )
    assert repeated.status_code == 416

    status = client.request("GET", location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-999"
    assert status.headers["Location"] == location
    rest = client.request(
        "PATCH", location, data=data[1000:], headers={"Content-Range": "1000-2999"}
    )
    assert rest.status_code == 202
    assert client.request("PUT", location, params={"digest": digest_of(data)}).status_code == 201
    assert blob_is_readable(client, repo, data)


def test_content_length_must_match_content_range(client: Client, repo: str) -> None:
    """A chunk whose length disagrees with its Content-Range is refused and not counted."""
    location = start(client, repo)
    response = client.request("PATCH", location, data=b"x" * 10, headers={"Content-Range": "0-19"})
    assert response.status_code == 400
    assert error_codes(response) == ["SIZE_INVALID"]
    assert client.request("GET", location).headers["Range"] == "0-0"


def test_digest_mismatch_leaves_nothing(client: Client, repo: str) -> None:
    """A PUT with the wrong digest is refused, cancels the session and links nothing."""
    data, other = os.urandom(4096), os.urandom(4096)
    location = start(client, repo)
    response = client.request("PUT", location, params={"digest": digest_of(other)}, data=data)
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.request("GET", f"/v2/{repo}/blobs/{digest_of(data)}").status_code == 404
    assert client.request("GET", f"/v2/{repo}/blobs/{digest_of(other)}").status_code == 404
    assert client.request("GET", location).status_code == 404


def test_put_without_digest_is_refused(client: Client, repo: str) -> None:
    """Finishing an upload needs ?digest=; without it the session stays open."""
    location = start(client, repo)
    response = client.request("PUT", location, data=b"abc")
    assert response.status_code == 400
    assert error_codes(response) == ["DIGEST_INVALID"]
    assert client.request("GET", location).status_code == 204


def test_cancelled_upload_is_gone(client: Client, repo: str) -> None:
    """DELETE on a session cancels it: later requests on it get BLOB_UPLOAD_UNKNOWN."""
    location = start(client, repo)
    client.request("PATCH", location, data=b"abc")
    assert client.request("DELETE", location).status_code == 204
    response = client.request("GET", location)
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]


def test_session_belongs_to_its_repository(client: Client, repo: str) -> None:
    """A session id used under another repository is unknown there."""
    location = start(client, repo)
    upload_id = location.rsplit("/", 1)[1]
    response = client.request("GET", f"/v2/{repo}-other/blobs/uploads/{upload_id}")
    assert response.status_code == 404
    assert error_codes(response) == ["BLOB_UPLOAD_UNKNOWN"]
    bogus = client.request("GET", f"/v2/{repo}/blobs/uploads/not-a-uuid")
    assert error_codes(bogus) == ["BLOB_UPLOAD_UNKNOWN"]


def test_mount_from_another_repository(client: Client, repo: str) -> None:
    """Mounting a blob the source holds links it without upload (201 + blob location)."""
    data = os.urandom(2000)
    client.push_blob(repo, data)
    target = f"{repo}-mounted"
    response = client.request(
        "POST",
        f"/v2/{target}/blobs/uploads/",
        params={"mount": digest_of(data), "from": repo},
    )
    assert response.status_code == 201
    assert response.headers["Location"] == f"/v2/{target}/blobs/{digest_of(data)}"
    assert blob_is_readable(client, target, data)


def test_mount_of_a_blob_the_source_lacks_starts_an_upload(client: Client, repo: str) -> None:
    """When the source does not hold the blob, the mount falls back to a new session (202)."""
    data = os.urandom(2000)
    response = client.request(
        "POST", f"/v2/{repo}/blobs/uploads/", params={"mount": digest_of(data), "from": repo + "x"}
    )
    assert response.status_code == 202
    assert "/blobs/uploads/" in response.headers["Location"]


def test_mount_without_from_finds_a_readable_copy(client: Client, repo: str) -> None:
    """Without `from`, a blob held by any repository the caller may read is mounted."""
    data = os.urandom(3000)
    client.push_blob(repo, data)
    target = f"{repo}-auto"
    response = client.request(
        "POST", f"/v2/{target}/blobs/uploads/", params={"mount": digest_of(data)}
    )
    assert response.status_code == 201
    assert blob_is_readable(client, target, data)
    unknown = client.request(
        "POST", f"/v2/{target}/blobs/uploads/", params={"mount": digest_of(os.urandom(8))}
    )
    assert unknown.status_code == 202


def test_pushing_an_existing_blob_again_is_fine(client: Client, repo: str) -> None:
    """The same content pushed twice (here, to two repositories) is stored once and readable
    from both."""
    data = os.urandom(1234)
    client.push_blob(repo, data)
    client.push_blob(f"{repo}-again", data)
    assert blob_is_readable(client, repo, data)
    assert blob_is_readable(client, f"{repo}-again", data)
