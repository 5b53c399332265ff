"""HTTP-01 responder on loopback under abuse: head deadline and cap, per-address share, eviction."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time

import pytest

from certbotk8s.adapters.http01.limits import Admission, ConnectionTable
from certbotk8s.adapters.http01.responder import (
    Http01Responder,
    Http01Solver,
    MemoryTokenStore,
    ResponderLimits,
    SelfCheck,
    token_value,
)
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import PendingChallenge

TOKEN = "tok_1-A"


def _get(port: int, host: str | None, source: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                      source_address=(source, 0) if source else None)
    try:
        conn.putrequest("GET", f"/.well-known/acme-challenge/{TOKEN}", skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _slow_client(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A connection that sent half a request line and then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0))
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


def _wait_until_accepted(responder: Http01Responder, count: int) -> None:
    """Until the responder has taken `count` connections off its backlog (at most 20 s)."""
    settled = threading.Event()
    give_up = time.monotonic() + 20
    while not settled.wait(0.01) and time.monotonic() < give_up:
        if responder.open_connections + sum(responder.closed_connections.values()) >= count:
            settled.set()


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


def test_head_deadline_closes_a_slow_connection(tokens: MemoryTokenStore) -> None:
    # The per-read timeout (30 s) is longer than the client waits (20 s): only the request-head
    # deadline (0.5 s) can close this connection in time.
    with Http01Responder(tokens, "127.0.0.1", 0, limits=ResponderLimits(
            read_timeout=30.0, head_deadline=0.5, request_deadline=30.0)) as responder:
        slow = _slow_client(responder.port)
        try:
            assert _closed_by_server(slow)
        finally:
            slow.close()
        assert responder.closed_connections["overdue"] == 1


def test_request_head_over_8_kib_is_refused_with_431(tokens: MemoryTokenStore) -> None:
    with Http01Responder(tokens, "127.0.0.1", 0) as responder:
        sock = socket.create_connection(("127.0.0.1", responder.port), timeout=20)
        try:
            sock.sendall(b"GET /.well-known/acme-challenge/" + TOKEN.encode() + b" HTTP/1.1\r\n"
                         + b"Host: shop.example.com\r\n")
            header = b"X-Pad: " + b"a" * 90 + b"\r\n"
            sent = 0
            with contextlib.suppress(OSError):  # the server may close while we still send
                while sent < 64 * 1024:
                    sock.sendall(header)
                    sent += len(header)
            answer = sock.recv(64)
        finally:
            sock.close()
        assert answer.startswith(b"HTTP/1.0 431")
        # a request line alone over the cap
        sock = socket.create_connection(("127.0.0.1", responder.port), timeout=20)
        try:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /" + b"a" * 9000)
            assert sock.recv(64).startswith(b"HTTP/1.0 431")
        finally:
            sock.close()


def test_a_connection_over_its_address_share_is_closed_at_accept(
        tokens: MemoryTokenStore) -> None:
    with Http01Responder(tokens, "127.0.0.1", 0, limits=ResponderLimits(
            read_timeout=30.0, head_deadline=30.0, request_deadline=30.0,
            max_per_address=4)) as responder:
        held = [_slow_client(responder.port) for _ in range(4)]
        try:
            extra = _slow_client(responder.port)
            assert _closed_by_server(extra)
            _wait_until_accepted(responder, 5)
            extra.close()
            assert responder.open_connections == 4
            assert responder.closed_connections["refused"] == 1
            assert _get(responder.port, "shop.example.com", source="127.0.0.2")[0] == 200
        finally:
            for sock in held:
                sock.close()


def test_tokens_are_answered_while_one_address_holds_every_socket_it_can_open(
        tokens: MemoryTokenStore) -> None:
    """300 idle connections from 127.0.0.1 (no deadline frees them) and a table full of other
    addresses' idle readers: the CA at 127.0.0.2 is answered at the first try."""
    with Http01Responder(tokens, "127.0.0.1", 0, limits=ResponderLimits(
            read_timeout=30.0, head_deadline=30.0, request_deadline=30.0,
            max_connections=16, max_per_address=8)) as responder:
        attackers = [_slow_client(responder.port, source=f"127.0.0.{3 + i % 3}")
                     for i in range(300)]
        try:
            _wait_until_accepted(responder, 300)
            assert responder.open_connections == 16  # full: 3 addresses' idle readers
            evicted = responder.closed_connections["evicted"]
            assert _get(responder.port, "shop.example.com", source="127.0.0.2")[0] == 200
            assert responder.closed_connections["evicted"] == evicted + 1
        finally:
            for sock in attackers:
                sock.close()


def test_connections_past_the_limit_are_refused_only_when_none_is_idle() -> None:
    table: ConnectionTable[str] = ConnectionTable(2, 2, head_deadline=1.0, request_deadline=5.0)
    assert table.admit("a1", "10.0.0.1", 0.0).admitted
    assert table.admit("a2", "10.0.0.1", 0.0).admitted
    table.answering("a1")
    table.answering("a2")
    assert table.admit("b1", "10.0.0.2", 0.0) == Admission(False)
    table.release("a1")
    assert table.admit("b1", "10.0.0.2", 0.0) == Admission(True)
    shares: ConnectionTable[str] = ConnectionTable(9, 2, head_deadline=1.0, request_deadline=5.0)
    assert shares.admit("a1", "a", 0.0).admitted and shares.admit("a2", "a", 0.0).admitted
    assert shares.admit("a3", "a", 0.0) == Admission(False)  # over a's share, though not full


def test_a_full_table_evicts_the_oldest_idle_connection_of_the_busiest_address() -> None:
    table: ConnectionTable[str] = ConnectionTable(5, 3, head_deadline=1.0, request_deadline=5.0)
    for conn, address in [("b1", "b"), ("a1", "a"), ("a2", "a"), ("a3", "a"), ("c1", "c")]:
        assert table.admit(conn, address, 0.0).admitted
    table.answering("a1")  # answering: not idle, not evicted
    assert table.admit("d1", "d", 0.0) == Admission(True, ("a2",))
    assert table.admit("a4", "a", 0.0) == Admission(True, ("a3",))
    assert table.overdue(1.0) == ["b1", "c1", "d1", "a4"]  # idle past the head deadline
    assert table.overdue(5.0) == ["a1"]  # answering past the whole-request deadline
    assert len(table) == 0


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


def test_the_self_check_never_repeats_what_answered(tokens: MemoryTokenStore) -> None:
    """Whatever answers where a tenant's host points, its body never reaches the error (an
    Event on the tenant's source): only the status, or that it was another answer."""
    tokens.put(TOKEN, token_value("internal-service-banner v1.2", "127.0.0.1"))
    with Http01Responder(tokens, "127.0.0.1", 0) as responder:
        solver = Http01Solver(tokens, SelfCheck(port=responder.port))
        assert solver._fetch(_challenge("127.0.0.1")) == "served a different key authorization"
        unknown = PendingChallenge(ChallengeType.HTTP01, "127.0.0.1", False, "other",
                                   "other.thumb")
        assert solver._fetch(unknown) == "HTTP 404"


def test_a_taken_port_is_an_os_error_not_an_attribute_error(tokens: MemoryTokenStore) -> None:
    # `renew NAMESPACE/SECRET` inside the controller's pod: the controller holds the port.
    with Http01Responder(tokens, "127.0.0.1", 0) as taken, pytest.raises(OSError) as raised:
        Http01Responder(tokens, "127.0.0.1", taken.port)
    assert not isinstance(raised.value, AttributeError)
