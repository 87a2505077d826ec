"""Small requests by the thousand, and timed single reads, with ``curl`` carrying them.

A batch is one ``curl --parallel`` process reading its requests from a config file: it keeps
``clients`` connections busy, each sending its next request as soon as the last one answered,
as that many docker clients pushing at once would, and writes every request's status and time
in the order they complete. A timed read is one ``curl`` per page, following ``Link``; the
time is curl's own (``time_total``), so no process start or Python counts in it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from tests.bench.errors import BenchError
from tests.bench.registries import RegistryUnderTest
from tests.bench.transfer import CURL, NO_EXPECT

LINK_NEXT = 'rel="next"'


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a batch: a PUT of ``body`` when there is one, else a bodiless POST."""

    url: str
    body: Path | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    seconds: float
    # Each request's time in milliseconds, in the order the answers came.
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    @classmethod
    def joined(cls, batches: Iterable[Batch]) -> Batch:
        """Batches sent one after the other, as one."""
        seconds, latencies = 0.0, []
        for batch in batches:
            seconds += batch.seconds
            latencies += batch.latencies_ms
        return cls(seconds, latencies)


def run_batch(
    registry: RegistryUnderTest,
    requests: Iterable[Request],
    config: Path,
    *,
    clients: int,
    status: int,
) -> Batch:
    """Send ``requests``, ``clients`` at a time; every answer must have ``status``."""
    count = _write_config(registry, requests, config)
    command = [*CURL, "--parallel", "--parallel-immediate", "--parallel-max", str(clients)]
    started = time.perf_counter()
    result = subprocess.run(
        [*command, "--config", str(config)], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"{registry.name}: curl failed ({result.returncode}): {result.stderr}")
    lines = result.stdout.split()
    codes, times = lines[0::2], lines[1::2]
    if len(codes) != count or any(code != str(status) for code in codes):
        wrong = sorted({code for code in codes if code != str(status)})
        raise BenchError(
            f"{registry.name}: {len(codes)} of {count} requests answered,"
            f" statuses other than {status}: {wrong}"
        )
    return Batch(seconds, [float(t) * 1000 for t in times])


def _write_config(registry: RegistryUnderTest, requests: Iterable[Request], config: Path) -> int:
    """curl's config file: one block of options per request, ``next`` between them."""
    headers = [f"{key}: {value}" for key, value in registry.headers.items()]
    headers.append(NO_EXPECT[1])
    count = 0
    with config.open("w") as handle:
        for request in requests:
            if count:
                handle.write("next\n")
            count += 1
            lines = [f"url = {_quoted(request.url)}"]
            if request.body is None:
                lines.append('request = "POST"')
            else:
                lines.append(f"upload-file = {_quoted(str(request.body))}")
            if request.content_type is not None:
                lines.append(f"header = {_quoted('Content-Type: ' + request.content_type)}")
            lines += [f"header = {_quoted(header)}" for header in headers]
            lines += ['output = "/dev/null"', 'write-out = "%{http_code} %{time_total}\\n"']
            handle.write("\n".join(lines) + "\n")
    return count


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class Read:
    """A read's time summed over its pages, and what the pages said."""

    milliseconds: float
    pages: list[Any]
    # What a page answered instead of 200; the read stopped there.
    failure: str | None = None

    def answered(self, registry: RegistryUnderTest) -> Read:
        """This read, which must have succeeded."""
        if self.failure is not None:
            raise BenchError(f"{registry.name}: {self.failure}")
        return self


def timed_read(
    registry: RegistryUnderTest, url: str, workfile: Path, *, method: str = "GET"
) -> Read:
    """``url`` and, for a paged listing, every page its ``Link`` headers lead to."""
    total_ms = 0.0
    pages: list[Any] = []
    next_url: str | None = url
    while next_url is not None:
        written = _curl(
            registry,
            [
                *registry.header_args(),
                "--request", method,
                "--output", str(workfile),
                "--write-out", "%{http_code} %{time_total} %header{link}",
                next_url,
            ],
        )  # fmt: skip
        code, _, rest = written.partition(" ")
        seconds, _, link = rest.partition(" ")
        total_ms += float(seconds) * 1000
        if code != "200":
            return Read(total_ms, pages, f"{method} {next_url} answered {code}")
        pages.append(json.loads(workfile.read_bytes()))
        next_url = _next_page(next_url, link)
    return Read(total_ms, pages)


def _next_page(current: str, link: str) -> str | None:
    if LINK_NEXT not in link:
        return None
    target = link.split(";", 1)[0].strip().removeprefix("<").removesuffix(">")
    return urljoin(current, target)


def _curl(registry: RegistryUnderTest, args: list[str]) -> str:
    result = subprocess.run([*CURL, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"{registry.name}: curl failed ({result.returncode}): {result.stderr}")
    return result.stdout.strip()
