"""One reconcile pass of the controller: discover -> plan over the informer caches, then per
Secret: schedule the next renewal, report a refusal, or hand a due order to the runner."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta

from certbotk8s.app.cert_state import CertState, StateTable
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.order_runner import OrderRunner
from certbotk8s.app.renewal_pass import PassDeps, execute, report_problems
from certbotk8s.app.schedule import WakeSchedule
from certbotk8s.app.watch import Watch
from certbotk8s.core import ratelimit, secret_meta
from certbotk8s.core.model import Discovery, ObservedSecret, SourceProblem
from certbotk8s.core.plan import Action, ActionKind, plan
from certbotk8s.core.ports import LeaderElection


class Reconciler:
    def __init__(self, deps: PassDeps, watch: Watch, states: StateTable, schedule: WakeSchedule,
                 runner: OrderRunner, elector: LeaderElection, metrics: Metrics,
                 stopping: threading.Event) -> None:
        self.deps, self.watch, self.states = deps, watch, states
        self.schedule, self.runner = schedule, runner
        self.elector, self.metrics = elector, metrics
        self._stopping = stopping
        self._reported_problems: set[SourceProblem] = set()

    def reconcile(self, now: datetime) -> None:
        found = self.watch.discovery(self.deps.config)
        fresh = set(found.problems) - self._reported_problems
        if fresh:
            report_problems(self.deps, Discovery(problems=tuple(sorted(
                fresh, key=lambda p: (p.source, p.reason)))))
        self._reported_problems = set(found.problems)
        observed = {d.secret: self.watch.observed(d.secret) for d in found.desired}
        # What this installation issued in the last 7 days, for the rate-limit budget: built
        # once per pass (not per order: that is O(managed certificates)).
        self.runner.set_issued([record for _, seen in self.watch.managed()
                                for record in secret_meta.issuance_records(seen.annotations, now)])
        ari = {ref: s.ari for ref, s in self.states.items() if s.ari is not None}
        actions = plan(found.desired, observed, now, ari)
        wanted = {a.desired.secret for a in actions}
        for ref in self.states.refs() - wanted:
            # Source gone: the Secret stays (documented), its schedule goes.
            self.schedule.cancel(ref)
            self.metrics.remove_certificate(ref.namespace, ref.name)
            self.states.drop(ref)
        self.metrics.set_managed_certificates(len(self.watch.secrets.cache))
        holds: dict[str, int] = {}
        for _, state in self.states.items():
            if state.hold is not None and state.hold.until > now:
                holds[state.hold.limit] = holds.get(state.hold.limit, 0) + 1
        for limit in ratelimit.ALL_LIMITS:
            self.metrics.set_rate_limit_holds(limit, holds.get(limit, 0))
        for action in actions:
            self._handle(action, observed.get(action.desired.secret), now)

    def _handle(self, action: Action, observed: ObservedSecret | None, now: datetime) -> None:
        ref = action.desired.secret
        state = self.states.of(ref)
        info = observed.certificate if observed is not None else None
        if action.kind is ActionKind.NOTHING and info is not None:
            when = self._renewal_moment(action, state, info.serial)
            self.schedule.at(ref, when)
            self.metrics.set_certificate(ref.namespace, ref.name, info.not_after, when, True)
            return
        if action.kind in (ActionKind.REFUSE, ActionKind.CONFLICT):
            if state.reported != action.reason.message:
                state.reported = action.reason.message
                execute(self.deps, action, observed)  # posts the Warning Event
            return
        if action.kind not in (ActionKind.ISSUE, ActionKind.RENEW):
            return
        if info is not None:
            self.metrics.set_certificate(ref.namespace, ref.name, info.not_after, now,
                                         info.not_after > now)
        if state.retry_at is not None and state.retry_at > now:
            self.schedule.at(ref, state.retry_at)
            return
        if state.hold is not None and state.hold.until > now:
            self.schedule.at(ref, state.hold.until)
            return
        if state.foreign_until is not None and state.foreign_until > now:
            return  # refused already; the periodic resync looks again
        if self._stopping.is_set() or not self.elector.is_leader():
            return
        if not self.runner.ca.admit(action, info.not_after if info is not None else None, now):
            return  # its CA is down: the probe wakes the loop when it is back
        self.runner.submit(action)

    @staticmethod
    def _renewal_moment(action: Action, state: CertState, serial: str) -> datetime:
        """A random but stable moment inside the ARI window, else the policy's time."""
        assert action.next_renewal is not None
        window = state.ari
        if window is not None and window.end > window.start:
            spread = (window.end - window.start).total_seconds()
            offset = random.Random(serial).uniform(0, spread)  # stable per certificate
            return max(window.start + timedelta(seconds=offset), action.next_renewal)
        return action.next_renewal
