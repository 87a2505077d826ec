"""The management API over HTTP, for the verbs: JSON calls, a streamed upload, a streamed
download, and every failure turned into the exception that carries its exit code.

urllib keeps the CLI free of dependencies beyond the standard library; each call opens its
own connection, which costs nothing beside the work of a management operation.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacedock.verbs.outcomes import ApiFailed, Unreachable, UsageError, VerbFailed

# A management call that sends or receives nothing for this long has lost its server.
SOCKET_TIMEOUT_SECONDS = 60
CHUNK = 1024 * 1024


def check_url(url: str) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a port that is no number raises here, not at the first request
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise UsageError(f"{url!r} is not an http(s) URL of a registry: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise UsageError(f"{url!r} is not an http(s) URL of a registry")
    if any(ch.isspace() for ch in url):
        raise UsageError(f"{url!r} is not an http(s) URL of a registry: it holds a space")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The management API never redirects: a 3xx comes from something in between, and
    following it would send the caller's credentials to wherever it points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def path(*segments: str) -> str:
    """``/seg1/seg2/...`` with each segment quoted whole. An argument such as a space or a
    tag is one segment: ``..`` or a ``/`` in it cannot reach another route."""
    for segment in segments:
        if segment in ("", ".", ".."):
            raise UsageError(f"{segment!r} is not a name the API knows")
    return "".join("/" + urllib.parse.quote(segment, safe="") for segment in segments)


def repository_segments(repository: str) -> list[str]:
    """A repository name inside a space (``team/app``) as path segments."""
    return repository.split("/")


@dataclass(frozen=True, slots=True)
class Download:
    filename: str | None  # the server's name for the file (Content-Disposition)
    length: int | None
    chunks: Iterator[bytes]


class Api:
    """The ``/api/v1`` of one registry, as one user (HTTP Basic: a password or an API key)."""

    def __init__(self, url: str, user: str, secret: str) -> None:
        check_url(url)
        self.url = url.rstrip("/")
        self.base = self.url + "/api/v1"
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    def call(
        self,
        method: str,
        where: str,
        body: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> Any:
        """The JSON answer of ``method`` on ``where`` (made by ``path``); None when empty."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        with self._open(method, where, query, data, headers) as response:
            raw = self._read(response.read)
        return _json(raw)

    def upload(
        self,
        where: str,
        file: Path,
        query: dict[str, str],
        on_bytes: Callable[[int], None],
    ) -> Any:
        """POST ``file`` as the multipart field ``file``, streamed from disk; ``on_bytes`` is
        told of each chunk of the file sent."""
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{_header_safe(file.name)}"'
            "\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        headers = {
            **self.headers,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + file.stat().st_size + len(tail)),
        }

        def body() -> Iterator[bytes]:
            yield head
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    yield chunk
                    on_bytes(len(chunk))
            yield tail

        with self._open("POST", where, query, body(), headers) as response:
            raw = self._read(response.read)
        return _json(raw)

    @contextmanager
    def download(self, where: str) -> Iterator[Download]:
        """The body of GET ``where``, in chunks, as it arrives."""
        headers = {**self.headers, "Accept": "*/*"}
        with self._open("GET", where, None, None, headers) as response:
            length = response.headers.get("Content-Length")

            def chunks() -> Iterator[bytes]:
                while chunk := self._read(lambda: response.read(CHUNK)):
                    yield chunk

            yield Download(
                response.headers.get_filename(),
                int(length) if length and length.isdigit() else None,
                chunks(),
            )

    @contextmanager
    def _open(
        self,
        method: str,
        where: str,
        query: dict[str, str] | None,
        data: bytes | Iterable[bytes] | None,
        headers: dict[str, str],
    ) -> Iterator[http.client.HTTPResponse]:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        request = urllib.request.Request(
            self.base + where + suffix, data=data, method=method, headers=headers
        )
        try:
            response = _OPENER.open(request, timeout=SOCKET_TIMEOUT_SECONDS)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _api_failed(exc) from exc
        except urllib.error.URLError as exc:
            raise Unreachable(f"cannot reach {self.url}: {exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(exc) from exc
        with response:
            yield response

    def _read(self, read: Callable[[], bytes]) -> bytes:
        try:
            return read()
        except (OSError, http.client.HTTPException) as exc:
            raise self._broken(exc) from exc

    def _broken(self, exc: BaseException) -> Unreachable:
        if isinstance(exc, TimeoutError):
            return Unreachable(f"no answer from {self.url} in {SOCKET_TIMEOUT_SECONDS} s")
        return Unreachable(f"the connection to {self.url} broke: {exc!r}")


def _api_failed(exc: urllib.error.HTTPError) -> ApiFailed:
    """The API's ``{"error": {"code", "message"}}``, or the bare status when the answer is
    not one (a proxy's error page, say)."""
    try:
        error = json.loads(exc.read())["error"]
        return ApiFailed(exc.code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError, OSError, http.client.HTTPException):
        return ApiFailed(exc.code, "HTTP", str(exc.reason))


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise VerbFailed("the answer is not JSON: is the URL a Spacedock registry's?") from exc


def _header_safe(name: str) -> str:
    """The file name as a quoted header value: a quote or a line break in it would end the
    header early; the server refuses such a name, and says so."""
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
