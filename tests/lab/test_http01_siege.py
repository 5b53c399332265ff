"""The HTTP-01 responder under hostile sockets while Pebble validates a victim's token (issue 20,
finding 1): the production limits keep serving the CA."""

from __future__ import annotations

import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import cast

import pytest

from certbotk8s.adapters.acme.engine import OrderRequest
from certbotk8s.adapters.http01.responder import Http01Responder, Http01Solver
from certbotk8s.core.model import ChallengeType
from tests.lab.conftest import EngineFactory, Lab, verify_chain

pytestmark = pytest.mark.lab

# Other loopback addresses than Pebble's and the self-check's (127.0.0.1): 12 pods of one
# tenant, each opening more sockets than its share (32), together more than the table (256).
ATTACKERS = tuple(f"127.0.0.{n}" for n in range(2, 14))
PER_ADDRESS = 48


class Siege:
    """Idle sockets from each of `addresses` (`per_address` each) that sent half a request
    line; each one the responder closes is opened again at once, as a reconnecting attacker
    does. `reopened` counts them."""

    def __init__(self, port: int, addresses: tuple[str, ...], per_address: int) -> None:
        self.port, self.addresses, self.per_address = port, addresses, per_address
        self.reopened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="siege", daemon=True)

    def __enter__(self) -> Siege:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _open(self, selector: selectors.BaseSelector, address: str) -> bool:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2,
                                            source_address=(address, 0))
            sock.sendall(b"GET /.well-known/acme-")
        except OSError:
            return False
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, address)
        return True

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        missing = {address: self.per_address for address in self.addresses}
        try:
            while not self._stop.is_set():
                for address in self.addresses:
                    while missing[address] and not self._stop.is_set():
                        if not self._open(selector, address):
                            break
                        missing[address] -= 1
                for key, _ in selector.select(timeout=0.05):
                    selector.unregister(key.fileobj)
                    cast(socket.socket, key.fileobj).close()
                    missing[key.data] += 1
                    self.reopened += 1
        finally:
            for key in list(selector.get_map().values()):
                cast(socket.socket, key.fileobj).close()
            selector.close()


def _until(check: Callable[[], bool], seconds: float) -> bool:
    """Whether `check()` came to hold within `seconds` (looked at every 10 ms)."""
    held = threading.Event()
    give_up = time.monotonic() + seconds
    while not held.wait(0.01) and time.monotonic() < give_up:
        if check():
            held.set()
    return held.is_set()


@pytest.fixture
def siege(lab: Lab, responder: Http01Responder) -> Iterator[Siege]:
    with Siege(lab.http01_port, ATTACKERS, PER_ADDRESS) as running:
        # The attack is in place when the table is full and the responder is turning the
        # attackers' surplus away.
        in_place = _until(lambda: responder.open_connections >= 250
                          and responder.closed_connections["refused"] > 0, 60)
        assert in_place, (responder.open_connections, responder.closed_connections)
        yield running


def test_pebble_validates_a_victims_token_while_one_tenant_holds_every_socket(
        lab: Lab, make_engine: EngineFactory, http01_solver: Http01Solver,
        responder: Http01Responder, siege: Siege) -> None:
    """Before: one global limit of 64 and idle sockets keeping their slot 5-10 s; 96 idle
    reconnecting sockets left 0 of 98 token requests answered, and a victim's order never
    completed. Now the self-check and Pebble are answered while the attacker keeps the table
    full (per-address share, a 1.5 s head deadline, eviction of the oldest idle reader)."""
    closed_before = sum(responder.closed_connections.values())
    reopened_before = siege.reopened
    engine = make_engine()
    hosts = (lab.host("victim"),)
    cert = engine.issue(OrderRequest(hosts=hosts), {ChallengeType.HTTP01: http01_solver})
    assert cert.info.sans == hosts
    verify_chain(cert.fullchain_pem, lab.roots())
    # The siege went on throughout: the responder kept closing the attackers' sockets, and
    # they kept coming back.
    assert sum(responder.closed_connections.values()) > closed_before
    assert siege.reopened > reopened_before
