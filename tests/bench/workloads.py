"""The workloads of PRODUCT.md §10, run on Distribution and on Spacedock in alternation.

Throughputs on a small shared machine wander by tens of percent from one run to the next, so
each blob workload runs several rounds, alternating registries so that a slow spell hurts both,
and reports the median. Rounds after the first push bytes the registry already holds; both
registries still receive and hash all of them, and the PUT that closes an upload is a few
milliseconds out of seconds either way.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from tests.bench import transfer
from tests.bench.memory import PeakRss
from tests.bench.payloads import Payload, Payloads, RepeatedPayload
from tests.bench.registries import Registries, RegistryUnderTest
from tests.bench.report import REPORTED, Bar, Measurement, at_least, below
from tests.bench.wrk import LoadResult, load_manifest

REPO = "spaces-1/bench"
TAG = "latest"
MB = 1_000_000
MEMORY_LIMIT_MB = 200
BLOB_ROUNDS = 5

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Pair(Generic[T]):
    spacedock: T
    distribution: T


def on_both(
    registries: Registries, action: Callable[[RegistryUnderTest], T], rounds: int = 1
) -> Pair[list[T]]:
    """Distribution, then Spacedock, ``rounds`` times: one at a time, never competing for CPU."""
    results: Pair[list[T]] = Pair(spacedock=[], distribution=[])
    for _ in range(rounds):
        results.distribution.append(action(registries.distribution))
        results.spacedock.append(action(registries.spacedock))
    return results


def run_all(registries: Registries, payloads: Payloads) -> list[Measurement]:
    on_both(registries, lambda registry: transfer.push_image(registry, REPO, TAG))
    return [
        blob_push(registries, [payloads.single], "push 1 x 512 MiB"),
        blob_push(registries, payloads.parallel, "push 8 x 64 MiB parallel"),
        blob_pull(registries, [payloads.single], "pull 1 x 512 MiB"),
        blob_pull(registries, payloads.parallel, "pull 8 x 64 MiB parallel"),
        *manifest_reads(registries),
        *huge_blob(registries, payloads.huge),
    ]


def blob_push(registries: Registries, blobs: list[Payload], workload: str) -> Measurement:
    """Aggregate MB/s of pushing ``blobs`` all at once, from the POST to the final PUT."""

    def measure(registry: RegistryUnderTest) -> float:
        actions = [partial(transfer.push, registry, REPO, blob) for blob in blobs]
        return _progress(workload, registry, _mb_per_second(_total(blobs), actions), "MB/s")

    return _median(workload, "MB/s", at_least(3), on_both(registries, measure, BLOB_ROUNDS))


def blob_pull(registries: Registries, blobs: list[Payload], workload: str) -> Measurement:
    def measure(registry: RegistryUnderTest) -> float:
        actions = [partial(transfer.pull, registry, REPO, blob.digest, blob.size) for blob in blobs]
        return _progress(workload, registry, _mb_per_second(_total(blobs), actions), "MB/s")

    return _median(workload, "MB/s", at_least(1), on_both(registries, measure, BLOB_ROUNDS))


def manifest_reads(registries: Registries) -> list[Measurement]:
    """GET by tag from 32 connections for 10 s: throughput and tail latency."""

    def measure(registry: RegistryUnderTest) -> LoadResult:
        result = load_manifest(registry, REPO, TAG)
        _progress("manifest GET", registry, result.requests_per_second, "req/s")
        return result

    loads = _only(on_both(registries, measure))
    workload = "manifest GET by tag, 32 conns"
    return [
        Measurement(
            workload,
            "req/s",
            loads.spacedock.requests_per_second,
            loads.distribution.requests_per_second,
            at_least(3),
        ),
        Measurement(
            workload + ", p99",
            "ms",
            loads.spacedock.p99_ms,
            loads.distribution.p99_ms,
            REPORTED,
        ),
    ]


@dataclass(frozen=True, slots=True)
class HugeBlobRun:
    push_mb_per_second: float
    pull_mb_per_second: float
    peak_rss_mb: float
    rss_growth_mb: float


def huge_blob(registries: Registries, blob: RepeatedPayload) -> list[Measurement]:
    """Push (streamed, chunked) then pull 2 GiB while watching the registry's resident memory.

    The registry has served every earlier workload by then, as a registry in service would
    have; the growth during this workload alone is reported next to the peak.
    """

    def measure(registry: RegistryUnderTest) -> HugeBlobRun:
        with PeakRss(registry.pid) as rss:
            push = _mb_per_second(blob.size, [partial(transfer.push_stream, registry, REPO, blob)])
            pull = _mb_per_second(
                blob.size, [partial(transfer.pull, registry, REPO, blob.digest, blob.size)]
            )
        run = HugeBlobRun(push, pull, rss.peak_bytes / MB, (rss.peak_bytes - rss.start_bytes) / MB)
        _progress("2 GiB push+pull peak RSS", registry, run.peak_rss_mb, "MB")
        return run

    runs = _only(on_both(registries, measure))
    workload = "2 GiB blob, streamed push + pull"
    return [
        Measurement(
            workload + ": push",
            "MB/s",
            runs.spacedock.push_mb_per_second,
            runs.distribution.push_mb_per_second,
            REPORTED,
        ),
        Measurement(
            workload + ": pull",
            "MB/s",
            runs.spacedock.pull_mb_per_second,
            runs.distribution.pull_mb_per_second,
            REPORTED,
        ),
        Measurement(
            workload + ": peak RSS",
            "MB",
            runs.spacedock.peak_rss_mb,
            runs.distribution.peak_rss_mb,
            below(MEMORY_LIMIT_MB, "MB"),
        ),
        Measurement(
            workload + ": RSS growth",
            "MB",
            runs.spacedock.rss_growth_mb,
            runs.distribution.rss_growth_mb,
            REPORTED,
        ),
    ]


def _median(workload: str, unit: str, bar: Bar, samples: Pair[list[float]]) -> Measurement:
    return Measurement(
        workload,
        unit,
        statistics.median(samples.spacedock),
        statistics.median(samples.distribution),
        bar,
        tuple(samples.spacedock),
        tuple(samples.distribution),
    )


def _only(results: Pair[list[T]]) -> Pair[T]:
    (spacedock,), (distribution,) = results.spacedock, results.distribution
    return Pair(spacedock=spacedock, distribution=distribution)


def _mb_per_second(size: int, actions: Sequence[Callable[[], None]]) -> float:
    """Run ``actions`` concurrently; ``size`` bytes over the wall time they took together."""
    started = time.perf_counter()
    pool = ThreadPoolExecutor(len(actions))
    try:
        for future in [pool.submit(action) for action in actions]:
            future.result()
    finally:
        # Interrupted, do not wait for the transfers: stopping the registries ends them.
        pool.shutdown(wait=False, cancel_futures=True)
    return size / (time.perf_counter() - started) / MB


def _total(blobs: list[Payload]) -> int:
    return sum(blob.size for blob in blobs)


def _progress(workload: str, registry: RegistryUnderTest, value: float, unit: str) -> float:
    print(
        f"  {workload:<28} {registry.name:<13} {value:>10,.1f} {unit}", file=sys.stderr, flush=True
    )
    return value
