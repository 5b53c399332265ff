"""The controller HTTP listener on loopback: tokens, /healthz, /readyz and /metrics."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from certbotk8s.adapters.http01.responder import MemoryTokenStore
from certbotk8s.app.controller.http_server import ControllerHttpServer
from certbotk8s.app.metrics import Metrics


class Flags:
    ready = False
    healthy = True


@pytest.fixture
def flags() -> Flags:
    return Flags()


@pytest.fixture
def server(flags: Flags) -> Iterator[tuple[ControllerHttpServer, MemoryTokenStore, Metrics]]:
    tokens, metrics = MemoryTokenStore(), Metrics()
    with ControllerHttpServer(tokens, metrics, "127.0.0.1", 0,
                              ready=lambda: flags.ready, healthy=lambda: flags.healthy) as srv:
        yield srv, tokens, metrics


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def test_tokens(server: tuple[ControllerHttpServer, MemoryTokenStore, Metrics]) -> None:
    srv, tokens, _ = server
    tokens.put("tok_1-A", "tok_1-A.thumb")
    assert fetch(srv.port, "/.well-known/acme-challenge/tok_1-A")[::2] == (200, b"tok_1-A.thumb")
    assert fetch(srv.port, "/.well-known/acme-challenge/nope")[0] == 404
    assert fetch(srv.port, "/elsewhere")[0] == 404


def test_healthz(server: tuple[ControllerHttpServer, MemoryTokenStore, Metrics],
                 flags: Flags) -> None:
    port = server[0].port
    status, _, body = fetch(port, "/healthz")
    assert (status, body.strip()) == (200, b"ok")
    flags.healthy = False
    assert fetch(port, "/healthz")[0] == 500


def test_readyz(server: tuple[ControllerHttpServer, MemoryTokenStore, Metrics],
                flags: Flags) -> None:
    port = server[0].port
    assert fetch(port, "/readyz")[0] == 503
    flags.ready = True
    status, _, body = fetch(port, "/readyz")
    assert (status, body.strip()) == (200, b"ok")


def test_readyz_says_why_in_its_body_without_changing_its_status(flags: Flags) -> None:
    with ControllerHttpServer(MemoryTokenStore(), Metrics(), "127.0.0.1", 0,
                              ready=lambda: True, healthy=lambda: True,
                              ready_detail=lambda: "API server: unreachable for 9s\n") as srv:
        status, _, body = fetch(srv.port, "/readyz")
    assert (status, body) == (200, b"ok\nAPI server: unreachable for 9s\n")


def test_probe_that_raises_fails(flags: Flags) -> None:
    def boom() -> bool:
        raise RuntimeError("broken")

    with ControllerHttpServer(MemoryTokenStore(), Metrics(), "127.0.0.1", 0,
                              ready=boom, healthy=boom) as srv:
        assert fetch(srv.port, "/readyz")[0] == 503
        assert fetch(srv.port, "/healthz")[0] == 500


def test_metrics(server: tuple[ControllerHttpServer, MemoryTokenStore, Metrics]) -> None:
    srv, _, metrics = server
    metrics.set_managed_certificates(3)
    status, ctype, body = fetch(srv.port, "/metrics?x=1")
    assert status == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    assert b"certbotk8s_managed_certificates 3.0" in body
    assert b"# TYPE certbotk8s_acme_requests_total counter" in body
