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
    """What §10 asks of a figure: a ratio to Distribution, a ceiling, or only a report."""

    text: str
    min_ratio: float | None = None
    max_value: float | None = None

    def judge(self, spacedock: float, distribution: float) -> bool | None:
        if self.min_ratio is not None:
            return distribution > 0 and spacedock / distribution >= self.min_ratio
        if self.max_value is not None:
            return spacedock < self.max_value
        return None


def at_least(ratio: float) -> Bar:
    return Bar(f">= {ratio:g}x Distribution", min_ratio=ratio)


def below(limit: float, unit: str) -> Bar:
    return Bar(f"< {limit:g} {unit}", max_value=limit)


REPORTED = Bar("reported")


@dataclass(frozen=True, slots=True)
class Measurement:
    workload: str
    unit: str
    spacedock: float
    distribution: float
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
    ratio = "n/a" if m.ratio is None else f"{m.ratio:.2f}x"
    return (
        m.workload,
        m.unit,
        f"{m.spacedock:,.1f}",
        f"{m.distribution:,.1f}",
        ratio,
        m.bar.text,
        _VERDICTS[m.passed],
    )


def write_json(path: Path, measurements: list[Measurement], context: dict[str, Any]) -> None:
    document = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **context,
        "results": [
            {
                "workload": m.workload,
                "unit": m.unit,
                "spacedock": round(m.spacedock, 3),
                "distribution": round(m.distribution, 3),
                "ratio": None if m.ratio is None else round(m.ratio, 3),
                "target": m.bar.text,
                "passed": m.passed,
                "samples": {
                    "spacedock": [round(v, 3) for v in m.spacedock_samples],
                    "distribution": [round(v, 3) for v in m.distribution_samples],
                },
            }
            for m in measurements
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
