"""`renew --once`: one pass over everything due, the most urgent first, and its report."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial

from certbotk8s.app.ari import report_ari_held
from certbotk8s.app.budget import RenewalBook, Reservation
from certbotk8s.app.health.outage_gate import Service
from certbotk8s.app.isolation import contained
from certbotk8s.app.oneshot.pass_outages import PassOutages
from certbotk8s.app.orders import (
    OrderHooks,
    Outcome,
    PassDeps,
    Progress,
    Survey,
    annotate_error,
    execute,
    internal_outcome,
    post_event,
    record_follow_up,
    report_problems,
    survey,
    tidy_records,
)
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.errors import (
    CertbotK8sError,
)
from certbotk8s.core.model import (
    ObservedSecret,
    RenewalWindow,
    SecretRef,
)
from certbotk8s.core.renewal import lifecycle
from certbotk8s.core.renewal.after_order import OrderResult, after_order
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.renewal.urgency import by_urgency

log = logging.getLogger(__name__)


RENEW_ONCE_WORKERS = 64
"""`renew --once --workers` by default. A run has `--stop-after` (3000 s) every 12 h where the
controller orders all day: 64 orders of about 45 s at a time place some 4,000 in a run, enough
for a mass revocation of 3,000 on top of a day's routine renewals of 10,000 certificates
(docs/operations.md, "How large a fleet the CronJob keeps renewed"). The threads mostly wait
for the CA and DNS."""
ARI_READERS = 16
"""ARI reads in parallel at most (the CA's renewalInfo endpoint is asked for every certificate
whose Retry-After has passed; more readers would gain seconds and only load the CA)."""

RENEWAL_DEFERRED = "RenewalDeferred"
"""Warning Event reason: the run stopped starting orders (`--stop-after`) before this one."""


@dataclass(frozen=True)
class PassReport:
    survey: Survey
    outcomes: tuple[Outcome, ...]

    @property
    def failed(self) -> bool:
        return bool(self.survey.discovery.problems) or any(
            not o.ok and not o.deferred for o in self.outcomes)

    @property
    def deferred(self) -> tuple[Outcome, ...]:
        """Due certificates this run did not start on: the next run takes them, most urgent
        first. Not a failure (exit 0), but a warning, a metric and an Event each."""
        return tuple(o for o in self.outcomes if o.deferred)


def run_pass(deps: PassDeps, namespaces: Sequence[str] = (),
             progress: Progress = lambda line: None,
             only: Collection[SecretRef] = (), *, workers: int = 1,
             stop_after: timedelta | None = None,
             requested: datetime | None = None) -> PassReport:
    """Issue or renew everything due, the most urgent first (core.renewal.urgency), up to
    `workers` orders at a time, and report. The same budget and backoff as the controller
    (kept on the cluster) decide whether an order may go. After `stop_after` no new order
    starts (running ones finish): what is left is reported as deferred.
    `only` limits the pass to the certificates of these Secrets (`renew NAMESPACE/SECRET`);
    `requested`: when they were asked for, so a backoff does not hold them (one attempt each,
    core.renewal.backoff.for_attempt), a Secret that does not exist yet included."""
    book = RenewalBook(deps.config, deps.records, deps.ledger)
    book.load()
    now = deps.clock()
    current = survey(deps, namespaces, workers=min(workers, ARI_READERS))
    for ref, values in current.ari_memory.items():  # asked again after the CA's Retry-After
        deps.records.update(ref, values)
    book.set_issued(deps.records.snapshot(), now)
    if not only:  # which claims still have a source (a `renew NS/SECRET` run does not know)
        tidy_records(deps, (d.secret for d in current.discovery.desired), now, namespaces)
    if only:
        current = replace(current, actions=tuple(a for a in current.actions
                                                 if a.desired.secret in only))
    report_problems(deps, current.discovery)
    for action in ari_held(current, now):
        assert action.renewal is not None and action.renewal.ari_capped is not None
        report_ari_held(deps.events, action.desired, action.renewal.ari_capped)
    for problem in current.discovery.problems:
        progress(f"REFUSED  {problem.source}: {problem.reason}: {problem.message}")
    outages = PassOutages(deps.config, deps.solvers)
    outages.probe_cas(a for a in current.actions
                      if a.kind in (ActionKind.ISSUE, ActionKind.RENEW))
    run = _Run(deps, book, current, outages, progress, len(current.actions),
               now + stop_after if stop_after is not None else None, requested)
    # The most urgent first (core.renewal.urgency): a run cut short leaves the least urgent
    # behind. Each certificate is one worker's; the pool only bounds how many go at once.
    urgent = list(enumerate(by_urgency(current.actions, current.observed, now, current.ari), 1))
    with ThreadPoolExecutor(max_workers=max(1, workers),
                            thread_name_prefix="certbotk8s-order") as pool:
        outcomes = list(pool.map(run.one, urgent))
    book.flush(force=True)
    deps.records.flush(force=True)
    report = PassReport(current, tuple(outcomes))
    if report.deferred:
        log.warning("renew --once: stopped starting orders after %s; %d due certificates "
                    "left for the next run", stop_after, len(report.deferred))
    return report


class _Run:
    """One pass's shared parts, handed to each worker."""

    def __init__(self, deps: PassDeps, book: RenewalBook, current: Survey, outages: PassOutages,
                 progress: Progress, total: int, stop_at: datetime | None,
                 requested: datetime | None = None) -> None:
        self.deps, self.book, self.current, self.outages = deps, book, current, outages
        self.progress, self.total, self.stop_at = progress, total, stop_at
        self.requested = requested

    def one(self, numbered: tuple[int, Action]) -> Outcome:
        index, action = numbered
        d = action.desired
        label = (f"[{index}/{self.total}] {d.source} -> Secret {d.secret} "
                 f"({', '.join(d.spec.hosts)})")
        if self._stopped(action):
            outcome = _deferred(self.deps, action, self.stop_at)
        else:
            outcome = contained(d, "handling",
                                partial(_pass_one, self.deps, self.book, self.current,
                                        self.outages, action, partial(_labelled, self.progress,
                                                                      label),
                                        self.requested),
                                partial(internal_outcome, self.deps, action))
        status = "ok" if outcome.ok else "DEFERRED" if outcome.deferred else "FAILED"
        self.progress(f"{label}: {status}: {outcome.message}")
        return outcome

    def _stopped(self, action: Action) -> bool:
        return (action.kind in (ActionKind.ISSUE, ActionKind.RENEW) and self.stop_at is not None
                and self.deps.clock() >= self.stop_at)


def _deferred(deps: PassDeps, action: Action, stop_at: datetime | None) -> Outcome:
    message = (f"due ({action.reason.message}), not started: this run stopped starting orders "
               f"at {stop_at:%Y-%m-%dT%H:%M:%SZ} (--stop-after); the next run takes the most "
               f"urgent first")
    post_event(deps, action.desired, "Warning", RENEWAL_DEFERRED, message)
    return Outcome(action, False, message, deferred=True)


def ari_held(current: Survey, now: datetime) -> list[Action]:
    """The actions whose ARI moment has come but core.renewal.ari_gate holds it back."""
    return [a for a in current.actions if a.renewal is not None and a.renewal.ari_held(now)]


def _labelled(progress: Progress, label: str, line: str) -> None:
    progress(f"{label}: {line}")


def _pass_one(deps: PassDeps, book: RenewalBook, current: Survey, outages: PassOutages,
              action: Action, progress: Progress,
              requested: datetime | None = None) -> Outcome:
    """One certificate of `run_pass`."""
    d = action.desired
    observed = current.observed.get(d.secret)
    if d.secret in current.ari_problems:
        progress(f"note: {current.ari_problems[d.secret]}")
    if action.kind in (ActionKind.ISSUE, ActionKind.RENEW):
        progress(f"{action.kind.value.lower()} ({action.reason.message}) ...")
        return ordered(deps, book, action, observed, outages, requested,
                       current.ari.get(d.secret))
    return execute(deps, action, observed)


def ordered(deps: PassDeps, book: RenewalBook, action: Action,
            observed: ObservedSecret | None, outages: PassOutages | None = None,
            requested: datetime | None = None,
            ari: RenewalWindow | None = None) -> Outcome:
    """One ISSUE/RENEW of `renew --once`: the facts for core.renewal.lifecycle (backoff, budget,
    outages), the order, and core.renewal.after_order's follow-up in the records. A host change
    the budget holds renews the names the Secret holds instead, once those are due
    (`RenewalBook.admit`; `ari`: the window of the certificate it holds). The budget is
    reserved in the step that checks it (RenewalBook.reserve): two workers never both take its
    last slot."""
    ref = action.desired.secret
    now = deps.clock()
    action, hold = book.admit(action, observed, now, ari, requested)
    blocked = outages.blocked(action) if outages is not None else None
    facts = lifecycle.OrderFacts(
        ref, failure=book.failure_state(ref, observed, now, spec=action.desired.spec,
                                        requested=requested),
        hold=hold,
        down=(lifecycle.ServiceDown(blocked[0].reason, blocked[1]),) if blocked else ())
    wait = lifecycle.why_wait(facts, now)
    reserved = book.reserve(action, observed, now) if wait is None else None
    if isinstance(reserved, ratelimit.Hold):  # another worker took the last slot meanwhile
        wait = lifecycle.why_wait(replace(facts, hold=reserved), now)
    if wait is not None or not isinstance(reserved, Reservation):
        assert wait is not None
        if wait.kind is lifecycle.WaitKind.RATE_LIMIT:
            post_event(deps, action.desired, "Warning", wait.kind.value, wait.message)
            annotate_error(deps, ref, wait.message, now)
        elif wait.kind in (lifecycle.WaitKind.CA_DOWN, lifecycle.WaitKind.DNS_DOWN):
            post_event(deps, action.desired, "Warning", wait.kind.value,
                       wait.message)  # no backoff
        return Outcome(action, False, wait.message)
    reservation = reserved

    def on_order(url: str, sends_replaces: bool) -> None:
        reservation.placed(deps.clock(), sends_replaces)  # now an order in flight

    noted: list[tuple[Service, str]] = []

    def outage(error: CertbotK8sError) -> bool:
        found = outages.note(action, error) if outages is not None else None
        if found is not None:
            noted.append(found)
        return found is not None

    with reservation:
        outcome = execute(deps, action, observed, OrderHooks(on_order, outage=outage))
    follow = after_order(OrderResult(outcome.ok, outcome.error, outcome.outage,
                                     outcome.unwritten is not None))
    record_follow_up(deps, book, [action], observed, outcome, follow, now)
    if noted:  # its service is down: held for the rest of the run, no backoff
        service, message = noted[0]
        post_event(deps, action.desired, "Warning", service.reason, message)
        return replace(outcome, message=message)
    return outcome
