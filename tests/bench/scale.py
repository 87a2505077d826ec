"""Metadata at scale (issue #13): Spacedock and Distribution as tags and repositories pile up.

On a fresh pair of registries, each step on Distribution first and then on Spacedock:

1. 2,000 tagged manifests into one repository from 8 clients at once, then 500 one-image
   repositories (every manifest shares one tiny config and one tiny layer, mounted across);
2. at that size, the full tags list (following ``Link``), ``_catalog`` in pages of 1,000, and
   on Spacedock alone the feed view's newest 50 versions in Octopus order;
3. 18,000 more tagged manifests: the PUT rate over all 20,000, and the median PUT latency of
   the first and of the last 1,000 (flat means the metadata does not slow down as tags,
   manifests and events accumulate);
4. on Spacedock alone: the feed view again at 20,000 tags, a retention dry run over the
   20,000 deployment tags (a policy that keeps the newest 10, so the run has to weigh all of
   them), then repositories up to 10,000 and a search among them.

Garbage collection's rate comes from ``collection.py``. Reads are timed by curl and repeated;
the median counts. Run this section alone with ``python -m tests.bench --only scale``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import requests

from tests.bench import transfer
from tests.bench.batch import Batch, Request, run_batch, timed_read
from tests.bench.collection import CollectionFigure
from tests.bench.errors import BenchError
from tests.bench.registries import Registries, RegistryUnderTest
from tests.bench.report import (
    REPORTED,
    Bar,
    Measurement,
    at_least,
    at_least_value,
    below,
    within,
)
from tests.bench.workloads import Pair, on_both
from tests.support.oci import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical, descriptor, digest_of

SPACE = "spaces-1"
TAGS_REPO = f"{SPACE}/scale-tags"
SEEDED_TAGS = 2_000
GROWN_TAGS = 20_000
COMPARED_REPOSITORIES = 500
SEARCHED_REPOSITORIES = 10_000
CLIENTS = 8
# The PUTs whose median latency is "at the start" and "at the end".
LATENCY_WINDOW = 1_000
READ_ROUNDS = 5
RETENTION_ROUNDS = 3
CATALOG_PAGE = 1_000
FEED_PAGE = 50
# Ten names of 10,000 contain it, so a search has to look at every one.
SEARCH_QUERY = "app-0421"
KEEP_LAST = 10
VERSION_STRIDE = 7_919
# Growth goes a chunk at a time (the last chunk's median is the latency "at the end") and
# stops, reporting the size it reached, once its budget is spent: a slow registry makes the
# section report smaller figures, not take an hour.
TAGS_CHUNK = LATENCY_WINDOW
REPOSITORIES_CHUNK = 500
TAGS_BUDGET_SECONDS = 200
REPOSITORIES_BUDGET_SECONDS = 120
READ_BUDGET_MS = 10_000

PUT_RATE_RATIO = 1.0
FLAT_GROWTH = 1.2
TAGS_LIST_RATIO = 3.0
CATALOG_RATIO = 2.0
FEED_MS = 100
SEARCH_MS = 50
RETENTION_MS = 2_000
GC_BLOBS_PER_SECOND = 2_000


def tag_of(n: int) -> str:
    """The ``n``-th deployment tag pushed. Versions go up in a scrambled order, and 1.10 sorts
    before 1.9 by text, so neither push order nor text order is Octopus order."""
    version = _version_number(n)
    return f"1.{version // 100}.{version % 100}-deployments-{n}"


def newest_tags(pushed: int, count: int) -> list[str]:
    """The ``count`` highest versions among the first ``pushed`` tags, highest first."""
    newest = sorted(range(pushed), key=_version_number, reverse=True)[:count]
    return [tag_of(n) for n in newest]


def _version_number(n: int) -> int:
    # A multiplier prime to GROWN_TAGS makes this a permutation of 0..GROWN_TAGS-1.
    return n * VERSION_STRIDE % GROWN_TAGS


def app_repository(n: int) -> str:
    return f"{SPACE}/scale-app-{n:05d}"


@dataclass(frozen=True, slots=True)
class Image:
    """The config and layer every manifest of the section refers to."""

    config: bytes
    layer: bytes

    def manifest(self, annotation: str) -> bytes:
        """A manifest of its own (an annotation tells it apart) over the shared blobs."""
        return canonical(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, self.config),
                "layers": [descriptor(OCI_LAYER, self.layer)],
                "annotations": {"org.opencontainers.image.ref.name": annotation},
            }
        )

    @property
    def digests(self) -> tuple[str, str]:
        return digest_of(self.config), digest_of(self.layer)


class Manifests:
    """Manifest files on disk for curl to upload, written once and shared by both registries."""

    def __init__(self, directory: Path, image: Image) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._directory = directory
        self._image = image

    def tagged(self, n: int) -> Path:
        return self._file(f"tag-{n}", tag_of(n))

    def app(self, n: int) -> Path:
        return self._file(f"app-{n}", app_repository(n))

    def _file(self, name: str, annotation: str) -> Path:
        path = self._directory / f"{name}.json"
        if not path.exists():
            path.write_bytes(self._image.manifest(annotation))
        return path


@dataclass(frozen=True, slots=True)
class Scale:
    """What the section measured, before it is judged."""

    # Every manifest PUT to the tagged repository, in order.
    puts: Pair[Batch]
    # The tags and repositories reached: fewer than asked when a budget ran out.
    tags: int
    repositories: int
    tags_list: Pair[list[float]]
    catalog: Pair[list[float]]
    feed_seeded: list[float]
    feed_grown: list[float]
    retention: list[float]
    search: list[float]
    seconds: float
    # Reads of the management API that failed, with what they answered.
    failures: list[str]


def measure_scale(registries: Registries, workdir: Path) -> Scale:
    started = time.monotonic()
    run = _Run(registries, workdir)
    spacedock = registries.spacedock
    on_both(registries, run.push_blobs)
    seeded = on_both(registries, partial(run.put_tags, first=0, end=SEEDED_TAGS))
    on_both(registries, partial(run.add_repositories, first=0, end=COMPARED_REPOSITORIES))
    listed = on_both(registries, run.tags_list, READ_ROUNDS)
    cataloged = on_both(registries, run.catalog, READ_ROUNDS)
    feed_seeded = _repeat(partial(run.feed, SEEDED_TAGS), READ_ROUNDS)

    # Both registries grow a chunk at a time, in turn, so both stop at the same size.
    grown, tags = _grow(
        SEEDED_TAGS,
        GROWN_TAGS,
        TAGS_CHUNK,
        TAGS_BUDGET_SECONDS,
        "tags",
        lambda first, end: on_both(registries, partial(run.put_tags, first=first, end=end)),
    )
    feed_grown = _repeat(partial(run.feed, tags), READ_ROUNDS)
    run.set_retention()
    retention = _repeat(partial(run.retention_dry_run, tags), RETENTION_ROUNDS)
    # One-image repositories beside the tagged one, up to SEARCHED_REPOSITORIES in all.
    _, repositories = _grow(
        COMPARED_REPOSITORIES,
        SEARCHED_REPOSITORIES - 1,
        REPOSITORIES_CHUNK,
        REPOSITORIES_BUDGET_SECONDS,
        "repositories",
        lambda first, end: Pair(
            spacedock=[run.add_repositories(spacedock, first=first, end=end)], distribution=[]
        ),
    )
    searched = _repeat(partial(run.search, repositories), READ_ROUNDS)
    puts = Pair(
        spacedock=Batch.joined(seeded.spacedock + grown.spacedock),
        distribution=Batch.joined(seeded.distribution + grown.distribution),
    )
    return Scale(
        puts,
        tags,
        repositories + 1,
        listed,
        cataloged,
        feed_seeded,
        feed_grown,
        retention,
        searched,
        time.monotonic() - started,
        run.failures,
    )


class _Run:
    """The section's requests, and the checks that each answered what it should."""

    def __init__(self, registries: Registries, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.image = Image(
            config=canonical(
                {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}
            ),
            layer=os.urandom(512),
        )
        self.manifests = Manifests(workdir / "manifests", self.image)
        self.spacedock = registries.spacedock
        self._config = workdir / "curl.config"
        self._page = workdir / "page.json"
        self.failures: list[str] = []

    def push_blobs(self, registry: RegistryUnderTest) -> None:
        for blob in (self.image.config, self.image.layer):
            location = transfer.start_upload(registry, TAGS_REPO)
            transfer.finish_upload(registry, location, digest_of(blob), blob)

    def put_tags(self, registry: RegistryUnderTest, *, first: int, end: int) -> Batch:
        puts = (
            Request(
                f"{registry.url}/v2/{TAGS_REPO}/manifests/{tag_of(n)}",
                self.manifests.tagged(n),
                OCI_MANIFEST,
            )
            for n in range(first, end)
        )
        batch = run_batch(registry, puts, self._config, clients=CLIENTS, status=201)
        _progress(f"manifest PUT to {end:,} tags", registry, batch.per_second, "req/s")
        return batch

    def add_repositories(self, registry: RegistryUnderTest, *, first: int, end: int) -> Batch:
        """Mount the two blobs into each new repository, then PUT its manifest."""
        mounts = (
            Request(
                f"{registry.url}/v2/{app_repository(n)}/blobs/uploads/"
                f"?mount={digest}&from={TAGS_REPO}"
            )
            for n in range(first, end)
            for digest in self.image.digests
        )
        puts = (
            Request(
                f"{registry.url}/v2/{app_repository(n)}/manifests/latest",
                self.manifests.app(n),
                OCI_MANIFEST,
            )
            for n in range(first, end)
        )
        mounted = run_batch(registry, mounts, self._config, clients=CLIENTS, status=201)
        put = run_batch(registry, puts, self._config, clients=CLIENTS, status=201)
        _progress(f"repositories to {end:,}", registry, put.per_second, "PUT/s")
        return Batch.joined((mounted, put))

    def tags_list(self, registry: RegistryUnderTest) -> float:
        url = f"{registry.url}/v2/{TAGS_REPO}/tags/list"
        read = timed_read(registry, url, self._page).answered(registry)
        listed = sum(len(body["tags"]) for body in read.pages)
        _check(registry, listed == SEEDED_TAGS, f"tags list has {listed} tags")
        return _progress("tags list", registry, read.milliseconds, "ms")

    def catalog(self, registry: RegistryUnderTest) -> float:
        url = f"{registry.url}/v2/_catalog?n={CATALOG_PAGE}"
        read = timed_read(registry, url, self._page).answered(registry)
        listed = sum(len(body["repositories"]) for body in read.pages)
        wanted = COMPARED_REPOSITORIES + 1
        _check(registry, listed == wanted, f"catalog lists {listed}, not {wanted}")
        return _progress("catalog", registry, read.milliseconds, "ms")

    def feed(self, tags: int) -> float:
        def newest_page(pages: list[Any]) -> str | None:
            versions = [entry["tag"] for entry in pages[0]["versions"]]
            wanted = newest_tags(tags, FEED_PAGE)
            return None if versions == wanted else f"newest page is {versions[:3]}..."

        path = TAGS_REPO.split("/", 1)[1]
        url = self._api(f"/repositories/{path}/versions?limit={FEED_PAGE}")
        return self._spacedock_read(f"feed at {tags:,} tags", url, newest_page)

    def set_retention(self) -> None:
        """Every deployment tag but the newest 10 is old enough to go."""
        response = requests.put(
            self._api("/retention"),
            json={"deployment_tags": {"retain_days": 0, "keep_last": KEEP_LAST}},
            headers=self.spacedock.headers,
            timeout=transfer.CONTROL_TIMEOUT_SECONDS,
        )
        if response.status_code != 200:
            raise BenchError(f"spacedock: retention policy refused: {response.text[:300]}")

    def retention_dry_run(self, tags: int) -> float:
        def all_but_newest(pages: list[Any]) -> str | None:
            removed, wanted = len(pages[0]["removed"]), tags - KEEP_LAST
            return None if removed == wanted else f"removes {removed} tags, not {wanted}"

        url = self._api("/retention/run?dry_run=true")
        return self._spacedock_read("retention dry run", url, all_but_newest, method="POST")

    def search(self, repositories: int) -> float:
        def every_match(pages: list[Any]) -> str | None:
            found = len(pages[0]["repositories"])
            wanted = sum(SEARCH_QUERY in app_repository(n) for n in range(repositories))
            return None if found == wanted else f"found {found}, not {wanted}"

        url = self._api(f"/repositories?q={SEARCH_QUERY}")
        return self._spacedock_read("search", url, every_match)

    def _spacedock_read(
        self,
        what: str,
        url: str,
        wrong: Callable[[list[Any]], str | None],
        *,
        method: str = "GET",
    ) -> float:
        """The management API's time; one that fails (a 503 when the metadata times out)
        counts with the time it took and is noted, since no later step depends on it."""
        read = timed_read(self.spacedock, url, self._page, method=method)
        if read.failure is not None:
            self.failures.append(f"{what}: {read.failure} after {read.milliseconds:,.0f} ms")
            _say(f"  warning: {self.failures[-1]}")
        else:
            problem = wrong(read.pages)
            _check(self.spacedock, problem is None, f"{what}: {problem}")
        return _progress(what, self.spacedock, read.milliseconds, "ms")

    def _api(self, path: str) -> str:
        return f"{self.spacedock.url}/api/v1/spaces/{SPACE}{path}"


def _grow(
    first: int,
    target: int,
    chunk: int,
    budget_seconds: float,
    what: str,
    step: Callable[[int, int], Pair[list[Batch]]],
) -> tuple[Pair[list[Batch]], int]:
    """``step`` over ``first``..``target`` a chunk at a time, until done or out of time."""
    batches: Pair[list[Batch]] = Pair(spacedock=[], distribution=[])
    deadline = time.monotonic() + budget_seconds
    reached = first
    while reached < target:
        if time.monotonic() > deadline:
            _say(f"  warning: {what} budget of {budget_seconds:g} s spent at {reached:,} {what}")
            break
        end = min(reached + chunk, target)
        done = step(reached, end)
        batches.spacedock.extend(done.spacedock)
        batches.distribution.extend(done.distribution)
        reached = end
    return batches, reached


def notes(scale: Scale) -> list[str]:
    """What the budgets cut short and which reads failed, to print under the table."""
    short = []
    if scale.tags < GROWN_TAGS:
        short.append(f"{scale.tags:,} tags of {GROWN_TAGS:,}")
    if scale.repositories < SEARCHED_REPOSITORIES:
        short.append(f"{scale.repositories:,} repositories of {SEARCHED_REPOSITORIES:,}")
    said = [f"failed: {failure}" for failure in scale.failures]
    if short:
        said.insert(
            0,
            f"growth stopped at {' and '.join(short)} when its budget ran out: the rows that"
            " name those sizes were measured there, short of the targets' sizes",
        )
    return said


def measurements(scale: Scale, collection: list[CollectionFigure]) -> list[Measurement]:
    def latency(batch: Batch, at_end: bool) -> float:
        latencies = batch.latencies_ms
        window = latencies[-LATENCY_WINDOW:] if at_end else latencies[:LATENCY_WINDOW]
        return statistics.median(window)

    def growth(batch: Batch) -> float:
        return latency(batch, at_end=True) / latency(batch, at_end=False)

    spacedock, distribution = scale.puts.spacedock, scale.puts.distribution
    rows = [
        Measurement(
            f"manifest PUT, {CLIENTS} clients, to {scale.tags:,} tags",
            "req/s",
            spacedock.per_second,
            distribution.per_second,
            at_least(PUT_RATE_RATIO),
        ),
        Measurement(
            f"manifest PUT median, first {LATENCY_WINDOW:,}",
            "ms",
            latency(spacedock, at_end=False),
            latency(distribution, at_end=False),
            REPORTED,
        ),
        Measurement(
            f"manifest PUT median, last {LATENCY_WINDOW:,}",
            "ms",
            latency(spacedock, at_end=True),
            latency(distribution, at_end=True),
            REPORTED,
        ),
        Measurement(
            "manifest PUT latency growth, last/first",
            "x",
            growth(spacedock),
            growth(distribution),
            Bar(f"< {FLAT_GROWTH:g}x (flat)", max_value=FLAT_GROWTH),
        ),
        _median(f"full tags list of {SEEDED_TAGS:,}", scale.tags_list, within(TAGS_LIST_RATIO)),
        _median(
            f"_catalog of {COMPARED_REPOSITORIES + 1}, pages of {CATALOG_PAGE:,}",
            scale.catalog,
            within(CATALOG_RATIO),
        ),
        _alone(f"feed newest {FEED_PAGE}, {SEEDED_TAGS:,} tags", scale.feed_seeded, FEED_MS),
        _alone(f"feed newest {FEED_PAGE}, {scale.tags:,} tags", scale.feed_grown, FEED_MS),
        _alone(f"search, {scale.repositories:,} repositories", scale.search, SEARCH_MS),
        _alone(f"retention dry run, {scale.tags:,} deployment tags", scale.retention, RETENTION_MS),
    ]
    rows += [
        Measurement(
            f"gc of {figure.blobs:,} blobs, {figure.driver}",
            "blobs/s",
            figure.per_second,
            None,
            at_least_value(GC_BLOBS_PER_SECOND, "blobs/s"),
        )
        for figure in collection
    ]
    return rows


def _median(workload: str, samples: Pair[list[float]], bar: Bar) -> Measurement:
    return Measurement(
        workload,
        "ms",
        statistics.median(samples.spacedock),
        statistics.median(samples.distribution),
        bar,
        tuple(samples.spacedock),
        tuple(samples.distribution),
    )


def _alone(workload: str, samples: list[float], limit_ms: float) -> Measurement:
    return Measurement(
        workload,
        "ms",
        statistics.median(samples),
        None,
        below(limit_ms, "ms"),
        tuple(samples),
    )


def _repeat(action: Callable[[], float], rounds: int) -> list[float]:
    """``rounds`` readings, or fewer once they add up to ``READ_BUDGET_MS``: one of a read
    that takes seconds says enough."""
    samples: list[float] = []
    while len(samples) < rounds and sum(samples) < READ_BUDGET_MS:
        samples.append(action())
    return samples


def _check(registry: RegistryUnderTest, holds: bool, what: str) -> None:
    if not holds:
        raise BenchError(f"{registry.name}: {what}")


def _progress(workload: str, registry: RegistryUnderTest, value: float, unit: str) -> float:
    _say(f"  {workload:<28} {registry.name:<13} {value:>10,.1f} {unit}")
    return value


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)
