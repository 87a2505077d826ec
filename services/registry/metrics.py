"""The registry's HTTP metrics, in the process's metrics (``shared.metrics``; no globals):
what ``/metrics`` shows beside them is whatever else the process records (its outbox relay,
and under ``spacedock serve`` the builder and the reaper)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import ProcessMetrics


class Metrics:
    def __init__(self, process: ProcessMetrics) -> None:
        self.process = process
        self.registry = process.registry
        self.requests = Counter(
            "spacedock_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spacedock_http_request_duration_seconds",
            "HTTP request latency by route and method",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "spacedock_http_received_bytes", "Request body bytes received", registry=self.registry
        )
        self.bytes_out = Counter(
            "spacedock_http_sent_bytes", "Response body bytes sent", registry=self.registry
        )
        self.uploads_in_flight = Gauge(
            "spacedock_uploads_in_flight",
            "Blob upload writes in progress",
            registry=self.registry,
        )
