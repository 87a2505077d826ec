"""One log line and the request metrics per request, written once the response is sent.

aiohttp calls an access logger after the last byte of the response went out, so the line
carries the real bytes sent and the whole duration, blob bodies included.
"""

from __future__ import annotations

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from services.registry.keys import metrics_key

log = structlog.get_logger("spacedock.registry")


class RequestLog(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        assert isinstance(request, web.Request)
        if request._match_info is None:
            # Answered by aiohttp before routing (a request its parser refused): no app here.
            log.info("request", method=request.method, status=response.status, route="unparsed")
            return
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        bytes_in = request.content.total_bytes
        bytes_out = response.body_length
        metrics = request.app[metrics_key]
        metrics.requests.labels(route, request.method, str(response.status)).inc()
        metrics.latency.labels(route, request.method).observe(time)
        if bytes_in:
            metrics.bytes_in.inc(bytes_in)
        if bytes_out:
            metrics.bytes_out.inc(bytes_out)
        log.info(
            "request",
            method=request.method,
            path=request.path,
            status=response.status,
            bytes_in=bytes_in,
            bytes_out=bytes_out,
            duration_ms=round(time * 1000, 2),
            repository=request.match_info.get("name"),
        )
