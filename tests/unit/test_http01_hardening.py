"""HTTP-01 responder on loopback under abuse: whole-request deadline, connection cap, Host check."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from certbotk8s.adapters.http01 import (
    Http01Responder,
    Http01Solver,
    MemoryTokenStore,
    SelfCheck,
    token_value,
)
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import PendingChallenge

TOKEN = "tok_1-A"


def _get(port: int, host: str | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", f"/.well-known/acme-challenge/{TOKEN}", skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _slow_client(port: int) -> socket.socket:
    """A connection that sent half a request line and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(b"GET /.well-known/acme-")
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    """Blocks until the server closes (True) or 20 s pass (False: still held)."""
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _get_like_a_ca(port: int, within: float = 20.0) -> int:
    """Retry a refused fetch every 50 ms, as a CA retries; the first answer's status."""
    give_up = time.monotonic() + within
    retry = threading.Event()
    while time.monotonic() < give_up:
        try:
            return _get(port, "shop.example.com")[0]
        except (http.client.RemoteDisconnected, ConnectionError):
            retry.wait(0.05)
    return 0


@pytest.fixture
def tokens() -> MemoryTokenStore:
    store = MemoryTokenStore()
    store.put(TOKEN, token_value(f"{TOKEN}.thumb", "shop.example.com"))
    return store


def test_token_served_only_for_its_own_host(tokens: MemoryTokenStore) -> None:
    with Http01Responder(tokens, "127.0.0.1", 0) as responder:
        assert _get(responder.port, "shop.example.com") == (200, f"{TOKEN}.thumb".encode())
        assert _get(responder.port, "SHOP.example.com.:80") == (200, f"{TOKEN}.thumb".encode())
        assert _get(responder.port, "other.example.com")[0] == 404
        assert _get(responder.port, None)[0] == 404


def test_value_without_identifier_is_served_to_any_host() -> None:
    store = MemoryTokenStore()
    store.put(TOKEN, f"{TOKEN}.thumb")
    with Http01Responder(store, "127.0.0.1", 0) as responder:
        assert _get(responder.port, "anything.example.com")[0] == 200


def test_whole_request_deadline_closes_a_slow_connection(tokens: MemoryTokenStore) -> None:
    # The per-read timeout (30 s) is longer than the client waits (20 s): only the whole-request
    # deadline (0.5 s) can close this connection in time.
    with Http01Responder(tokens, "127.0.0.1", 0, connection_timeout=30.0,
                         request_deadline=0.5) as responder:
        slow = _slow_client(responder.port)
        try:
            assert _closed_by_server(slow)
        finally:
            slow.close()


def test_connection_cap_refuses_extra_connections_and_recovers(
        tokens: MemoryTokenStore) -> None:
    with Http01Responder(tokens, "127.0.0.1", 0, connection_timeout=30.0,
                         request_deadline=30.0, max_connections=4) as responder:
        held = [_slow_client(responder.port) for _ in range(4)]
        try:
            extra = _slow_client(responder.port)
            assert _closed_by_server(extra)  # over the cap: closed at accept
            extra.close()
            assert responder.open_connections == 4
        finally:
            for sock in held:
                sock.close()
        freed = threading.Event()
        while not freed.wait(0.01):  # the handlers see EOF and give their slots back
            if responder.open_connections == 0:
                freed.set()
        assert _get(responder.port, "shop.example.com")[0] == 200


def test_many_slow_connections_do_not_starve_the_ca(tokens: MemoryTokenStore) -> None:
    """200 slowloris connections: the cap holds, the deadline frees slots, the CA gets its token."""
    with Http01Responder(tokens, "127.0.0.1", 0, connection_timeout=30.0,
                         request_deadline=1.0, max_connections=16) as responder:
        attackers = [_slow_client(responder.port) for _ in range(200)]
        try:
            assert responder.open_connections <= 16  # 184 were closed at accept
            assert _get_like_a_ca(responder.port) == 200
        finally:
            for sock in attackers:
                sock.close()


def _challenge(domain: str) -> PendingChallenge:
    return PendingChallenge(ChallengeType.HTTP01, domain, False, TOKEN, f"{TOKEN}.thumb")


def test_self_check_connects_only_inside_the_configured_networks(
        tokens: MemoryTokenStore) -> None:
    """A tenant's host resolving to an address outside selfCheckNetworks is not fetched."""
    tokens.put(TOKEN, token_value(f"{TOKEN}.thumb", "127.0.0.1"))
    with Http01Responder(tokens, "127.0.0.1", 0) as responder:
        inside = Http01Solver(tokens, SelfCheck(port=responder.port, networks=("127.0.0.0/8",)))
        assert inside._fetch(_challenge("127.0.0.1")) is None
        outside = Http01Solver(tokens, SelfCheck(port=responder.port, networks=("10.0.0.0/8",)))
        problem = outside._fetch(_challenge("127.0.0.1"))
        assert problem is not None and "outside solver.http01.selfCheckNetworks" in problem
