"""The controller's order runner: one certificate's order, on the work-queue worker that holds
its key (app.controller.work_queue); one order per identical host set in a namespace (a second
Secret that wants it waits for it and gets a copy); the rate-limit budget, reserved in the step
that checks it, and backoff (app.budget, shared with `renew --once`); resumable order URLs and
certificates issued but not yet written (kept in the key's record, app.controller.cert_state)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from certbotk8s.adapters.kube.inflight import InflightOrder
from certbotk8s.app.budget import RenewalBook, Reservation
from certbotk8s.app.controller.cert_state import StateTable, update_hold_gauges
from certbotk8s.app.controller.watch import Watch
from certbotk8s.app.controller.work_queue import KeyedWorkQueue
from certbotk8s.app.health.outage_gate import OutageGate
from certbotk8s.app.inflight import InflightStore
from certbotk8s.app.isolation import InternalError, report_internal
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.orders import (
    OrderHooks,
    Outcome,
    PassDeps,
    annotate_error,
    announce,
    api_away,
    execute,
    observe_stored,
    record_follow_up,
    store,
    write_unwritten,
)
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import (
    DesiredCertificate,
    IssuedCertificate,
    ObservedSecret,
    SecretRef,
)
from certbotk8s.core.ports import LeaderElection
from certbotk8s.core.renewal import lifecycle
from certbotk8s.core.renewal.after_order import Backoff, OrderResult, after_order
from certbotk8s.core.renewal.plan import Action, ActionKind, plan
from certbotk8s.core.sources.ownership import order_share_key
from certbotk8s.core.state import write_race
from certbotk8s.core.state.inflight import NamespaceState
from certbotk8s.core.state.observe import with_record, with_verdict

log = logging.getLogger(__name__)

# Work the API server failed (a certificate issued but not written, HTTP-01 routing not
# published) is tried again this soon, and at once when the API server is back or this replica
# leads again.
API_RETRY = timedelta(seconds=10)
# A namespace found active is not asked about again for this long: a burst of orders in one
# namespace costs one GET, not one per order. One deleted meanwhile only makes the Secret
# write fail (the API server refuses it), as when it is deleted during an order.
ACTIVE_NAMESPACE_TTL = 30.0
# After writing a certificate, its key waits at most this long for the informer cache to show
# the write before it is decided again on a fresh read (app.controller.cert_state).
CACHE_CATCH_UP = 30.0


@dataclass
class OrderJob:
    """One order on its way, and the Secrets of its namespace that want the same certificate:
    they wait for `finished` and copy `outcome`'s certificate, each on its own key's worker."""

    key: tuple[object, ...]
    actions: list[Action] = field(default_factory=list)
    # False when decided again and found not due: the informer's event for the newer Secret
    # wakes the loop then (waking it here would spin while the cache lags).
    wake: bool = True
    finished: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None


class OrderRunner:
    """Runs ISSUE/RENEW actions on the calling worker (the one holding the Secret's key); only
    ever on the leader."""

    def __init__(self, deps: PassDeps, watch: Watch, states: StateTable,
                 queue: KeyedWorkQueue[SecretRef], elector: LeaderElection, metrics: Metrics,
                 inflight: InflightStore, book: RenewalBook, stopping: threading.Event, *,
                 foreign_pause: timedelta, gates: tuple[OutageGate, ...],
                 namespace_state: Callable[[str], NamespaceState] | None = None,
                 on_shared: Callable[[SecretRef], None] = lambda ref: None) -> None:
        self.deps, self.watch, self.states, self.book = deps, watch, states, book
        self.queue, self.elector, self.metrics = queue, elector, metrics
        self.inflight = inflight
        self.gates = gates  # hold orders while their CA or DNS server is down
        self._namespace_state = namespace_state
        self._deleting: dict[str, float] = {}  # namespace -> monotonic time to ask again
        self._active: dict[str, float] = {}  # namespace -> monotonic time to ask again
        self._stopping = stopping
        self._foreign_pause = foreign_pause
        self._on_shared = on_shared  # a Secret waits for another's order (tests)
        self._lock = threading.RLock()  # the namespace caches and the running orders
        self._running: dict[tuple[object, ...], OrderJob] = {}  # by host set and namespace
        self._busy: set[SecretRef] = set()  # Secrets with an order running

    # -- lifecycle ------------------------------------------------------------------------------

    def load_resumable(self) -> int:
        """Read the in-flight orders a previous leader left (on becoming leader)."""
        try:
            loaded = self.inflight.load()
        except CertbotK8sError as e:
            log.warning("cannot read in-flight orders: %s", e)
            return self.states.resumable_count()
        # Orders this process left when it lost the lead stay resumable even if their record
        # could not be written (the API server was away); a recorded one wins (it may be newer).
        self.states.set_resumable(loaded)
        return self.states.resumable_count()

    def busy(self) -> set[SecretRef]:
        """Secrets with an order running here (their in-flight entries stay)."""
        with self._lock:
            return set(self._busy)

    def forget_resumable(self, refs: Iterable[SecretRef]) -> None:
        """In-flight entries the sweep removed: not resumed from memory either."""
        self.states.forget_resumable(refs, self.busy())

    # -- ordering -------------------------------------------------------------------------------

    @staticmethod
    def _order_key(action: Action) -> tuple[object, ...]:
        return order_share_key(action.desired)  # never across namespaces

    def order(self, action: Action) -> None:
        """Order `action`'s certificate now, on this thread (its key's worker); when another
        Secret of its namespace is being ordered the very same certificate, wait for that
        order and copy its certificate instead."""
        ref = action.desired.secret
        key = self._order_key(action)
        with self._lock:
            running = self._running.get(key)
            if running is None:
                job = OrderJob(key, [action])
                self._running[key] = job
            else:
                running.actions.append(action)
            self._busy.add(ref)
        try:
            if running is not None:
                self._on_shared(ref)
                running.finished.wait()
                self._follow(running, action)
                return
            self._run_order(job)
        finally:
            with self._lock:
                self._busy.discard(ref)

    def _run_order(self, job: OrderJob) -> None:
        crashed = False
        self.metrics.orders_in_flight.inc()
        try:
            self._order(job)
        except CertbotK8sError:
            crashed = True
            log.exception("order for %s crashed", job.actions[0].desired.secret)
        except Exception as e:  # a bug, or input no check caught: stays with this certificate
            crashed = True
            self._internal_error(job, e)
        finally:
            with self._lock:
                self._running.pop(job.key, None)
            job.finished.set()  # the Secrets that share it copy the outcome now
            self.metrics.orders_in_flight.dec()
            if not crashed and job.wake:  # a crash (API server away) waits for the next
                self.watch.wake.set()  # event or resync

    def _follow(self, job: OrderJob, action: Action) -> None:
        """`action`'s Secret wanted the certificate `job` ordered: copy it (same namespace
        only), or share the order's failure (its backoff), as if it had been ordered here."""
        outcome, ref = job.outcome, action.desired.secret
        if outcome is None or outcome.outage or outcome.unwritten is not None:
            return  # nothing to copy or count: the next pass decides again
        now = self.deps.clock()
        if outcome.ok and outcome.issued is not None:
            if order_share_key(action.desired) == job.key:  # one tenant's order only
                self._copy_to(action, outcome.issued)
                self.book.succeeded(ref)
            return
        follow = after_order(OrderResult(outcome.ok, outcome.error, outcome.outage, False,
                                         True, can_keep=True))
        if follow.backoff is Backoff.COUNT:
            state = self.book.failed(ref, self._read(ref), now, outcome.message,
                                     action.desired.spec)
            self.metrics.mark_failed(ref.namespace, ref.name, state.failures,
                                     state.next_attempt)
            if state.next_attempt is not None:
                self.queue.add_at(ref, state.next_attempt)

    def _internal_error(self, job: OrderJob, e: Exception) -> None:
        """An order that raised unexpectedly: logged, counted, a Warning Event on its source
        and backoff for its Secrets (else a new CA order at every pass), as app.isolation does
        for the other steps."""
        first = job.actions[0].desired
        error = InternalError(f"internal error while ordering Secret {first.secret} "
                              f"({type(e).__name__}); other certificates are not affected")
        log.error("%s -> Secret %s: %s", first.source, first.secret, error, exc_info=e)
        self.metrics.count_certificate_error()
        if self.elector.is_leader():  # Events come from the leader only
            report_internal(self.deps.events, first, error)
        now = self.deps.clock()
        job.outcome = Outcome(job.actions[0], False, str(error), error=error)  # shared with
        ref = first.secret  # the Secrets that wait for this order: they back off too
        state = self.book.failed(ref, self.watch.observed(ref), now, str(error), first.spec)
        if state.next_attempt is not None:
            self.queue.add_at(ref, state.next_attempt)

    def write_metadata(self, action: Action, observed: ObservedSecret | None) -> None:
        """Persist the chosen moment or repair annotations (on the key's worker, never on the
        pass: an API server that answers slowly must not stall it)."""
        try:
            execute(self.deps, action, observed)
        except Exception:
            log.exception("writing annotations of %s failed", action.desired.secret)

    # -- one order ------------------------------------------------------------------------------

    def _read(self, ref: SecretRef) -> ObservedSecret | None:
        """The Secret as the API server has it now, not as the informer cache last saw it: a
        certificate this controller wrote moments ago may not be in the cache yet. The cache
        stands in when the API server does not answer (the write would tell then)."""
        try:
            stored = self.deps.secrets.read(ref.namespace, ref.name)
        except CertbotK8sError as e:
            log.warning("%s: cannot read the Secret (%s); deciding on the cached copy", ref, e)
            return self.watch.observed(ref)
        seen = with_record(observe_stored(self.deps, stored), self.deps.records.get(ref))
        return with_verdict(seen, self.states.view(ref).ca_verdict)

    def _decided_again(self, action: Action, observed: ObservedSecret | None,
                       now: datetime) -> Action:
        """`action` planned again on the Secret as read just now.

        The reconcile pass decided on the informer cache; right after an order ends, the pass
        it wakes can run before the cache shows the certificate just written, and would order
        the same certificate again (seen: a Secret issued twice a second apart)."""
        ref = action.desired.secret
        window = self.states.view(ref).ari.window
        return plan([action.desired], {ref: observed}, now, {ref: window} if window else {})[0]

    def _order(self, job: OrderJob) -> None:
        if self._stopping.is_set() or not self.elector.is_leader():
            return
        first = job.actions[0]
        ref = first.desired.secret
        now = self.deps.clock()
        # The facts for core.renewal.lifecycle, as they are now (the reconcile pass decided on the
        # informer cache, and the job may have been queued for a while).
        deleting = self._namespace_deleted(ref)
        observed = self._read(ref)
        fresh = self._decided_again(first, observed, now)
        due = fresh.kind in (ActionKind.ISSUE, ActionKind.RENEW)
        if due and len(job.actions) == 1:
            # a waiting host change may renew the names the Secret holds instead (not for an
            # order other Secrets share: they want the new names)
            fresh, hold = self.book.admit(fresh, observed, now, self.states.view(ref).ari.window)
        else:
            hold = self.book.check(fresh if due else first, observed, now)
        facts = lifecycle.OrderFacts(
            ref, failure=self.book.failure_state(ref, observed, now,
                                                 spec=(fresh if due else first).desired.spec),
            hold=hold,
            down=tuple(d for gate in self.gates if (d := gate.down(first)) is not None),
            namespace_deleting=deleting,
            foreign=observed is not None and not observed.managed, due=due,
            unwritten=due and self._unwritten_usable(fresh, now))
        wait = lifecycle.why_wait(facts, now)
        if due:
            first = job.actions[0] = fresh
        reserved = self.book.reserve(first, observed, now) if wait is None else None
        if isinstance(reserved, ratelimit.Hold):  # another worker took the last slot meanwhile
            hold = reserved
            wait = lifecycle.why_wait(replace(facts, hold=hold), now)
        if wait is not None and wait.kind is not lifecycle.WaitKind.NO_LONGER_DUE:
            log.info("%s: no order now: %s", ref, wait)  # why it waits (core.renewal.lifecycle)
        if isinstance(reserved, Reservation):
            with reserved:
                self._place(job, observed, now, reserved)
        elif wait is None:
            return  # (not reached: no wait means a reservation)
        elif wait.kind is lifecycle.WaitKind.UNWRITTEN_PENDING:
            held, left = self.states.pop_unwritten(ref)
            self.metrics.unwritten_certificates.set(left)
            if held is None:  # dropped meanwhile: an order on the next look
                return
            log.info("%s: %s (%s)", ref, first.kind.value.lower(), first.reason)
            written = write_unwritten(self.deps, first, held[0], observed,
                                      lambda: self._current(ref))
            self._settle(job, written, observed, [], now)
        elif wait.kind is lifecycle.WaitKind.FOREIGN_SECRET:
            assert observed is not None
            self._refuse_foreign(first, observed)
        elif wait.kind is lifecycle.WaitKind.RATE_LIMIT:
            assert hold is not None
            self._hold(first, hold, wait, now)
        elif wait.kind is lifecycle.WaitKind.NO_LONGER_DUE:
            log.info("%s: no order: %s (%s)", ref, wait.message, fresh.reason)
            self._drop_unwritten(ref, "the Secret needs no certificate now")
            job.wake = False
        elif wait.kind is lifecycle.WaitKind.NAMESPACE_DELETING:
            job.wake = False  # the source goes with its namespace: nothing to wake for
        # (backoff written since the pass looked; a service down since the job was queued:
        # re-submitted when the probe sees it back)

    def _place(self, job: OrderJob, observed: ObservedSecret | None, now: datetime,
               reservation: Reservation) -> None:
        """Order the certificate of `job` (resuming the order a previous leader left), on
        the budget `reservation` holds."""
        first = job.actions[0]
        ref = first.desired.secret
        log.info("%s: %s (%s)", ref, first.kind.value.lower(), first.reason)
        self.states.set_hold(ref, None)
        resumable = self.states.take_resumable(ref)
        resume_url = (resumable.order_url if resumable is not None
                      and resumable.hosts == first.desired.spec.hosts else None)
        placed: list[str] = [resume_url] if resume_url is not None else []

        def on_order(url: str, sends_replaces: bool) -> None:
            log.info("%s: new order %s (replaces: %s)", ref, url, sends_replaces)
            placed.append(url)
            reservation.placed(self.deps.clock(), sends_replaces)  # now an order in flight
            try:
                self.inflight.record(InflightOrder(ref, url, first.desired.spec.hosts))
            except CertbotK8sError as e:
                log.warning("cannot record order %s for %s: %s", url, ref, e)

        def outage(error: CertbotK8sError) -> bool:  # no backoff: the same order goes on later
            if api_away(error):  # the API server: tried again when it is back
                return True
            return any(gate.failed(first, error) for gate in self.gates)  # the gate holds it

        outcome = execute(self.deps, first, observed,
                          OrderHooks(on_order, resume_url, self.elector.is_leader, outage,
                                     lambda: self._current(ref)))
        self.metrics.challenge(first.desired.spec.challenge.value,
                               "success" if outcome.ok else "failure")
        self._settle(job, outcome, observed, placed, now)

    def _settle(self, job: OrderJob, outcome: Outcome, observed: ObservedSecret | None,
                placed: list[str], now: datetime) -> None:
        """Carry out core.renewal.after_order's follow-up of one order (or one write of a
        certificate issued earlier) for `job`'s own Secret (the others that wait for it follow
        the outcome themselves, `_follow`)."""
        first = job.actions[0]
        ref = first.desired.secret
        job.outcome = outcome
        follow = after_order(OrderResult(outcome.ok, outcome.error, outcome.outage,
                                         outcome.unwritten is not None, bool(placed),
                                         can_keep=True))
        if follow.keep_unwritten:
            assert outcome.unwritten is not None
            self._keep_unwritten(first, outcome.unwritten)  # for when this Secret comes up
            job.wake = False  # no pass at once: it would only meet the same API server
            return
        if outcome.kept is not None:
            self.metrics.newer_certificate_kept.inc()
        elif outcome.ok:  # written over what was read: the cache shows it soon
            self.states.wrote_over(ref, observed.resource_version if observed else "",
                                   time.monotonic() + CACHE_CATCH_UP)
        if follow.clear_inflight:
            self._clear_inflight(ref)
        if follow.resume:
            self.states.keep_resumable(InflightOrder(ref, placed[-1], first.desired.spec.hosts))
        if follow.retry_soon:  # the API server away: tried again soon, and at once when back
            self.queue.add_at(ref, now + API_RETRY)
            job.wake = False
        if outcome.ok:
            for gate in self.gates:
                gate.succeeded(first)
        # Backoff (or cleared), failed authorizations counted.
        record_follow_up(self.deps, self.book, [first], observed, outcome, follow, now)
        if follow.backoff is Backoff.COUNT:
            failure = self.book.failure_state(ref, None, spec=None)
            # Ready False now for a certificate that never arrived, not at the next pass.
            self.metrics.mark_failed(ref.namespace, ref.name, failure.failures,
                                     failure.next_attempt)
            if failure.next_attempt is not None:
                self.queue.add_at(ref, failure.next_attempt)

    def _current(self, ref: SecretRef) -> DesiredCertificate | None:
        """The certificate the sources want for `ref` as the informer cache has them now (they
        may have changed while the order ran); None when none or several claim it."""
        claims = {d.spec: d for d in self.watch.discovery(self.deps.config).desired
                  if d.secret == ref}
        return next(iter(claims.values())) if len(claims) == 1 else None

    def _namespace_deleted(self, ref: SecretRef) -> bool:
        """Whether `ref`'s namespace is being deleted (or gone): the API server would refuse
        the Secret, so an order there would be a certificate nobody can store. A namespace
        stuck Terminating on a finalizer would otherwise get one every backoff. Once seen, the
        namespace is passed over without asking again for `foreign_pause`."""
        if self._namespace_state is None:
            return False
        if self.namespace_deleting(ref.namespace):
            return True
        with self._lock:
            if self._active.get(ref.namespace, 0.0) > time.monotonic():
                return False
        try:
            found = self._namespace_state(ref.namespace)
        except CertbotK8sError as e:
            log.warning("%s: cannot read namespace %s (%s); ordering anyway", ref,
                        ref.namespace, e)
            return False
        if found not in (NamespaceState.TERMINATING, NamespaceState.GONE):
            if found is NamespaceState.ACTIVE:
                with self._lock:
                    self._active[ref.namespace] = time.monotonic() + ACTIVE_NAMESPACE_TTL
            return False
        log.info("%s: namespace %s is being deleted; no order (the API server refuses new "
                 "Secrets there)", ref, ref.namespace)
        with self._lock:
            self._deleting[ref.namespace] = time.monotonic() + self._foreign_pause.total_seconds()
        return True

    def namespace_deleting(self, namespace: str) -> bool:
        """Seen being deleted within the pause: no order is placed there for now."""
        with self._lock:
            until = self._deleting.get(namespace)
            if until is not None and until <= time.monotonic():
                del self._deleting[namespace]  # ask again: it may be gone, or its source
                until = None
        return until is not None

    # -- certificates issued but not written ----------------------------------------------------

    def _keep_unwritten(self, action: Action, issued: IssuedCertificate) -> None:
        ref = action.desired.secret
        self.metrics.unwritten_certificates.set(
            self.states.keep_unwritten(ref, issued, action.desired.spec))
        self.queue.add_at(ref, self.deps.clock() + API_RETRY)
        log.warning("%s: certificate serial %s issued but not written; kept here and written "
                    "without a new order once this replica leads and reaches the API server",
                    ref, issued.info.serial)

    def _unwritten_usable(self, action: Action, now: datetime) -> bool:
        """Whether a certificate kept for this Secret still serves what is desired now (one that
        no longer does is dropped)."""
        ref = action.desired.secret
        held = self.states.unwritten(ref)
        if held is None:
            return False
        issued, ordered_for = held
        why_not = write_race.unwritten_unusable(action.desired, ordered_for, issued.info, now)
        if why_not is not None:
            self._drop_unwritten(ref, why_not)
            return False
        return True

    def _drop_unwritten(self, ref: SecretRef, why: str) -> None:
        held, left = self.states.pop_unwritten(ref)
        self.metrics.unwritten_certificates.set(left)
        if held is not None:
            self._log_dropped(ref, held[0], why)

    @staticmethod
    def _log_dropped(ref: SecretRef, issued: IssuedCertificate, why: str) -> None:
        log.info("%s: dropping certificate serial %s issued earlier and never written: %s",
                 ref, issued.info.serial, why)

    def _hold(self, action: Action, hold: ratelimit.Hold, wait: lifecycle.Wait,
              now: datetime) -> None:
        ref = action.desired.secret
        self.states.set_hold(ref, hold)
        log.warning("%s: order held back: %s; possible at %s", ref, hold.message, hold.until)
        self.metrics.count_rate_limit_hold(hold.limit)
        update_hold_gauges(self.states, self.metrics, now)  # before the Event tells anyone
        self.deps.events.record(action.desired.source, "Warning", wait.kind.value, wait.message)
        annotate_error(self.deps, ref, wait.message, now)  # `certbotk8s status` shows it

    def _copy_to(self, action: Action, issued: IssuedCertificate) -> None:
        ref = action.desired.secret
        observed = self._read(ref)
        if observed is not None and not observed.managed:
            self._refuse_foreign(action, observed)
            return
        try:
            if store(self.deps, action.desired, issued, observed).kept is not None:
                self.metrics.newer_certificate_kept.inc()
                return
            announce(self.deps, action, issued)
        except CertbotK8sError as e:
            log.warning("writing %s failed: %s", ref, e)

    def _refuse_foreign(self, action: Action, observed: ObservedSecret) -> None:
        refusal = Action(ActionKind.REFUSE, action.desired, action.reason)
        ref = action.desired.secret
        self.states.refuse_foreign(ref, self.deps.clock() + self._foreign_pause)
        message = f"Secret {ref} exists and is not managed by certbotk8s"
        if self.states.note_reported(ref, message):
            execute(self.deps, refusal, observed)

    def _clear_inflight(self, ref: SecretRef) -> None:
        try:
            self.inflight.clear(ref)
        except CertbotK8sError as e:
            log.warning("cannot clear in-flight order of %s: %s", ref, e)
