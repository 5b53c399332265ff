"""`certbotk8s controller`: watch, reconcile, schedule, lead, serve.

Informers keep the sources and certbotk8s's own Secrets (label selector) in memory. Every change
wakes the reconciler, which waits a short quiet period (bursts become one pass), then runs the
same pure core as `renew --once` (discover -> plan) over the caches. Due certificates go to a
bounded pool of workers — only on the leader, one order per certificate, one order per identical
host set — and everything else gets an APScheduler job at its renewal time. Failures back off
1 min, 10 min, 100 min, then daily (jittered).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from certbotk8s.adapters.kube_inflight import InflightOrder, KubeInflightStore
from certbotk8s.adapters.kube_secrets import to_stored_secret
from certbotk8s.adapters.kube_watch import Informer, Key, WatchedResource
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.renewal_pass import (
    LAST_ERROR,
    LAST_ERROR_AT,
    OrderHooks,
    Outcome,
    PassDeps,
    announce,
    execute,
    report_problems,
    store,
)
from certbotk8s.core import ratelimit, secret_meta
from certbotk8s.core.discovery import discover
from certbotk8s.core.errors import AcmeProblemError, CertbotK8sError, ChallengeFailed
from certbotk8s.core.model import (
    Discovery,
    IssuedCertificate,
    ObservedSecret,
    RenewalWindow,
    SecretRef,
    SourceProblem,
)
from certbotk8s.core.observe import observe
from certbotk8s.core.plan import Action, ActionKind, plan
from certbotk8s.core.ports import LeaderElection

log = logging.getLogger(__name__)

BACKOFF = (timedelta(minutes=1), timedelta(minutes=10), timedelta(minutes=100),
           timedelta(days=1))
MANAGED_TLS = WatchedResource(
    "secrets (certbotk8s-managed)", "/api/v1/secrets", "v1", "Secret",
    label_selector=f"{secret_meta.MANAGED_BY_LABEL}={secret_meta.MANAGED_BY_VALUE}",
    field_selector="type=kubernetes.io/tls",
)
SOURCES = {
    "ingresses": [WatchedResource("ingresses.networking.k8s.io",
                                  "/apis/networking.k8s.io/v1/ingresses",
                                  "networking.k8s.io/v1", "Ingress")],
    "istio": [WatchedResource(f"gateways.networking.istio.io/{v}",
                              f"/apis/networking.istio.io/{v}/gateways",
                              f"networking.istio.io/{v}", "Gateway") for v in ("v1", "v1beta1")],
    "gateway_api": [WatchedResource("gateways.gateway.networking.k8s.io",
                                    "/apis/gateway.networking.k8s.io/v1/gateways",
                                    "gateway.networking.k8s.io/v1", "Gateway")],
    "grants": [WatchedResource(f"referencegrants.gateway.networking.k8s.io/{v}",
                               f"/apis/gateway.networking.k8s.io/{v}/referencegrants",
                               f"gateway.networking.k8s.io/{v}", "ReferenceGrant")
               for v in ("v1", "v1beta1")],
}


def observe_json(obj: dict[str, Any]) -> ObservedSecret:
    """Informer transform: keep what policy needs, drop the Secret's data (memory)."""
    return observe(to_stored_secret(obj))


@dataclass
class CertState:
    """What the controller remembers per Secret between reconciles (rebuilt at start)."""

    failures: int = 0
    retry_at: datetime | None = None
    scheduled_at: datetime | None = None
    ari: RenewalWindow | None = None
    ari_fetched: float = 0.0
    reported: str = ""  # last refusal reported, to avoid repeating Events
    hold: ratelimit.Hold | None = None
    foreign_until: datetime | None = None  # a foreign Secret: look again only after this


@dataclass
class OrderJob:
    key: tuple[object, ...]
    actions: list[Action] = field(default_factory=list)


class Controller:
    def __init__(
        self,
        deps: PassDeps,
        api: Any,
        elector: LeaderElection,
        metrics: Metrics,
        inflight: KubeInflightStore,
        *,
        on_leading: Callable[[], object] | None = None,
        workers: int = 16,
        debounce: float = 0.02,
        resync_interval: float = 300.0,
        ari_refresh: timedelta = timedelta(hours=12),
    ) -> None:
        self.deps = deps
        self.elector = elector
        self.metrics = metrics
        self.inflight = inflight
        self._on_leading = on_leading
        self._debounce = debounce
        self._resync = resync_interval
        self._ari_refresh = ari_refresh
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.RLock()
        self._state: dict[SecretRef, CertState] = {}
        self._running: dict[tuple[object, ...], OrderJob] = {}
        self._busy: set[SecretRef] = set()
        self._reported_problems: set[SourceProblem] = set()
        self._resumable: dict[SecretRef, InflightOrder] = {}
        self._orders: list[ratelimit.OrderRecord] = []
        self._failed_authz: list[ratelimit.FailedAuthz] = []
        self._issued: list[ratelimit.IssuanceRecord] = []
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="order")
        self._scheduler = BackgroundScheduler(timezone=UTC)
        def wake(key: Key | None, obj: Any) -> None:
            # Our own temporary HTTP-01 routing objects never change what is wanted.
            labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
            if labels.get("certbotk8s.io/role") != "http01-route":
                self._wake.set()

        self.informers: dict[str, list[Informer]] = {
            name: [Informer(api, r, wake) for r in resources]
            for name, resources in SOURCES.items()
        }
        self.secrets = Informer(api, MANAGED_TLS, lambda key, obj: self._wake.set(),
                                transform=observe_json)
        self._loop: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Controller:
        for informer in self._all_informers():
            informer.start()
        self._scheduler.start()
        self._scheduler.add_job(self._wake.set, "interval", seconds=self._resync, id="resync")
        self._scheduler.add_job(self._refresh_ari, "interval", minutes=10, id="ari",
                                next_run_time=datetime.now(UTC) + timedelta(seconds=30))
        self._loop = threading.Thread(target=self._reconcile_loop, daemon=True,
                                      name="reconciler")
        self._loop.start()
        return self

    def stop(self, grace: float = 25.0) -> None:
        """Stop taking work, let running orders end (bounded), release the Lease."""
        self._stopping.set()
        self._wake.set()
        self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + grace
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._running:
            log.warning("%d orders still running at shutdown; their order URLs stay recorded "
                        "for the next leader", len(self._running))
        self._pool.shutdown(wait=False, cancel_futures=True)
        for informer in self._all_informers():
            informer.stop()
        self.elector.stop(release=True)

    def _all_informers(self) -> list[Informer]:
        return [i for group in self.informers.values() for i in group] + [self.secrets]

    def ready(self) -> bool:
        return all(i.synced.is_set() for i in self._all_informers())

    def on_started_leading(self) -> None:
        try:
            self._resumable = self.inflight.load()
        except CertbotK8sError as e:
            log.warning("cannot read in-flight orders: %s", e)
        if self._on_leading is not None:
            try:
                self._on_leading()  # e.g. sweep routing objects a dead leader left behind
            except CertbotK8sError as e:
                log.warning("leadership start-up step failed: %s", e)
        if self._resumable:
            log.info("leading: %d interrupted orders to continue", len(self._resumable))
        self.metrics.set_leader(True)
        self._wake.set()

    def on_stopped_leading(self) -> None:
        self.metrics.set_leader(False)

    # -- reconcile ------------------------------------------------------------------------------

    def _reconcile_loop(self) -> None:
        for informer in self._all_informers():
            informer.synced.wait()
        took, ended = 0.0, 0.0
        while not self._stopping.is_set():
            self._wake.wait(timeout=self._resync)
            if self._stopping.is_set():
                break
            # Let a burst of events arrive. A pass costs O(sources); keeping a gap of twice
            # the last pass's cost between passes holds them under a third of the CPU while
            # events pour in (the workers get the rest); after a quiet spell, only `debounce`.
            time.sleep(max(self._debounce, ended + 2 * took - time.monotonic()))
            self._wake.clear()
            started = time.monotonic()
            try:
                self.reconcile(datetime.now(UTC))
            except Exception:  # the loop must survive anything one pass hits
                log.exception("reconcile failed")
            ended = time.monotonic()
            took = ended - started
            self.metrics.observe_reconcile(took)

    def _sources(self, group: str) -> list[Any]:
        for informer in self.informers[group]:
            if not informer.missing:
                return list(informer.cache.values())
        return []

    def discovery(self) -> Discovery:
        return discover(self._sources("ingresses"), self._sources("istio"),
                        self._sources("gateway_api"), self._sources("grants"),
                        self.deps.config)

    def observed(self, ref: SecretRef) -> ObservedSecret | None:
        value: ObservedSecret | None = self.secrets.cache.get((ref.namespace, ref.name))
        return value

    def reconcile(self, now: datetime) -> None:
        found = self.discovery()
        fresh = set(found.problems) - self._reported_problems
        if fresh:
            report_problems(self.deps, Discovery(problems=tuple(sorted(
                fresh, key=lambda p: (p.source, p.reason)))))
        self._reported_problems = set(found.problems)
        observed = {d.secret: self.observed(d.secret) for d in found.desired}
        # What this installation issued in the last 7 days, for the rate-limit budget: built
        # once per pass (not per order: that is O(managed certificates)).
        issued = [record for seen in list(self.secrets.cache.values())
                  for record in secret_meta.issuance_records(seen.annotations, now)]
        with self._lock:
            self._issued = issued
        with self._lock:
            ari = {ref: s.ari for ref, s in self._state.items() if s.ari is not None}
        actions = plan(found.desired, observed, now, ari)
        wanted = {a.desired.secret for a in actions}
        with self._lock:
            for ref in set(self._state) - wanted:
                # Source gone: the Secret stays (documented), its schedule goes.
                self._unschedule(ref)
                self.metrics.remove_certificate(ref.namespace, ref.name)
                del self._state[ref]
        self.metrics.set_managed_certificates(len(self.secrets.cache))
        with self._lock:
            holds: dict[str, int] = {}
            for state in self._state.values():
                if state.hold is not None and state.hold.until > now:
                    holds[state.hold.limit] = holds.get(state.hold.limit, 0) + 1
        for limit in ratelimit.ALL_LIMITS:
            self.metrics.set_rate_limit_holds(limit, holds.get(limit, 0))
        for action in actions:
            self._handle(action, observed.get(action.desired.secret), now)

    def _handle(self, action: Action, observed: ObservedSecret | None, now: datetime) -> None:
        ref = action.desired.secret
        with self._lock:
            state = self._state.setdefault(ref, CertState())
        info = observed.certificate if observed is not None else None
        if action.kind is ActionKind.NOTHING and info is not None:
            when = self._renewal_moment(ref, action, state, info.serial)
            self._schedule(ref, when, state)
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
            self._schedule(ref, state.retry_at, state)
            return
        if state.hold is not None and state.hold.until > now:
            self._schedule(ref, state.hold.until, state)
            return
        if state.foreign_until is not None and state.foreign_until > now:
            return  # refused already; the periodic resync looks again
        if self._stopping.is_set() or not self.elector.is_leader():
            return
        self._submit(action)

    def _renewal_moment(self, ref: SecretRef, action: Action, state: CertState,
                        serial: str) -> datetime:
        """A random but stable moment inside the ARI window, else the policy's time."""
        assert action.next_renewal is not None
        window = state.ari
        if window is not None and window.end > window.start:
            spread = (window.end - window.start).total_seconds()
            offset = random.Random(serial).uniform(0, spread)  # stable per certificate
            return max(window.start + timedelta(seconds=offset), action.next_renewal)
        return action.next_renewal

    # -- scheduling -----------------------------------------------------------------------------

    def _schedule(self, ref: SecretRef, when: datetime, state: CertState) -> None:
        if state.scheduled_at == when or self._stopping.is_set():
            return
        state.scheduled_at = when
        self._scheduler.add_job(self._wake.set, "date", run_date=when, id=f"renew:{ref}",
                                replace_existing=True, misfire_grace_time=None)

    def _unschedule(self, ref: SecretRef) -> None:
        job = self._scheduler.get_job(f"renew:{ref}")
        if job is not None:
            job.remove()

    def next_runs(self) -> dict[str, datetime]:
        """Scheduled renewal jobs (for tests and status)."""
        return {job.id: job.next_run_time for job in self._scheduler.get_jobs()
                if job.id.startswith("renew:")}

    # -- orders ---------------------------------------------------------------------------------

    @staticmethod
    def _order_key(action: Action) -> tuple[object, ...]:
        s = action.desired.spec
        return (s.issuer, s.hosts, s.key_type, s.profile, s.challenge, s.dns_provider)

    def _submit(self, action: Action) -> None:
        ref = action.desired.secret
        key = self._order_key(action)
        with self._lock:
            if ref in self._busy:
                return
            job = self._running.get(key)
            if job is not None:  # the same host set is already being ordered: share it
                job.actions.append(action)
                self._busy.add(ref)
                return
            job = OrderJob(key, [action])
            self._running[key] = job
            self._busy.add(ref)
        self.metrics.orders_in_flight.inc()
        self._pool.submit(self._run_order, job)

    def _run_order(self, job: OrderJob) -> None:
        try:
            self._order(job)
        except Exception:
            log.exception("order for %s crashed", job.actions[0].desired.secret)
        finally:
            with self._lock:
                self._running.pop(job.key, None)
                for action in job.actions:
                    self._busy.discard(action.desired.secret)
            self.metrics.orders_in_flight.dec()
            self._wake.set()

    def _budget(self, action: Action, now: datetime) -> ratelimit.Hold | None:
        with self._lock:
            issued = list(self._issued)
            cutoff = now - timedelta(hours=3)
            self._orders = [o for o in self._orders if o.at > cutoff]
            self._failed_authz = [f for f in self._failed_authz
                                  if f.at > now - timedelta(hours=1)]
            orders, failures = list(self._orders), list(self._failed_authz)
        limits = self.deps.config.issuers[action.desired.spec.issuer].rate_limits
        return ratelimit.check_budget(
            action.desired.spec.hosts, now, issued, orders, failures,
            ari_renewal=action.kind is ActionKind.RENEW, limits=limits)

    def _order(self, job: OrderJob) -> None:
        if self._stopping.is_set() or not self.elector.is_leader():
            return
        first = job.actions[0]
        ref = first.desired.secret
        now = datetime.now(UTC)
        observed = self.observed(ref)
        if observed is None:
            stored = self.deps.secrets.read(ref.namespace, ref.name)
            if stored is not None:
                observed = observe(stored)
        if observed is not None and not observed.managed:
            self._refuse_foreign(first, observed)
            return
        hold = self._budget(first, now)
        state = self._state.setdefault(ref, CertState())
        if hold is not None:
            state.hold = hold
            log.warning("%s: order held back: %s; possible at %s", ref, hold.message, hold.until)
            self.metrics.count_rate_limit_hold(hold.limit)
            message = f"rate-limit hold: {hold.message}; ordering possible at {hold.until}"
            self.deps.events.record(first.desired.source, "Warning", "RateLimitHold", message)
            if observed is not None and observed.managed:  # so `certbotk8s status` shows it
                try:
                    self.deps.secrets.set_annotations(ref.namespace, ref.name, {
                        LAST_ERROR: message,
                        LAST_ERROR_AT: secret_meta.format_time(now)})
                except CertbotK8sError as e:
                    log.warning("cannot annotate %s: %s", ref, e)
            return
        state.hold = None
        resumable = self._resumable.pop(ref, None)
        resume_url = (resumable.order_url if resumable is not None
                      and resumable.hosts == first.desired.spec.hosts else None)

        def on_order(url: str) -> None:
            with self._lock:
                self._orders.append(ratelimit.OrderRecord(datetime.now(UTC)))
            try:
                self.inflight.record(InflightOrder(ref, url, first.desired.spec.hosts))
            except CertbotK8sError as e:
                log.warning("cannot record order %s for %s: %s", url, ref, e)

        outcome = execute(self.deps, first, observed, OrderHooks(on_order, resume_url))
        self.metrics.challenge(first.desired.spec.challenge.value,
                               "success" if outcome.ok else "failure")
        if not outcome.ok:
            self._failed(first, state, now, outcome)
            return
        self._clear_inflight(ref)
        state.failures, state.retry_at = 0, None
        assert outcome.issued is not None
        for other in job.actions[1:]:  # other Secrets that wanted the very same certificate
            self._copy_to(other, outcome.issued)

    def _copy_to(self, action: Action, issued: IssuedCertificate) -> None:
        ref = action.desired.secret
        observed = self.observed(ref)
        if observed is None:
            stored = self.deps.secrets.read(ref.namespace, ref.name)
            observed = observe(stored) if stored is not None else None
        if observed is not None and not observed.managed:
            self._refuse_foreign(action, observed)
            return
        try:
            store(self.deps, action.desired, issued, observed)
            announce(self.deps, action, issued)
        except CertbotK8sError as e:
            log.warning("writing %s failed: %s", ref, e)

    def _refuse_foreign(self, action: Action, observed: ObservedSecret) -> None:
        refusal = Action(ActionKind.REFUSE, action.desired, action.reason)
        state = self._state.setdefault(action.desired.secret, CertState())
        state.foreign_until = datetime.now(UTC) + timedelta(seconds=self._resync * 0.9)
        message = f"Secret {action.desired.secret} exists and is not managed by certbotk8s"
        if state.reported != message:
            state.reported = message
            execute(self.deps, refusal, observed)

    def _failed(self, action: Action, state: CertState, now: datetime, outcome: Outcome) -> None:
        step = BACKOFF[min(state.failures, len(BACKOFF) - 1)]
        state.failures += 1
        state.retry_at = now + step * random.uniform(0.9, 1.1)
        with self._lock:
            for host in action.desired.spec.hosts:
                self._failed_authz.append(ratelimit.FailedAuthz(host, now))
        log.warning("%s: attempt %d failed, next try at %s: %s", action.desired.secret,
                    state.failures, state.retry_at, outcome.message)
        if isinstance(outcome.error, ChallengeFailed | AcmeProblemError):
            self._clear_inflight(action.desired.secret)  # that order is dead: do not resume it
        self._schedule(action.desired.secret, state.retry_at, state)

    def _clear_inflight(self, ref: SecretRef) -> None:
        try:
            self.inflight.clear(ref)
        except CertbotK8sError as e:
            log.warning("cannot clear in-flight order of %s: %s", ref, e)

    # -- ARI ------------------------------------------------------------------------------------

    def _refresh_ari(self, budget: int = 500) -> None:
        """Re-read ARI for certificates not asked for `ari_refresh` (twice a day)."""
        now = time.time()
        done = 0
        for (namespace, name), observed in list(self.secrets.cache.items()):
            if done >= budget or self._stopping.is_set():
                break
            if observed.certificate is None or not observed.certificate.ari_cert_id:
                continue
            ref = SecretRef(namespace, name)
            with self._lock:
                state = self._state.get(ref)
            if state is None or now - state.ari_fetched < self._ari_refresh.total_seconds():
                continue
            issuer = observed.annotations.get(secret_meta.ISSUER)
            if not issuer or issuer not in self.deps.config.issuers:
                continue
            try:
                window = self.deps.issuers.engine(issuer).renewal_info_for_id(
                    observed.certificate.ari_cert_id)
            except CertbotK8sError as e:
                log.info("ARI for %s unavailable: %s", ref, e)
                window = None
            state.ari, state.ari_fetched = window, now
            done += 1
        if done:
            self._wake.set()


__all__ = ["LAST_ERROR", "Controller"]
