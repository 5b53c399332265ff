"""DNS faults against the lab's BIND: REFUSED, NOTAUTH, bad TSIG, timeout, a lagging or refusing
second nameserver, clean-up that outlasts an outage (no TXT left behind), and recursive-only
resolvers that never answer or do not recurse."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from certbotk8s.adapters.dns.rfc2136 import Rfc2136Provider
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.core.errors import DnsServerUnreachable, DnsSolverError, OrderAbandoned
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import PendingChallenge, TxtRecord

from .conftest import Lab
from .test_dns_providers import txt_at

pytestmark = pytest.mark.lab


def challenge(domain: str, value: str) -> PendingChallenge:
    return PendingChallenge(type=ChallengeType.DNS01, domain=domain, wildcard=False,
                            token="t", key_authorization="k", dns_value=value)


def _name(lab: Lab, zone_key: str) -> str:
    return f"f-{uuid.uuid4().hex[:10]}.{lab[zone_key]}"


# --- the update is refused ------------------------------------------------------------------


def test_refused_update_names_the_server_and_rcode(lab: Lab) -> None:
    solver = lab.dns01_solver()
    ch = challenge(_name(lab, "DNS_ZONE_READONLY"), "v")
    with pytest.raises(DnsSolverError) as info:
        solver.present(ch)
    message = str(info.value)
    assert lab["DNS_SERVER"] in message and "refused: REFUSED" in message
    assert f"zone {lab['DNS_ZONE_READONLY']}" in message


def test_update_to_a_server_not_authoritative_is_notauth(lab: Lab) -> None:
    # BIND is sent an update for PowerDNS's zone (found by SOA through PowerDNS)
    solver = DnsSolver(Rfc2136Provider(lab.rfc2136()), lab.lookup("PDNS_SERVER"), name="x")
    with pytest.raises(DnsSolverError) as info:
        solver.present(challenge(_name(lab, "PDNS_ZONE"), "v"))
    assert lab["DNS_SERVER"] in str(info.value) and "refused: NOTAUTH" in str(info.value)


@pytest.mark.parametrize("change", ["secret", "name"])
def test_bad_tsig_key_is_named_without_the_secret(lab: Lab, change: str) -> None:
    wrong_secret = "c2VjcmV0LXRoYXQtaXMtd3Jvbmctc2VjcmV0LXRoYXQtaXMtd3Jvbmc="
    settings = (replace(lab.rfc2136(), tsig_secret=wrong_secret) if change == "secret"
                else replace(lab.rfc2136(), tsig_name="unknown-key."))
    provider = Rfc2136Provider(settings)
    record = TxtRecord(f"_acme-challenge.{_name(lab, 'DNS_ZONE')}", lab["DNS_ZONE"], "v")
    with pytest.raises(DnsSolverError) as info:
        provider.present(record)
    message = str(info.value)
    assert lab["DNS_SERVER"] in message and f"TSIG key {settings.tsig_name}" in message
    assert wrong_secret not in message and lab["DNS_TSIG_SECRET"] not in message
    assert txt_at(lab["DNS_SERVER"], record.fqdn) == set()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield f"127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_timeout_names_the_server(lab: Lab, silent_server: str) -> None:
    provider = Rfc2136Provider(replace(lab.rfc2136(), server=silent_server, timeout=0.5))
    with pytest.raises(DnsSolverError) as info:
        provider.present(TxtRecord("_acme-challenge.t.certbotk8s.test", "certbotk8s.test", "v"))
    assert silent_server in str(info.value) and "(timeout)" in str(info.value)


# --- a second authoritative server played by the test ----------------------------------------


class SecondNameserver:
    """UDP server on 127.0.0.2:<BIND port>, the zone's second NS. Modes: `lag` (answers with
    authority but without any TXT, until `lag_queries` queries were answered so), `forward`
    (passes queries to BIND), `refuse` (REFUSED)."""

    def __init__(self, lab: Lab, mode: str, lag_queries: int = 0) -> None:
        self.lab = lab
        self.mode = mode
        self.lag_queries = lag_queries
        self.queries = 0
        self.stopped = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.2", lab.dns_port))
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                wire, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            if self.stopped:
                return
            query = dns.message.from_wire(wire)
            self.queries += 1
            if self.mode == "refuse":
                response = dns.message.make_response(query)
                response.set_rcode(dns.rcode.REFUSED)
            elif self.mode == "lag" and self.queries <= self.lag_queries:
                response = dns.message.make_response(query)
                response.flags |= dns.flags.AA
            else:
                response = dns.query.udp(query, "127.0.0.1", port=self.lab.dns_port, timeout=3)
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.stopped = True  # then wake the blocked recvfrom with one datagram
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", ("127.0.0.2", self.lab.dns_port))
        self.thread.join(timeout=5)
        self.sock.close()


def _two_ns_solver(lab: Lab, timeout: float) -> DnsSolver:
    return lab.dns01_solver(timeout=timeout)


def test_lagging_nameserver_is_waited_for_without_a_fixed_sleep(lab: Lab) -> None:
    second = SecondNameserver(lab, "lag", lag_queries=2)
    solver = _two_ns_solver(lab, timeout=30)
    ch = challenge(_name(lab, "DNS_ZONE_TWO_NS"), "lagged-value")
    try:
        solver.present(ch)
        solver.wait_until_ready([ch])
    finally:
        solver.clean_up(ch)
        second.close()
    assert second.queries == 3  # twice without the value, then it showed it: done at once
    assert txt_at(lab["DNS_SERVER"], f"_acme-challenge.{ch.domain}") == set()


def test_nameserver_that_never_catches_up_is_named_in_the_error(lab: Lab) -> None:
    second = SecondNameserver(lab, "lag", lag_queries=10**6)
    solver = _two_ns_solver(lab, timeout=0.5)
    ch = challenge(_name(lab, "DNS_ZONE_TWO_NS"), "never-seen")
    try:
        solver.present(ch)
        with pytest.raises(DnsSolverError) as info:
            solver.wait_until_ready([ch])
    finally:
        solver.clean_up(ch)
        second.close()
    message = str(info.value)
    assert f"127.0.0.2:{lab.dns_port} (no TXT yet)" in message
    assert "127.0.0.1" not in message  # the primary had it
    assert txt_at(lab["DNS_SERVER"], f"_acme-challenge.{ch.domain}") == set()


def test_nameserver_that_refuses_fails_the_check_at_once(lab: Lab) -> None:
    second = SecondNameserver(lab, "refuse")
    solver = _two_ns_solver(lab, timeout=120)
    ch = challenge(_name(lab, "DNS_ZONE_TWO_NS"), "v")
    try:
        solver.present(ch)
        with pytest.raises(DnsSolverError) as info:
            solver.wait_until_ready([ch])
        asked = second.queries
    finally:
        second.mode = "forward"  # so clean-up can see the value gone everywhere
        solver.clean_up(ch)
        second.close()
    assert f"127.0.0.2:{lab.dns_port}" in str(info.value) and "REFUSED" in str(info.value)
    assert asked == 1  # no polling of a server that can never answer
    assert txt_at(lab["DNS_SERVER"], f"_acme-challenge.{ch.domain}") == set()


# --- clean-up survives an outage of the update server ----------------------------------------


class GatedProxy:
    """TCP proxy to BIND that, while closed, accepts and drops each connection (counted)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.open = True
        self.dropped = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                self.dropped.set()
                continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.lab.dns_port)) as upstream:
            client.settimeout(5)
            upstream.settimeout(5)
            try:
                while data := client.recv(65535):
                    upstream.sendall(data)
                    client.sendall(upstream.recv(65535))
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()


def test_cleanup_is_retried_through_an_outage_until_the_record_is_gone(lab: Lab) -> None:
    proxy = GatedProxy(lab)
    solver = DnsSolver(Rfc2136Provider(replace(lab.rfc2136(), server=proxy.address, timeout=2)),
                       lab.lookup(), name="gated", cleanup_timeout=60)
    ch = challenge(_name(lab, "DNS_ZONE"), "outlived-the-outage")
    name = f"_acme-challenge.{ch.domain}"
    solver.present(ch)
    assert txt_at(lab["DNS_SERVER"], name) == {"outlived-the-outage"}
    proxy.open = False
    worker = threading.Thread(target=solver.clean_up, args=(ch,))
    worker.start()
    assert proxy.dropped.wait(30), "clean-up never tried the update server"
    proxy.open = True  # the outage ends: the next retry gets through
    worker.join(60)
    proxy.close()
    assert not worker.is_alive()
    assert txt_at(lab["DNS_SERVER"], name) == set()


def test_cleanup_that_cannot_succeed_names_what_is_left_behind(lab: Lab) -> None:
    proxy = GatedProxy(lab)
    solver = DnsSolver(Rfc2136Provider(replace(lab.rfc2136(), server=proxy.address, timeout=2)),
                       lab.lookup(), name="gated", cleanup_timeout=0.5)
    ch = challenge(_name(lab, "DNS_ZONE"), "stuck-value")
    solver.present(ch)
    proxy.open = False
    try:
        with pytest.raises(DnsSolverError) as info:
            solver.clean_up(ch)
    finally:
        proxy.close()
        Rfc2136Provider(lab.rfc2136()).cleanup(
            TxtRecord(f"_acme-challenge.{ch.domain}", lab["DNS_ZONE"], "stuck-value"))
    message = str(info.value)
    assert f"_acme-challenge.{ch.domain} value stuck-value may be left behind" in message
    assert proxy.address in message


def test_leader_that_loses_its_lease_stops_waiting_for_propagation(lab: Lab) -> None:
    second = SecondNameserver(lab, "lag", lag_queries=10**6)
    asked: list[int] = []

    def keep_going() -> bool:  # leadership lost right after the first round of queries
        asked.append(second.queries)
        return False

    solver = DnsSolver(Rfc2136Provider(lab.rfc2136()), lab.lookup(timeout=120), name="lab-bind",
                       keep_going=keep_going)
    ch = challenge(_name(lab, "DNS_ZONE_TWO_NS"), "abandoned")
    try:
        solver.present(ch)
        with pytest.raises(OrderAbandoned, match="no longer the leader"):
            solver.wait_until_ready([ch])
    finally:
        second.mode = "forward"
        solver.clean_up(ch)
        second.close()
    assert asked == [1]  # asked once, after one query to the lagging server, then stopped
    assert txt_at(lab["DNS_SERVER"], f"_acme-challenge.{ch.domain}") == set()


# --- recursive-only mode: resolvers that fail -------------------------------------------------


def _closed_udp_port() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_recursive_resolver_that_never_answers_is_an_outage_its_probe_watches(lab: Lab) -> None:
    dead = _closed_udp_port()
    resolvers = (lab["DNS_FORWARDER"], dead)
    solver = lab.dns01_solver(recursive_nameservers=resolvers, timeout=1.0)
    ch = challenge(_name(lab, "DNS_ZONE"), "recursive-value")
    solver.present(ch)
    try:
        with pytest.raises(DnsServerUnreachable) as info:
            solver.wait_until_ready([ch])
    finally:
        solver.clean_up(ch)
    message = str(info.value)
    assert "not visible on every configured recursive resolver" in message
    assert dead in message and lab["DNS_FORWARDER"] not in message  # the live one had it
    assert solver.probe() == f"resolver {dead}: no answer (timeout)"
    assert lab.dns01_solver(recursive_nameservers=(lab["DNS_FORWARDER"],)).probe() is None


def test_recursive_mode_refuses_a_server_that_does_not_recurse(lab: Lab) -> None:
    """The lab's PowerDNS is authoritative only: asked about a zone it does not serve it
    refuses, which can never change; the check fails at once instead of waiting."""
    solver = lab.dns01_solver(recursive_nameservers=(lab["PDNS_SERVER"],), timeout=20.0)
    ch = challenge(_name(lab, "DNS_ZONE"), "v")
    solver.present(ch)
    try:
        with pytest.raises(DnsSolverError) as info:
            solver.wait_until_ready([ch])
    finally:
        solver.clean_up(ch)
    assert f"configured recursive resolver {lab['PDNS_SERVER']} cannot serve TXT" in str(
        info.value)
