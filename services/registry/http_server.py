"""aiohttp's server, except that the errors aiohttp answers by itself get the API's JSON body.

A request line or header that aiohttp's parser refuses (too long, a forbidden character) is
answered before routing, so no middleware sees it; aiohttp has no public hook for that answer,
hence a request handler of our own, made by the runner's server.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from services.registry.keys import metrics_key
from services.registry.metrics import Metrics
from services.registry.middleware import protocol_error_body

log = structlog.get_logger("spacedock.registry")
MAX_REASON_CHARS = 200


class JsonErrorRequestHandler(web.RequestHandler):
    metrics: Metrics | None = None

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
            reason = "internal server error"
        else:  # the client's mistake: one line, no traceback
            reason = (message or str(exc) or "bad request").strip()[:MAX_REASON_CHARS]
            log.info("request_refused", status=status, reason=reason, remote=request.remote)
        if self.metrics is not None and getattr(request, "_match_info", None) is None:
            # Refused before routing: counted like any request, under a route of its own
            # (a routed request is counted by the access log).
            self.metrics.requests.labels("unparsed", request.method, str(status)).inc()
        if request.writer.output_size > 0:
            # Part of a response went out already: the connection can only be dropped.
            raise ConnectionError("response already started; cannot send an error response")
        response = web.json_response(protocol_error_body(status, reason), status=status)
        response.force_close()
        return response


class JsonErrorServer(web.Server):
    metrics: Metrics | None = None

    def __call__(self) -> web.RequestHandler:
        handler = JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.metrics = self.metrics
        return handler


class RegistryRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are ``JsonErrorRequestHandler``s."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        options: dict[str, Any] = server._kwargs
        replacement = JsonErrorServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **options,
        )
        replacement.metrics = self.app.get(metrics_key)
        return replacement
