"""`certbotk8s controller`: watch, reconcile, schedule, lead, serve.

Informers (`Watch`) keep the sources and certbotk8s's own Secrets in memory. Every change wakes
the one reconcile loop here, which waits a short quiet period (bursts become one pass) and runs
the `Reconciler`'s pass (the same pure core as `renew --once`: discover -> plan, over the
caches). The pass queues each certificate's key (its Secret) on the one `KeyedWorkQueue`;
`workers` threads take keys from it, one worker per key at a time, and act for that
certificate (`Reconciler.process`: schedule its renewal as a delayed add of its key, or order it
through the `OrderRunner`, leader only). `AriRefresher` re-reads ARI windows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from certbotk8s.adapters.kube.client import failing_readiness_checks, not_ready_cause
from certbotk8s.adapters.kube.discovery import ServedVersions
from certbotk8s.adapters.kube.namespaces import KubeNamespaces
from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.controller.ari_refresh import AriRefresher
from certbotk8s.app.controller.cert_state import StateTable
from certbotk8s.app.controller.inflight_sweep import sweep_inflight
from certbotk8s.app.controller.order_runner import OrderRunner
from certbotk8s.app.controller.reconciler import Reconciler
from certbotk8s.app.controller.schedule import WakeSchedule
from certbotk8s.app.controller.watch import Watch
from certbotk8s.app.controller.work_queue import KeyedWorkQueue
from certbotk8s.app.health.api_health import ApiHealth, ApiOutage
from certbotk8s.app.health.ca_gate import CaGate
from certbotk8s.app.health.dns_gate import DnsGate
from certbotk8s.app.health.resolver_gate import ResolverGate
from certbotk8s.app.inflight import InflightStore
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.orders import LAST_ERROR, PassDeps
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import Discovery, ObjectRef, ObservedSecret, SecretRef
from certbotk8s.core.ports import LeaderElection

log = logging.getLogger(__name__)

SYNC_WAIT = 60.0  # a new leader sweeps the in-flight record once its caches are synced


class Controller:
    """Wires the parts together and runs the one watch -> reconcile loop."""

    def __init__(
        self,
        deps: PassDeps,
        api: Any,
        elector: LeaderElection,
        metrics: Metrics,
        inflight: InflightStore,
        *,
        on_leading: Callable[[], object] | None = None,
        before_release: Callable[[], object] | None = None,
        workers: int = 16,
        debounce: float = 0.02,
        resync_interval: float = 300.0,
        ari_refresh: timedelta = timedelta(hours=12),
        namespaces: Sequence[str] = (),
        lease: ObjectRef | None = None,
        identity: str = "",
        served: ServedVersions | None = None,
    ) -> None:
        self.deps = deps
        self.elector = elector
        self.metrics = metrics
        self._on_leading = on_leading
        # the leader's last step before it hands the Lease back (orders drained)
        self._before_release = before_release
        self._debounce = debounce
        self._resync = resync_interval
        self._stopping = threading.Event()
        self._lease, self._identity = lease, identity or "this replica"
        self._inflight, self._namespaces = inflight, tuple(namespaces)
        # namespaced mode is granted no `get namespaces` (api_calls.Needed.CLUSTER_MODE)
        self._namespace_reader = KubeNamespaces(api, ask=not namespaces)
        self._lost_leadership: datetime | None = None  # when, if not asked to (cut off)
        self.api_health = ApiHealth(on_back=self._api_back, on_change=metrics.set_api_reachable,
                                    on_expired=metrics.count_watch_expired,
                                    diagnose=lambda: _server_says(api))
        metrics.track_api_unreachable(self.api_health.unreachable_seconds)
        metrics.track_records_unsaved(deps.records.unsaved)
        # namespaces: namespaced mode (Role-only RBAC)
        self.watch = Watch(api, namespaces, health=self.api_health, records=deps.records,
                           served=served,
                           adopt_cert_manager=deps.config.migration.from_cert_manager)
        self.states = StateTable()
        self.schedule = WakeSchedule(self.watch.wake, resync_interval)
        self.queue: KeyedWorkQueue[SecretRef] = KeyedWorkQueue(self.schedule)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self.ca = CaGate(deps.config, deps.events, metrics, self.watch.wake.set)
        self.dns = DnsGate(deps.config, deps.solvers, deps.events, metrics, self.watch.wake.set)
        self.resolver = ResolverGate(deps.config, deps.events, metrics, self.watch.wake.set)
        self.book = RenewalBook(deps.config, deps.records, deps.ledger, write_behind=True)
        self.runner = OrderRunner(deps, self.watch, self.states, self.queue, elector,
                                  metrics, inflight, self.book, self._stopping,
                                  foreign_pause=timedelta(seconds=resync_interval * 0.9),
                                  gates=(self.ca, self.dns, self.resolver),
                                  namespace_state=self._namespace_reader.state)
        # Set once a new leader has read the in-flight orders and history (start-up steps).
        self.leading_ready = threading.Event()
        self.reconciler = Reconciler(deps, self.watch, self.states, self.queue, self.runner,
                                     self.book, elector, metrics, self._stopping,
                                     self.leading_ready)
        self.ari = AriRefresher(deps, self.watch, self.states, self._stopping, ari_refresh,
                                on_error=metrics.count_ari_error,
                                on_held=metrics.count_ari_renewal_held)
        self._loop: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Controller:
        self.watch.start()
        self.schedule.start()
        self.book.load()
        self.deps.records.load()
        # Cheap when nothing is due (a pass over the cache); each certificate is asked every
        # `ari_refresh` or 1/10 of its lifetime, whichever is shorter, and at once when new.
        self.schedule.every("ari", self.ari.refresh, timedelta(seconds=5),
                            first=datetime.now(UTC) + timedelta(seconds=10))
        # ledger records a burst left unwritten (writes are throttled), off the reconcile thread
        # The records and the ledger, written behind (a burst's changes coalesce: one write per
        # shard touched in 5 s; a kill loses at most that much, rebuilt or re-counted later).
        self.schedule.every("ledger", self._flush_memory, timedelta(seconds=5),
                            first=datetime.now(UTC) + timedelta(seconds=5))
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"worker-{n}")
                         for n in range(max(1, self._workers))]
        for thread in self._threads:
            thread.start()
        self._loop = threading.Thread(target=self._reconcile_loop, daemon=True,
                                      name="reconciler")
        self._loop.start()
        return self

    def _work(self) -> None:
        """One worker: a key at a time from the queue, until it shuts down."""
        while (ref := self.queue.get()) is not None:
            try:
                self.reconciler.process(ref)
            except Exception:  # process contains each certificate's trouble; a worker survives
                log.exception("work on %s failed", ref)
            finally:
                self.queue.done(ref)

    def stop(self, grace: float = 25.0) -> None:
        """Stop taking work, let running orders end (bounded), release the Lease."""
        self._stopping.set()
        self.watch.wake.set()
        self.schedule.stop()
        self.ca.stop()
        self.dns.stop()
        self.resolver.stop()
        if not self.queue.shutdown(grace):  # running orders end (bounded), queued keys go
            log.warning("%d certificates still being worked on at shutdown; their order URLs "
                        "stay recorded for the next leader", len(self.queue.processing()))
        self.book.flush(force=True)
        self.deps.records.flush(force=True, final=True)
        if self._before_release is not None and self.elector.is_leader():
            try:
                self._before_release()  # e.g. remove the shared HTTP-01 routing Services
            except CertbotK8sError as e:
                log.warning("leader's last step before stopping failed: %s", e)
        self.watch.stop()
        self.elector.stop(release=True)

    def ready(self) -> bool:
        return self.watch.synced()

    def readiness_detail(self) -> str:
        """Lines for `/readyz`: informers synced, and whether the API server is reachable."""
        synced = "informers: synced" if self.watch.synced() else "informers: not synced yet"
        return f"{synced}\n{self.api_health.describe()}\n"

    def on_started_leading(self, takeover: str = "") -> None:
        if takeover:
            # On the Lease, like client-go's LeaderElection Events: visible while the replica
            # it took over from is still cut off. Off this (the election) thread: a slow API
            # server must not hold up the Lease renewals.
            self._post_lease_event("Normal", "LeaderElection",
                                   f"{self._identity} became the leader: {takeover}")
        # The start-up steps call the API server; on the election thread they would hold up
        # the Lease renewals, so that `is_leader()` could read False when they end and their
        # wake-up be lost (seen right after an API server restart: no order for a minute).
        # Orders wait until they are done (`leading_ready`).
        self.leading_ready.clear()
        threading.Thread(target=self._take_up_leadership, daemon=True,
                         name="take-up-leadership").start()

    def _take_up_leadership(self) -> None:
        try:
            # Its certificate records first (claims, history, ... and the orders in flight).
            records_read = self.deps.records.load()
            resumable = self.runner.load_resumable()
            self.book.load()  # orders the previous leader recorded
            if not records_read:
                raise CertbotK8sError("the certificate records could not be read")
            if resumable:
                log.info("leading: %d interrupted orders to continue", resumable)
        except CertbotK8sError as e:
            log.warning("leadership start-up: cannot read in-flight orders or history: %s", e)
        if self._on_leading is not None:
            try:
                self._on_leading()  # e.g. sweep routing objects a dead leader left behind
            except CertbotK8sError as e:
                log.warning("leadership start-up step failed: %s", e)
        if self.elector.is_leader():
            self.metrics.set_leader(True)
        self.leading_ready.set()
        self.watch.wake.set()
        # Then, off the path of any order: drop what the previous leaders left unresumable.
        if self.watch.wait_synced(SYNC_WAIT):
            self.sweep_inflight()

    def _flush_memory(self) -> None:
        if self.elector.is_leader():  # only the leader writes records and the ledger
            self.book.flush()
            self.deps.records.flush(force=True)

    def restore_records(self) -> None:
        """Write again the certificate records someone deleted (leader only, periodic)."""
        if self.elector.is_leader() and self.leading_ready.is_set():
            self.deps.records.restore_missing()

    def sweep_inflight(self) -> None:
        """Remove in-flight order entries no order will resume (leader only, synced caches:
        app.controller.inflight_sweep). At leadership start and with the periodic token sweep."""
        if (self._stopping.is_set() or not self.elector.is_leader()
                or not self.leading_ready.is_set() or not self.watch.synced()):
            return
        desired = {d.secret: d.spec.hosts for d in self.watch.discovery(self.deps.config).desired}
        try:
            removed = sweep_inflight(self._inflight, self._namespace_reader.state, desired,
                                     self.runner.busy, self._namespaces)
        except CertbotK8sError as e:
            log.warning("in-flight orders: sweep failed: %s", e)
            return
        self.runner.forget_resumable(stale.secret for stale in removed)
        if removed:
            log.info("removed %d in-flight order records no order will resume", len(removed))

    def on_stopped_leading(self) -> None:
        self.leading_ready.clear()
        self.metrics.set_leader(False)
        if not self._stopping.is_set():
            self._lost_leadership = datetime.now(UTC)
            self.metrics.lost_leadership()

    def _api_back(self, outage: ApiOutage) -> None:
        """After an outage: an Event on the Lease that says what happened (none could be
        stored while it lasted). Off the informer thread that noticed the API server back."""
        self.watch.wake.set()  # a pass now: writes left undone while it was away are retried
        lost = self._lost_leadership
        self._lost_leadership = None
        message = (f"{self._identity} could not reach the API server for {outage.seconds:.0f}s "
                   f"({outage.started:%H:%M:%S} to {outage.ended:%H:%M:%S} UTC): {outage.cause}; "
                   "watches resumed (listed again where the API server had moved on)")
        if lost is not None and lost >= outage.started:
            message += (f"; it lost the leader Lease at {lost:%H:%M:%S} and left its orders "
                        "to the next leader")
        self._post_lease_event("Warning", "ApiServerUnreachable", message)

    def _post_lease_event(self, type_: str, reason: str, message: str) -> None:
        """An Event on the controller's Lease, posted on a thread of its own (never raises)."""
        lease = self._lease
        if lease is not None:
            threading.Thread(target=self.deps.events.record, args=(lease, type_, reason, message),
                             daemon=True, name=f"event-{reason}").start()

    def on_resumed_leading(self) -> None:
        # The Lease was never lost, so nothing to reload: orders left during the lapse kept
        # their resume URL (OrderRunner); a pass now submits them again.
        self.watch.wake.set()

    # -- the loop -------------------------------------------------------------------------------

    def _reconcile_loop(self) -> None:
        self.watch.wait_synced()
        wake = self.watch.wake
        took, ended = 0.0, 0.0
        while not self._stopping.is_set():
            wake.wait(timeout=self._resync)
            if self._stopping.is_set():
                break
            # Let a burst of events arrive. A pass costs O(sources); keeping a gap of twice
            # the last pass's cost between passes holds them under a third of the CPU while
            # events pour in (the workers get the rest); after a quiet spell, only `debounce`.
            time.sleep(max(self._debounce, ended + 2 * took - time.monotonic()))
            wake.clear()
            started = time.monotonic()
            try:
                self.reconcile(datetime.now(UTC))
            except Exception:  # the loop must survive anything one pass hits
                log.exception("reconcile failed")
            ended = time.monotonic()
            took = ended - started
            self.metrics.observe_reconcile(took)

    def reconcile(self, now: datetime) -> None:
        self.reconciler.reconcile(now)

    def discovery(self) -> Discovery:
        return self.watch.discovery(self.deps.config)

    def observed(self, ref: SecretRef) -> ObservedSecret | None:
        return self.watch.observed(ref)

    def next_runs(self) -> dict[str, datetime]:
        """Scheduled renewal jobs (for tests and status)."""
        return self.schedule.next_runs()

    def scheduled(self) -> dict[SecretRef, datetime]:
        """When each certificate's key comes back to a worker (its renewal or retry)."""
        return self.queue.scheduled()


__all__ = ["LAST_ERROR", "Controller"]


def _server_says(api: Any) -> str | None:
    """What the API server's own readiness checks name as wrong, if it can tell."""
    checks = failing_readiness_checks(api)
    return not_ready_cause(checks) if checks else None
