"""A process's resident memory, watched while a workload runs."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from types import TracebackType

SAMPLE_SECONDS = 0.1
# Writing 5 to clear_refs resets the kernel's high-water mark (VmHWM) of resident memory.
RESET_PEAK = "5"


class PeakRss:
    """The highest VmRSS seen while the ``with`` block runs (and the one on entry), in bytes.

    A sampler every 100 ms can miss a short spike, so the kernel's own high-water mark, reset
    on entry when the kernel lets us, is taken into account as well.
    """

    def __init__(self, pid: int) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._clear_refs = Path(f"/proc/{pid}/clear_refs")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name=f"rss-{pid}", daemon=True)
        self._hwm_reset = False
        self.start_bytes = 0
        self.peak_bytes = 0

    def __enter__(self) -> PeakRss:
        with contextlib.suppress(OSError):
            self._clear_refs.write_text(RESET_PEAK)
            self._hwm_reset = True
        self.start_bytes = self.peak_bytes = self._read("VmRSS")
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        if self._hwm_reset:
            self.peak_bytes = max(self.peak_bytes, self._read("VmHWM"))

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak_bytes = max(self.peak_bytes, self._read("VmRSS"))

    def _read(self, field: str) -> int:
        """A ``kB`` field of /proc/<pid>/status in bytes; 0 once the process is gone."""
        try:
            status = self._status.read_text()
        except OSError:
            return 0
        for line in status.splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        return 0
