"""The controller's one HTTP listener: HTTP-01 tokens, `/healthz`, `/readyz`, `/metrics`.

Built on the HTTP-01 responder, so it keeps its limits (GET/HEAD only, no request body, short
socket timeouts). A probe callback that raises counts as a failed probe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from certbotk8s.adapters.http01.responder import Http01Responder
from certbotk8s.app.metrics import CONTENT_TYPE, Metrics
from certbotk8s.core.ports import TokenStore

log = logging.getLogger(__name__)

_TEXT = "text/plain; charset=utf-8"


class ControllerHttpServer:
    """Serves tokens from `tokens` and the probe and metrics routes; `start()`/`stop()`."""

    def __init__(
        self,
        tokens: TokenStore,
        metrics: Metrics,
        host: str,
        port: int,
        ready: Callable[[], bool],
        healthy: Callable[[], bool],
        ready_detail: Callable[[], str] = lambda: "",
    ) -> None:
        self._metrics = metrics
        self._ready = ready
        self._ready_detail = ready_detail
        self._healthy = healthy
        self._responder = Http01Responder(tokens, host, port, extra_routes=self._route)

    @property
    def port(self) -> int:
        return self._responder.port

    def start(self) -> ControllerHttpServer:
        self._responder.start()
        return self

    def stop(self) -> None:
        self._responder.stop()

    def __enter__(self) -> ControllerHttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _route(self, path: str) -> tuple[int, str, bytes] | None:
        if path == "/healthz":
            if _probe("healthz", self._healthy):
                return 200, _TEXT, b"ok\n"
            return 500, _TEXT, b"unhealthy\n"
        if path == "/readyz":
            # Readiness is the informers' sync only: a replica that cannot reach the API server
            # still serves HTTP-01 tokens it holds, so it stays in the Service. The detail lines
            # (API server reachable or not, and why) are for whoever looks.
            try:
                detail = self._ready_detail().encode()
            except Exception:
                log.exception("readyz detail raised")
                detail = b""
            if _probe("readyz", self._ready):
                return 200, _TEXT, b"ok\n" + detail
            return 503, _TEXT, b"not ready\n" + detail
        if path == "/metrics":
            try:
                return 200, CONTENT_TYPE, self._metrics.render()
            except Exception:
                log.exception("rendering /metrics failed")
                return 500, _TEXT, b"metrics unavailable\n"
        return None


def _probe(name: str, check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        log.exception("%s check raised", name)
        return False
