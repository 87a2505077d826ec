"""The one failure the bench reports as its own: it could not measure something."""

from __future__ import annotations


class BenchError(RuntimeError):
    """A workload did not run as planned (a request failed, a tool is missing, ...)."""
