"""The controller's two kinds of work over the informer caches.

- `reconcile(now)`, the pass (one thread): discover -> plan over every source, which is what
  host ownership needs (claims span namespaces). It reports source problems, keeps the records'
  claims tidy and publishes the metrics, and queues the key (Secret) of each certificate whose
  plan changed, that is due or refused or has a display copy to write, or that no source
  wants any more.
- `process(ref)`, one key on a worker of the work queue (never two workers on one key): plan
  that certificate again at this moment and act: schedule its next renewal (a delayed add of
  its key), write the chosen moment, report a refusal, or order it (OrderRunner) when
  core.renewal.lifecycle says nothing holds it back. Any exception stays with that key.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from functools import partial

from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.controller.cert_state import StateTable, update_hold_gauges
from certbotk8s.app.controller.order_runner import OrderRunner
from certbotk8s.app.controller.watch import Watch
from certbotk8s.app.controller.work_queue import KeyedWorkQueue
from certbotk8s.app.isolation import InternalError, contained, report_internal
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.orders import PassDeps, execute, report_problems, tidy_records
from certbotk8s.core.model import (
    DesiredCertificate,
    Discovery,
    ObservedSecret,
    SecretRef,
    SourceProblem,
)
from certbotk8s.core.ports import LeaderElection
from certbotk8s.core.renewal import lifecycle
from certbotk8s.core.renewal.plan import Action, ActionKind, plan
from certbotk8s.core.renewal.readiness import certificate_rows
from certbotk8s.core.state.observe import with_verdict


class Reconciler:
    def __init__(self, deps: PassDeps, watch: Watch, states: StateTable,
                 queue: KeyedWorkQueue[SecretRef], runner: OrderRunner, book: RenewalBook,
                 elector: LeaderElection, metrics: Metrics, stopping: threading.Event,
                 leading_ready: threading.Event | None = None) -> None:
        self.deps, self.watch, self.states, self.book = deps, watch, states, book
        self.queue, self.runner = queue, runner
        self.elector, self.metrics = elector, metrics
        self._stopping = stopping
        self._ready = leading_ready  # None: leading needs no start-up steps
        self._reported_problems: set[SourceProblem] = set()

    # -- the pass -------------------------------------------------------------------------------

    def reconcile(self, now: datetime) -> None:
        found = self.watch.discovery(self.deps.config)
        if self.elector.is_leader():  # Events come from the leader only, not every replica
            fresh = set(found.problems) - self._reported_problems
            fresh_notices = set(found.notices) - self._reported_problems
            if fresh or fresh_notices:
                report_problems(self.deps, Discovery(
                    problems=tuple(sorted(fresh, key=lambda p: (p.source, p.reason))),
                    notices=tuple(sorted(fresh_notices, key=lambda p: (p.source, p.reason)))))
            self._reported_problems = set(found.problems) | set(found.notices)
        observed = {d.secret: self._observed(d.secret) for d in found.desired}
        # What this installation issued in the last 7 days, for the rate-limit budget: read
        # once per pass (not per order: that is O(managed certificates)).
        self.book.set_issued(self.deps.records.snapshot(), now)
        actions = plan(found.desired, observed, now, self.states.windows())
        wanted = {a.desired.secret for a in actions}
        if self._leading():  # claims whose source went away start their grace period
            tidy_records(self.deps, wanted, now, self.watch.namespaces)
        for ref in self.states.refs() - wanted:
            # Source gone: the Secret stays (documented); its worker drops its schedule.
            self.states.unwant(ref)
            self.queue.add(ref)
        for action in actions:
            changed = self.states.want(action.desired.secret, action)
            # A settled certificate is left alone until its plan changes or its timer fires;
            # what may need the leader (an order, a refusal's Event, a display copy to write)
            # is looked at in every pass (its worker skips what it already did).
            settled = action.kind in (ActionKind.NOTHING, ActionKind.REPAIR)
            if changed or not settled or action.annotations:
                self.queue.add(action.desired.secret)
        self.metrics.set_managed_certificates(len(self.watch.secrets.cache))
        update_hold_gauges(self.states, self.metrics, now)
        failures = {a.desired.secret: self.book.failure_state(
            a.desired.secret, observed.get(a.desired.secret), spec=a.desired.spec).failures
            for a in actions}
        self.metrics.publish_certificates(certificate_rows(
            actions, observed, found.problems, failures, now, self.queue.scheduled()))

    def _observed(self, ref: SecretRef) -> ObservedSecret | None:
        return with_verdict(self.watch.observed(ref), self.states.view(ref).ca_verdict)

    def _leading(self) -> bool:
        """Leading and done with the start-up steps (records and in-flight orders read)."""
        return (not self._stopping.is_set() and self.elector.is_leader()
                and (self._ready is None or self._ready.is_set()))

    # -- one key --------------------------------------------------------------------------------

    def process(self, ref: SecretRef) -> None:
        """The work queue's handler for `ref` (called with the key held: no other worker
        handles this certificate meanwhile)."""
        state = self.states.get(ref)
        desired = state.desired if state is not None else None
        if desired is None:  # no source wants it (any more): the Secret stays, its timer goes
            self.queue.forget(ref)
            self.states.drop(ref)
            return
        contained(desired, "handling", partial(self._process, desired),
                  partial(self._failed, desired))

    def _process(self, desired: DesiredCertificate) -> None:
        now = self.deps.clock()
        ref = desired.secret
        observed = self._observed(ref)
        behind = self.states.cache_behind(ref, observed.resource_version if observed else "",
                                          time.monotonic())
        if behind is not None:  # this worker just wrote it: the watch event queues it again
            self.queue.add_after(ref, timedelta(seconds=behind))  # (or, at worst, this)
            return
        window = self.states.view(ref).ari.window
        (action,) = plan([desired], {ref: observed}, now, {ref: window} if window else {})
        self._handle(action, observed, now)

    def _failed(self, desired: DesiredCertificate, error: InternalError) -> None:
        self.metrics.count_certificate_error()
        if self.elector.is_leader():  # Events come from the leader only
            report_internal(self.deps.events, desired, error)

    def _handle(self, action: Action, observed: ObservedSecret | None, now: datetime) -> None:
        ref = action.desired.secret
        info = observed.certificate if observed is not None else None
        leading = self._leading()
        if action.kind in (ActionKind.NOTHING, ActionKind.REPAIR) and info is not None:
            assert action.next_renewal is not None
            # The key comes back at the renewal moment itself (ARI moment, renew-before,
            # lifetime fraction or floor), and the policy treats that moment, not the window
            # start, as due.
            self.queue.add_at(ref, action.next_renewal)
            if leading and action.annotations and self.states.note_written(
                    ref, action.annotations):  # once, until the cache shows it
                self.runner.write_metadata(action, observed)  # the moment / repaired metadata
            return
        if action.kind in (ActionKind.REFUSE, ActionKind.CONFLICT):
            if self.elector.is_leader() and self.states.note_reported(ref,
                                                                     action.reason.message):
                execute(self.deps, action, observed)  # posts the Warning Event
            return
        if action.kind not in (ActionKind.ISSUE, ActionKind.RENEW):
            return
        state = self.states.view(ref)
        found = lifecycle.waits(lifecycle.OrderFacts(
            ref, failure=self.book.failure_state(ref, observed, now, spec=action.desired.spec),
            hold=state.hold,
            down=tuple(d for gate in self.runner.gates if (d := gate.down(action)) is not None),
            leading=leading, namespace_deleting=self.runner.namespace_deleting(ref.namespace),
            foreign_until=state.foreign_until), now)
        wake = lifecycle.wake_at(found)
        if wake is not None:  # backoff or a rate-limit hold: look again when it ends
            self.queue.add_at(ref, wake)
        if not found:
            self.runner.order(action)  # here, on this key's worker
        elif found[0].kind in (lifecycle.WaitKind.CA_DOWN, lifecycle.WaitKind.DNS_DOWN):
            # Its CA or DNS server is down: the gate records it waiting and tells its source
            # once; the probe wakes the loop when the service is back.
            not_after = info.not_after if info is not None else None
            for gate in self.runner.gates:
                if not gate.admit(action, not_after, now):
                    break
        # (others: a namespace being deleted is asked about again after a pause, a foreign
        # Secret at the periodic resync, a non-leader orders nothing)
