"""Manifest reads under load with ``wrk``, and what its report says."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from tests.bench.errors import BenchError
from tests.bench.registries import RegistryUnderTest
from tests.support.oci import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST

# What docker sends when it resolves a tag.
MANIFEST_ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_P99 = re.compile(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SECONDS_PER_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclass(frozen=True, slots=True)
class LoadResult:
    """wrk's figures. Its latency histogram is corrected for coordinated omission: a request
    that stalls a connection for a second also counts the requests that connection would have
    sent meanwhile, so one short stall of every connection shows in the p99."""

    requests_per_second: float
    p99_ms: float


def load_manifest(
    registry: RegistryUnderTest,
    repo: str,
    tag: str,
    *,
    connections: int = 32,
    threads: int = 2,
    seconds: int = 10,
) -> LoadResult:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        *registry.header_args(),
        *("-H", f"Accept: {MANIFEST_ACCEPT}"),
        f"{registry.url}/v2/{repo}/manifests/{tag}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return parse_report(registry.name, result.stdout)


def parse_report(name: str, report: str) -> LoadResult:
    """Throughput and p99 from ``wrk --latency``; any error response voids the run."""
    rate, p99, failures = (
        _REQUESTS_PER_SECOND.search(report),
        _P99.search(report),
        _NON_2XX.search(report),
    )
    if failures is not None:
        raise BenchError(f"{name}: {failures.group(1)} manifest GETs failed under load:\n{report}")
    if rate is None or p99 is None:
        raise BenchError(f"{name}: could not read wrk's report:\n{report}")
    p99_seconds = float(p99.group(1)) * _SECONDS_PER_UNIT[p99.group(2)]
    return LoadResult(float(rate.group(1)), p99_seconds * 1000)
