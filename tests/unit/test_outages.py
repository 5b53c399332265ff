"""Outages: an order's deadline and propagation wait (pure core), the DNS gate and `renew --once`'s
per-run outage record, with fake probes and events."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import cast

import pytest

from certbotk8s.app.health import resolver_gate
from certbotk8s.app.health.ca_gate import CA
from certbotk8s.app.health.dns_gate import DnsGate, dns_service
from certbotk8s.app.health.outage_gate import OutageGate
from certbotk8s.app.health.resolver_gate import ResolverGate
from certbotk8s.app.metrics import Metrics as AppMetrics
from certbotk8s.app.oneshot.pass_outages import PassOutages
from certbotk8s.app.solvers import SolverFactory
from certbotk8s.core.errors import (
    AcmeCaUnavailable,
    CertbotK8sError,
    ChallengeFailed,
    DnsServerUnreachable,
    DnsSolverError,
    Problem,
)
from certbotk8s.core.model import ChallengeType, ObjectRef
from certbotk8s.core.renewal import waits
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.renewal.reasons import Reason, ReasonCode

from .factories import T0, desired, make_config

# --- an order's waits (core.renewal.waits) ----------------------------------------------------

PROPAGATION = timedelta(seconds=300)
ORDER = timedelta(seconds=120)


def test_dns01_waits_are_taken_as_configured_the_deadline_after_the_propagation_wait() -> None:
    """No fixed cap: a 300 s propagationTimeout is waited in full (it used to be 90 s)."""
    for not_after in (None, T0 + timedelta(days=60)):
        waited = waits.order_waits(PROPAGATION, ORDER, True, not_after, T0)
        assert waited == waits.OrderWaits(timedelta(seconds=420),
                                          waits.CappedWait(PROPAGATION, ""))
    long = waits.order_waits(timedelta(hours=1), ORDER, True, T0 + timedelta(days=60), T0)
    assert long.propagation.limit == timedelta(hours=1)
    assert long.deadline == timedelta(hours=1, seconds=120)


def test_http01_orders_have_no_propagation_wait() -> None:
    waited = waits.order_waits(PROPAGATION, timedelta(seconds=200), False, None, T0)
    assert waited == waits.OrderWaits(timedelta(seconds=200), waits.CappedWait(timedelta(0)))


def test_waits_are_capped_by_a_tenth_of_the_serving_certificates_life() -> None:
    waited = waits.order_waits(PROPAGATION, ORDER, True, T0 + timedelta(minutes=40), T0)
    assert waited.deadline == timedelta(seconds=240)
    assert waited.propagation.limit == timedelta(seconds=180)  # 3/4: the rest for the CA
    assert "propagationTimeout 300s capped to 180s" in waited.propagation.why
    assert "1/10 of the 2400s the current certificate has left" in waited.propagation.why
    http = waits.order_waits(PROPAGATION, ORDER, False, T0 + timedelta(minutes=10), T0)
    assert http.deadline == timedelta(seconds=60)


def test_a_short_propagation_wait_is_kept_when_only_the_deadline_is_capped() -> None:
    waited = waits.order_waits(timedelta(seconds=10), ORDER, True, T0 + timedelta(minutes=10),
                               T0)
    assert waited.deadline == timedelta(seconds=60)
    assert waited.propagation == waits.CappedWait(timedelta(seconds=10), "")
    assert waited.why == ("order deadline 130s capped to 60s, 1/10 of the 600s the current "
                          "certificate has left")


def test_waits_near_or_past_expiry_keep_a_floor_but_never_exceed_the_setting() -> None:
    expired = waits.order_waits(PROPAGATION, ORDER, True, T0 - timedelta(hours=1), T0)
    assert expired.deadline == waits.MIN_DEADLINE
    assert expired.propagation.limit == waits.MIN_DEADLINE * waits.PROPAGATION_SHARE
    assert expired.why.endswith("the 0s the current certificate has left (at least 30s)")
    tiny = waits.order_waits(timedelta(seconds=2), timedelta(seconds=8), True,
                             T0 + timedelta(seconds=10), T0)
    assert tiny.deadline == timedelta(seconds=10)
    assert tiny.propagation == waits.CappedWait(timedelta(seconds=2), "")


# --- the gate, with a fake probe --------------------------------------------------------------


def _action(name: str, challenge: ChallengeType = ChallengeType.DNS01) -> Action:
    d = desired(f"{name}.example.com", challenge=challenge, source_name=name)
    d = replace(d, secret=replace(d.secret, name=f"{name}-tls"))
    return Action(ActionKind.ISSUE, d, Reason(ReasonCode.SECRET_MISSING, "no Secret"))


class Events:
    def __init__(self) -> None:
        self.posted: list[tuple[ObjectRef, str, str, str]] = []

    def record(self, obj: ObjectRef, type_: str, reason: str, message: str) -> None:
        self.posted.append((obj, type_, reason, message))


class Probe:
    def __init__(self, down_for: int) -> None:
        self.down_for, self.calls = down_for, 0

    def __call__(self, key: str) -> str | None:
        self.calls += 1
        return "10.0.0.53:53: ConnectionRefusedError" if self.calls <= self.down_for else None


def _gate(probe: Probe, events: Events, woke: threading.Event,
          published: list[tuple[str, bool, int]]) -> OutageGate:
    solvers = cast(SolverFactory, FakeSolvers(None))
    return OutageGate(dns_service(make_config(defaultDnsProvider="bind"), solvers), probe, events,
                      lambda *row: published.append(row), woke.set, first_delay=0.001,
                      max_delay=0.004)


def test_unreachable_dns_server_holds_dns01_orders_once_each_and_wakes_when_back() -> None:
    probe, events, woke = Probe(down_for=10**9), Events(), threading.Event()
    published: list[tuple[str, bool, int]] = []
    gate = _gate(probe, events, woke, published)
    a, b, http = _action("a"), _action("b"), _action("h", ChallengeType.HTTP01)
    unreachable = DnsServerUnreachable("RFC 2136 add … at 10.0.0.53:53 failed: refused",
                                       "10.0.0.53:53")
    assert gate.failed(a, unreachable)
    assert not gate.failed(http, unreachable)  # an HTTP-01 order needs no DNS provider
    for action in (a, b, a):
        assert not gate.admit(action, T0 + timedelta(days=10), T0)
    assert gate.admit(http, None, T0)
    reasons = [(obj.name, reason) for obj, _, reason, _ in events.posted]
    assert reasons == [("a", "DnsUnavailable"), ("b", "DnsUnavailable")]  # once per certificate
    message = events.posted[0][3]
    assert "waiting for the DNS provider bind: RFC 2136 add" in message
    assert "10.0.0.53:53" in message and "keeps serving until" in message
    assert published[-1] == ("bind", False, 2)
    probe.down_for = 0  # the server answers again
    assert woke.wait(5)
    assert gate.admit(a, None, T0) and gate.admit(b, None, T0)
    assert published[-1] == ("bind", True, 0)


def test_an_answer_from_the_dns_server_is_not_an_outage() -> None:
    gate = _gate(Probe(0), Events(), threading.Event(), [])
    refused = DnsSolverError("RFC 2136 add … refused: REFUSED")
    assert not gate.failed(_action("a"), refused)  # counted, with its backoff
    assert not gate.failed(_action("a"), AcmeCaUnavailable("down"))  # the CA gate's, not this
    assert gate.down_for(_action("a")) is None


class FakeSolvers:
    """SolverFactory stand-in: the DNS solver's probe answers as `down` says."""

    def __init__(self, down: str | None) -> None:
        self.down = down

    def dns_solver(self, name: str) -> FakeSolvers:
        return self

    def probe(self) -> str | None:
        return self.down


class Metrics:
    def set_dns_up(self, provider: str, up: bool, waiting: int) -> None:
        pass


def _dns_gate(down: str | None) -> DnsGate:
    return DnsGate(make_config(defaultDnsProvider="bind"), cast(SolverFactory, FakeSolvers(down)),
                   Events(), cast(AppMetrics, Metrics()), lambda: None)


def test_challenge_the_ca_failed_while_our_dns_server_is_down_is_the_outage() -> None:
    problem = Problem("urn:ietf:params:acme:error:unauthorized", "Error retrieving TXT records")
    failed = ChallengeFailed("a.example.com", "dns-01", problem)
    gate = _dns_gate("10.0.0.53:53: ConnectionRefusedError")
    assert gate.failed(_action("a"), failed)  # no backoff: the outage explains it
    reason = gate.down_for(_action("b"))
    assert reason is not None and "ConnectionRefusedError" in reason
    assert "the CA's validation failed meanwhile" in reason
    gate.stop()
    answering = _dns_gate(None)
    assert not answering.failed(_action("a"), failed)  # the server answers: the CA's verdict
    assert answering.down_for(_action("a")) is None


# --- renew --once --------------------------------------------------------------------------


def test_renew_once_probes_each_issuer_once_and_holds_its_certificates() -> None:
    asked: list[str] = []

    def probe(url: str, verify: bool | str) -> str | None:
        asked.append(url)
        return "cannot reach the CA: connection refused" if "staging" in url else None

    outages = PassOutages(make_config(), cast(SolverFactory, FakeSolvers(None)), probe)
    le = [_action("a", ChallengeType.HTTP01), _action("b", ChallengeType.HTTP01)]
    staging = replace(le[0], desired=replace(le[0].desired, spec=replace(
        le[0].desired.spec, issuer="staging")))
    outages.probe_cas([*le, staging, staging])
    assert asked == ["https://acme.example/dir", "https://staging.example/dir"]
    assert outages.blocked(le[0]) is None
    blocked = outages.blocked(staging)
    assert blocked is not None and blocked[0] is CA
    assert blocked[1].startswith("CA unreachable: cannot reach the CA: connection refused "
                                 "(ACME CA of issuer staging)")


def test_renew_once_holds_a_dns_provider_found_down_for_the_rest_of_the_run() -> None:
    outages = PassOutages(make_config(defaultDnsProvider="bind"),
                          cast(SolverFactory, FakeSolvers(None)), lambda url, verify: None)
    first, later = _action("a"), _action("b")
    error: CertbotK8sError = DnsServerUnreachable("zone (SOA) lookup … (no answer)", "r")
    assert not outages.note(first, DnsSolverError("refused: NOTAUTH"))  # an answer: counted
    assert outages.blocked(later) is None
    assert outages.note(first, error)
    blocked = outages.blocked(later)
    assert blocked is not None and blocked[0].reason == "DnsUnavailable"
    assert blocked[1].startswith("DNS server unreachable: zone (SOA) lookup")
    assert "(DNS provider bind)" in blocked[1]
    assert outages.blocked(_action("h", ChallengeType.HTTP01)) is None


# --- HTTP-01: the CA failed a validation while the hosts' DNS gives no answer -------------------


def test_http01_validation_failed_while_dns_gives_no_answer_waits_without_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: dict[str, str | None] = {"a.example.com": "cannot resolve a.example.com: timeout"}
    monkeypatch.setattr(resolver_gate, "lookup_outage",
                        lambda host, resolver: answers.get(host))
    woke = threading.Event()
    gate = ResolverGate(make_config(), Events(), cast(AppMetrics, Metrics()), woke.set)
    problem = Problem("urn:ietf:params:acme:error:connection", "error while resolving")
    http = _action("a", ChallengeType.HTTP01)
    assert gate.failed(http, ChallengeFailed("a.example.com", "http-01", problem))
    reason = gate.down_for(_action("b", ChallengeType.HTTP01))
    assert reason is not None and "cannot resolve a.example.com" in reason
    assert gate.down_for(_action("d")) is None  # DNS-01 orders are the DNS gate's
    answers["a.example.com"] = None  # it resolves again: the probe reopens
    assert woke.wait(10)
    assert gate.down_for(http) is None
    gate.stop()


def test_http01_validation_failed_while_dns_answers_is_the_cas_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resolver_gate, "lookup_outage", lambda host, resolver: None)
    gate = ResolverGate(make_config(), Events(), cast(AppMetrics, Metrics()), lambda: None)
    problem = Problem("urn:ietf:params:acme:error:unauthorized", "404")
    assert not gate.failed(_action("a", ChallengeType.HTTP01),
                           ChallengeFailed("a.example.com", "http-01", problem))


# --- renew --once decides as the controller does: a validation failed during a DNS outage -----


def _pass_outages(provider_down: str | None = None) -> PassOutages:
    return PassOutages(make_config(defaultDnsProvider="bind"),
                       cast(SolverFactory, FakeSolvers(provider_down)), lambda url, verify: None)


def test_renew_once_holds_http01_when_the_ca_failed_a_validation_while_dns_gives_no_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: dict[str, str | None] = {
        "a.example.com": "cannot resolve a.example.com at 127.0.0.1:53: LifetimeTimeout"}
    monkeypatch.setattr(resolver_gate, "lookup_outage",
                        lambda host, resolver: answers.get(host))
    problem = Problem("urn:ietf:params:acme:error:dns", "DNS problem: SERVFAIL")
    failed = ChallengeFailed("a.example.com", "http-01", problem)
    outages = _pass_outages()
    noted = outages.note(_action("a", ChallengeType.HTTP01), failed)
    assert noted is not None and noted[0].reason == "DnsUnavailable"
    assert noted[1].startswith("DNS server unreachable: cannot resolve a.example.com at "
                               "127.0.0.1:53: LifetimeTimeout (and the CA's validation failed "
                               "meanwhile: "), noted
    assert "DNS problem: SERVFAIL" in noted[1]
    assert noted[1].endswith("(DNS of HTTP-01 hosts at the system resolver); the order failed, "
                             "no backoff counted")
    blocked = outages.blocked(_action("b", ChallengeType.HTTP01))  # the rest of the run
    assert blocked is not None and blocked[0] is noted[0]
    assert outages.blocked(_action("d")) is None  # DNS-01 goes through its provider


def test_renew_once_counts_a_validation_failed_while_dns_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resolver_gate, "lookup_outage", lambda host, resolver: None)
    problem = Problem("urn:ietf:params:acme:error:unauthorized", "404")
    outages = _pass_outages()
    assert outages.note(_action("a", ChallengeType.HTTP01),
                        ChallengeFailed("a.example.com", "http-01", problem)) is None
    assert outages.blocked(_action("b", ChallengeType.HTTP01)) is None


def test_renew_once_holds_dns01_when_the_ca_failed_a_validation_while_the_provider_is_down(
) -> None:
    problem = Problem("urn:ietf:params:acme:error:unauthorized", "Error retrieving TXT records")
    failed = ChallengeFailed("a.example.com", "dns-01", problem)
    assert _pass_outages(None).note(_action("a"), failed) is None  # it answers: counted
    outages = _pass_outages("10.0.0.53:53: ConnectionRefusedError")
    noted = outages.note(_action("a"), failed)
    assert noted is not None and "(DNS provider bind)" in noted[1]
    assert outages.blocked(_action("b")) is not None
