"""``python -m tests.bench``: run every workload on both registries, print and save the figures.

``python -m tests.bench --only scale`` runs the scale section (``scale.py``) and the garbage
collection it reports on, and updates only that section of the results file.

Exit status 0 whatever the figures say; 1 when the bench could not measure, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from tests.bench import payloads as payload_files
from tests.bench.builds import TARGET_RATIO, BuildFigures, measure_builds
from tests.bench.collection import BLOBS, CollectionFigure, measure_collection
from tests.bench.collection import table as collection_table
from tests.bench.errors import BenchError
from tests.bench.registries import DISTRIBUTION_BINARY, running_registries
from tests.bench.report import Measurement, measurement_json, table, write_json
from tests.bench.scale import Scale, measure_scale, notes
from tests.bench.scale import measurements as scale_measurements
from tests.bench.workloads import run_all

RESULTS_FILE = Path("bench-results.json")
# The C clients that carry the load, and the reference registry, with their Debian packages.
TOOLS = {"curl": "curl", "wrk": "wrk", DISTRIBUTION_BINARY: "docker-registry"}
# Above this load average something else is running, and the figures will show it.
BUSY_LOAD = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument(
        "--only", choices=["scale"], help="run one section; the file keeps the others' figures"
    )
    only = parser.parse_args().only
    # SIGTERM (and SIGINT, even when started in the background with it ignored) unwinds like
    # Ctrl-C, so the registries are stopped and the files removed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    load_before = _load_average()
    started = time.monotonic()
    try:
        if only == "scale":
            scale, collection = run_scale()
        else:
            measurements, builds, collection, scale = run()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - started
    if only == "scale":
        print(_scale_table(scale, collection))
        section = {**_scale_json(scale, collection), "load_average_before": load_before}
        _update_json(RESULTS_FILE, {"scale": section})
        print(f"\n{elapsed:.0f} s; scale section written to {RESULTS_FILE.resolve()}")
        return 0
    print(table(measurements))
    print()
    print(builds.table())
    print()
    print(collection_table(collection))
    print()
    print(_scale_table(scale, collection))
    context = {
        "elapsed_seconds": round(elapsed, 1),
        "load_average_before": load_before,
        "builds": {
            "assembled_seconds": builds.assembled,
            "docker_seconds": builds.docker,
            "ratio": round(builds.ratio, 2),
            "target_ratio": TARGET_RATIO,
        },
        "gc": {
            figure.driver: {
                "blobs": figure.blobs,
                "seconds": round(figure.seconds, 2),
                "blobs_per_second": round(figure.per_second),
            }
            for figure in collection
        },
        "scale": _scale_json(scale, collection),
    }
    write_json(RESULTS_FILE, measurements, context)
    print(f"\n{elapsed:.0f} s; results written to {RESULTS_FILE.resolve()}")
    return 0


def run() -> tuple[list[Measurement], BuildFigures, list[CollectionFigure], Scale]:
    _require_tools()
    with payload_files.workspace() as workdir:
        _say(f"preparing payloads in {workdir}")
        payload_files.prefault(workdir)
        payloads = payload_files.prepare(workdir / "payloads")
        _say("starting Distribution, SecantusDB and Spacedock")
        with running_registries(workdir / "registries") as registries:
            _say("running workloads (Distribution first, then Spacedock)")
            measurements = run_all(registries, payloads)
        _say("building one SDI with the assembled and the docker strategy")
        builds = measure_builds(workdir / "builds")
        _say(f"garbage-collecting {BLOBS:,} unreferenced blobs on each storage driver")
        collection = measure_collection(workdir / "gc")
        scale = _measure_scale(workdir / "scale")
    return measurements, builds, collection, scale


def run_scale() -> tuple[Scale, list[CollectionFigure]]:
    _require_tools()
    with payload_files.workspace() as workdir:
        scale = _measure_scale(workdir / "scale")
        _say(f"garbage-collecting {BLOBS:,} unreferenced blobs on each storage driver")
        collection = measure_collection(workdir / "gc")
    return scale, collection


def _measure_scale(workdir: Path) -> Scale:
    """On a fresh pair of registries, so that the growth starts from nothing."""
    _say("scale: starting a fresh Distribution, SecantusDB and Spacedock")
    with running_registries(workdir / "registries") as registries:
        return measure_scale(registries, workdir)


def _scale_table(scale: Scale, collection: list[CollectionFigure]) -> str:
    lines = ["Metadata at scale (issue #13)", table(scale_measurements(scale, collection))]
    lines += [f"note: {note}" for note in notes(scale)]
    return "\n".join(lines)


def _scale_json(scale: Scale, collection: list[CollectionFigure]) -> dict[str, Any]:
    return {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_seconds": round(scale.seconds, 1),
        "tags": scale.tags,
        "repositories": scale.repositories,
        "notes": notes(scale),
        "results": [measurement_json(m) for m in scale_measurements(scale, collection)],
    }


def _update_json(path: Path, section: dict[str, Any]) -> None:
    """Replace one section of the results file, keeping what the last full run wrote."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    path.write_text(json.dumps({**document, **section}, indent=2) + "\n")


def _require_tools() -> None:
    missing = [
        f"{tool} (apt-get install {package})"
        for tool, package in TOOLS.items()
        if shutil.which(tool) is None
    ]
    if missing:
        raise BenchError("missing: " + ", ".join(missing))


def _load_average() -> float:
    load = round(os.getloadavg()[0], 2)
    if load > BUSY_LOAD:
        _say(f"warning: load average {load} before the run; other work will skew the figures")
    return load


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
