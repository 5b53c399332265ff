"""`renew --once` with a worker pool: orders go in parallel, the budget check and the new order
stay one step (the budget is never overspent), and after `stop_after` no new order starts: what
is left is deferred (a Warning Event each, not a failure)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from certbotk8s.app.oneshot import run as oneshot_run
from certbotk8s.app.oneshot.pass_metrics import pass_summary
from certbotk8s.app.oneshot.pass_outages import PassOutages
from certbotk8s.app.oneshot.run import RENEWAL_DEFERRED, run_pass
from certbotk8s.app.orders import PassDeps
from certbotk8s.core.model import IssuedCertificate
from certbotk8s.core.pki import certs
from tests.unit import hostile
from tests.unit.factories import T0, ingress, make_config, tls_entry

HOSTS = [f"h{i}.example.com" for i in range(8)]
INGRESSES = [ingress(f"web{i}", "shop", tls=[tls_entry(f"web{i}-tls", host)])
             for i, host in enumerate(HOSTS)]


def _outages(config: Any, solvers: Any) -> PassOutages:
    return PassOutages(config, solvers, probe=hostile.no_probe)


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, by: timedelta) -> None:
        with self._lock:
            self.now += by


class Engine:
    """Issues a certificate for the hosts asked. The first `meet` orders wait for each other
    after they are placed, so the test sees them run at the same time."""

    order_deadline = 600.0

    def __init__(self, meet: int = 0, clock: Clock | None = None,
                 takes: timedelta = timedelta(0)) -> None:
        self.placed: list[tuple[str, ...]] = []
        self._meet = threading.Barrier(meet) if meet > 1 else None
        self._lock = threading.Lock()
        self._clock, self._takes = clock, takes

    def issue(self, request: Any, solvers: Any, on_order: Any = None,
              keep_going: Any = None) -> IssuedCertificate:
        with self._lock:
            self.placed.append(request.hosts)
            meets = self._meet is not None and len(self.placed) <= self._meet.parties
        if on_order is not None:
            on_order(f"https://ca.example/order/{request.hosts[0]}")
        if meets:
            assert self._meet is not None
            self._meet.wait(timeout=30)  # a safety valve only: the partner is already running
        if self._clock is not None:
            self._clock.advance(self._takes)
        pem = hostile.good_pem(*request.hosts)
        return IssuedCertificate(hostile.leaf_key_pem(), pem, certs.certificate_info(pem),
                                 f"https://ca.example/cert/{request.hosts[0]}")


class Issuers(hostile.Issuers):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def engine(self, name: str) -> Any:
        return self._engine


def _deps(config: Any, engine: Engine, clock: Any = lambda: T0) -> PassDeps:
    solvers: Any = hostile.Solvers()
    issuers: Any = Issuers(engine)
    return PassDeps(config, hostile.Sources(INGRESSES), hostile.Secrets([]), hostile.Events(),
                    issuers, solvers, clock=clock)


def test_orders_run_in_parallel_and_never_overspend_the_budget() -> None:
    config = make_config(issuers={"le": {
        "directory": "https://acme.example/dir",
        "rateLimits": {"ordersPer3Hours": 3, "namespaceOrderShare": 100}}})
    engine = Engine(meet=2)  # the first two orders are in flight together
    deps = _deps(config, engine)
    with mock.patch.object(oneshot_run, "PassOutages", _outages):
        report = run_pass(deps, workers=4)
    assert len(engine.placed) == 3  # the account's 3 orders, never a fourth
    ok = [o for o in report.outcomes if o.ok]
    held = [o for o in report.outcomes if not o.ok]
    assert len(ok) == 3 and len(held) == 5 and report.failed
    assert all("orders" in o.message for o in held)


def test_a_run_stops_starting_orders_after_stop_after_and_defers_the_rest() -> None:
    clock = Clock()
    engine = Engine(clock=clock, takes=timedelta(minutes=10))
    deps = _deps(make_config(), engine, clock)
    with mock.patch.object(oneshot_run, "PassOutages", _outages):
        report = run_pass(deps, workers=1, stop_after=timedelta(minutes=15))
    assert len(engine.placed) == 2  # started at 0 and 10 min; at 20 min the run stops
    assert len(report.deferred) == 6 and not report.failed  # deferred is not failed
    events: Any = deps.events
    deferred_events = [e for e in events.posted if e[2] == RENEWAL_DEFERRED]
    assert {e[0].name for e in deferred_events} == {
        o.action.desired.source.name for o in report.deferred}
    summary = pass_summary(report)
    assert (summary.issued, summary.failed, summary.deferred) == (2, 0, 6)
    assert "6 due but deferred to the next run" in summary.line()


def test_n_free_certificates_of_a_registered_domain_are_n_orders_whatever_the_workers() -> None:
    """Issue 19's leftover: the per-domain budget is spent in the step that checks it
    (RenewalBook.reserve), so 4 workers over 8 due certificates of one domain with 3 slots
    place exactly 3 orders (each check used to see the same issuances of the pass's start)."""
    config = make_config(issuers={"le": {
        "directory": "https://acme.example/dir",
        "rateLimits": {"certificatesPerDomain": 3, "namespaceDomainShare": 100}}})
    engine = Engine(meet=3)  # the three orders are in flight together
    deps = _deps(config, engine)
    with mock.patch.object(oneshot_run, "PassOutages", _outages):
        report = run_pass(deps, workers=4)
    assert len(engine.placed) == 3
    held = [o for o in report.outcomes if not o.ok]
    assert len(held) == 5
    assert all("registered domain example.com" in o.message for o in held)
