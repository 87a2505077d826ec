"""Figures side by side, judged against PRODUCT.md §10, as a table and as JSON."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Bar:
    """What §10 (or an issue) asks of a figure: a ratio to Distribution (a floor for a
    throughput, a ceiling for a time), a floor or a ceiling of its own, or only a report."""

    text: str
    min_ratio: float | None = None
    max_ratio: float | None = None
    min_value: float | None = None
    max_value: float | None = None

    def judge(self, spacedock: float, distribution: float | None) -> bool | None:
        ratio = spacedock / distribution if distribution else None
        if self.min_ratio is not None:
            return ratio is not None and ratio >= self.min_ratio
        if self.max_ratio is not None:
            return ratio is not None and ratio <= self.max_ratio
        if self.min_value is not None:
            return spacedock >= self.min_value
        if self.max_value is not None:
            return spacedock < self.max_value
        return None


def at_least(ratio: float) -> Bar:
    return Bar(f">= {ratio:g}x Distribution", min_ratio=ratio)


def within(ratio: float) -> Bar:
    """A time at most ``ratio`` times Distribution's."""
    return Bar(f"<= {ratio:g}x Distribution", max_ratio=ratio)


def below(limit: float, unit: str) -> Bar:
    return Bar(f"< {limit:g} {unit}", max_value=limit)


def at_least_value(limit: float, unit: str) -> Bar:
    return Bar(f">= {limit:,g} {unit}", min_value=limit)


REPORTED = Bar("reported")


@dataclass(frozen=True, slots=True)
class Measurement:
    workload: str
    unit: str
    spacedock: float
    # None where Distribution has nothing to compare with (the management API, for one).
    distribution: float | None
    bar: Bar
    # Every run's figure, when the one above is their median.
    spacedock_samples: tuple[float, ...] = ()
    distribution_samples: tuple[float, ...] = ()

    @property
    def ratio(self) -> float | None:
        """Spacedock's figure over Distribution's (higher is better only for throughputs)."""
        return self.spacedock / self.distribution if self.distribution else None

    @property
    def passed(self) -> bool | None:
        return self.bar.judge(self.spacedock, self.distribution)


_VERDICTS = {True: "PASS", False: "FAIL", None: "-"}
_HEADER = ("workload", "unit", "spacedock", "distribution", "ratio", "target", "result")
_TEXT_COLUMNS = {_HEADER.index(name) for name in ("workload", "unit", "target")}


def table(measurements: list[Measurement]) -> str:
    rows = [_HEADER, *(_row(m) for m in measurements)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = [
        "  ".join(
            cell.ljust(width) if i in _TEXT_COLUMNS else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def _row(m: Measurement) -> tuple[str, ...]:
    if m.distribution is None:
        ratio, distribution = "-", "-"
    else:
        ratio = "n/a" if m.ratio is None else f"{m.ratio:.2f}x"
        distribution = f"{m.distribution:,.1f}"
    return (
        m.workload,
        m.unit,
        f"{m.spacedock:,.1f}",
        distribution,
        ratio,
        m.bar.text,
        _VERDICTS[m.passed],
    )


def write_json(path: Path, measurements: list[Measurement], context: dict[str, Any]) -> None:
    document = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **context,
        "results": [measurement_json(m) for m in measurements],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def measurement_json(m: Measurement) -> dict[str, Any]:
    return {
        "workload": m.workload,
        "unit": m.unit,
        "spacedock": round(m.spacedock, 3),
        "distribution": None if m.distribution is None else round(m.distribution, 3),
        "ratio": None if m.ratio is None else round(m.ratio, 3),
        "target": m.bar.text,
        "passed": m.passed,
        "samples": {
            "spacedock": [round(v, 3) for v in m.spacedock_samples],
            "distribution": [round(v, 3) for v in m.distribution_samples],
        },
    }
