"""Leader election over a `coordination.k8s.io/v1` Lease, with client-go's semantics.

A candidate takes the Lease when it is absent, already names us, names no one (released), or
has not changed for `leaseDurationSeconds` as measured on OUR clock from the moment we first saw
its current content (never by comparing the holder's `renewTime` with our wall clock: that
tolerates clock skew between replicas). Every write carries the resourceVersion that was read, so
of two candidates racing for an expired Lease only one can win; the other gets 409 and tries
again next round.

The leader renews every `retry_period`. `is_leader()` turns False as soon as the last successful
renew is `renew_deadline` old, which is shorter than the lease duration others wait for: a
leader that cannot reach the API stops ordering before anyone else may start.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes.client import ApiClient

from certbotk8s.adapters.kube import rest
from certbotk8s.adapters.kube.api_calls import LEADER_LEASE
from certbotk8s.adapters.kube.client import (
    ApiContact,
    JsonDict,
    Op,
    failure_cause,
    micro_time,
    request,
)
from certbotk8s.adapters.kube.rest import KubeRest
from certbotk8s.core.errors import KubeConflict, KubeError

log = logging.getLogger(__name__)

# Spec fields of the election record; a change in any of them restarts the expiry clock.
_RECORD_FIELDS = ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
                  "leaseTransitions")
_ACQUIRE_JITTER = 0.2  # candidates spread their polls by up to 20 % of retry_period

# The controller's Lease in controllerNamespace: the manifests, the chart and the CLI all use this
# name (one installation per namespace; the records and account Secrets are per namespace too).



def _record(obj: JsonDict | None) -> dict[str, object]:
    spec = (obj or {}).get("spec") or {}
    return {key: spec.get(key) for key in _RECORD_FIELDS} if isinstance(spec, dict) else {}


class LeaseElector:
    """Campaigns for one Lease in a daemon thread (see the module docstring for the rules).

    `lease_duration` must exceed `renew_deadline`, which must exceed `retry_period`.
    `on_started_leading` and `on_stopped_leading` are called from the election thread; an
    exception they raise is logged and otherwise ignored. `on_resumed_leading` is called when a
    leader whose renewal came late (so `is_leader()` was False for a while, and work may have
    been refused or left) renews in time again without having lost the Lease. `clock` is a
    monotonic clock in seconds (the Lease's own timestamps use the wall clock, as the API
    expects).
    """

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        name: str = LEADER_LEASE,
        *,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        health: ApiContact | None = None,
        on_resumed_leading: Callable[[], None] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self._rest = KubeRest(api_client)
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._clock = clock
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self.health = health  # settable after construction (the controller makes it)
        self._contact = f"lease {namespace}/{name}"
        self._on_resumed = on_resumed_leading
        self._timeout = (float(renew_deadline), float(renew_deadline))

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._leading_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._release_on_stop = True
        # all below guarded by _lock
        self._leading = False
        self._last_renew: float | None = None  # clock() when the last successful write was sent
        self._observed: dict[str, object] | None = None
        self._observed_at = 0.0
        self._takeover = ""  # how we got the Lease the last time we acquired it
        self._lapsed = False  # leading, but is_leader() turned False since the last callback

    # --- public API ---------------------------------------------------------------------

    def start(self) -> None:
        """Start campaigning in a daemon thread; a no-op while already running."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop campaigning; `is_leader()` is False from now on. With `release`, a Lease we hold
        is handed back (holder cleared) so a successor takes over at its next poll; without,
        successors wait for it to expire. Waits for the thread to finish its current request."""
        self._release_on_stop = release
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * self.renew_deadline + self.retry_period)

    def takeover(self) -> str:
        """How this replica got the Lease last: whom it took over from and why (for Events)."""
        with self._lock:
            return self._takeover

    def is_leader(self) -> bool:
        """True while we hold the Lease and our last successful renew is younger than
        renew_deadline. Never blocks on the network."""
        with self._lock:
            return (self._leading and not self._stop.is_set() and self._last_renew is not None
                    and self._clock() - self._last_renew < self.renew_deadline)

    def wait_for_leadership(self, timeout: float) -> bool:
        """Block up to `timeout` seconds (real time) until we lead; whether we do."""
        end = time.monotonic() + timeout
        while not self.is_leader():
            remaining = end - time.monotonic()
            if remaining <= 0 or self._stop.is_set():
                return False
            self._leading_event.wait(min(remaining, self.retry_period))
        return True

    # --- the election loop --------------------------------------------------------------

    def _run(self) -> None:
        log.info("campaigning for Lease %s/%s as %s", self.namespace, self.name, self.identity)
        try:
            while not self._stop.is_set():
                with self._lock:
                    renewed_before = self._last_renew
                try:
                    won = self._try_acquire_or_renew()
                    if self.health is not None:
                        self.health.reached(self._contact)
                except KubeError as e:
                    log.warning("Lease %s/%s: %s", self.namespace, self.name, e)
                    # e.g. etcd away: the watches still answer. A 403 counts too: the Lease is
                    # in the controller's own namespace, so it is an API server whose
                    # authorizer is not ready yet (right after a restart) or a broken install.
                    if self.health is not None:
                        self.health.failed(self._contact, failure_cause(e))
                    won = False
                except Exception:  # the thread must survive anything the client throws
                    log.exception("Lease %s/%s: unexpected error", self.namespace, self.name)
                    won = False
                self._settle(won, renewed_before)
                with self._lock:
                    leading = self._leading
                pause = self.retry_period
                if not leading:
                    pause *= 1 + random.uniform(0, _ACQUIRE_JITTER)
                self._stop.wait(pause)
        finally:
            self._finish()

    def _settle(self, won: bool, renewed_before: float | None) -> None:
        """Update the leading state after one round and fire the matching callback."""
        started = stopped = resumed = False
        with self._lock:
            now = self._clock()
            if won and not self._leading:
                self._leading = started = True
                self._lapsed = False
                self._leading_event.set()
            elif won:
                # Still ours, but if this round's renewal came later than renew_deadline after
                # the previous one, is_leader() said False meanwhile: orders were left and
                # passes skipped with no loss of the Lease to start them again.
                self._lapsed = (self._lapsed or renewed_before is None
                                or now - renewed_before >= self.renew_deadline)
                last = self._last_renew
                fresh = last is not None and now - last < self.renew_deadline
                if self._lapsed and fresh:
                    self._lapsed = False
                    resumed = True
            elif not won and self._leading:
                taken = (self._observed is not None
                         and self._observed.get("holderIdentity") not in (None, "", self.identity))
                overdue = (self._last_renew is None
                           or self._clock() - self._last_renew >= self.renew_deadline)
                if taken or overdue:
                    self._leading = False
                    stopped = True
                    self._leading_event.clear()
        if started:
            log.info("Lease %s/%s: %s is the leader now", self.namespace, self.name,
                     self.identity)
            self._call(self._on_started)
        if stopped:
            log.warning("Lease %s/%s: %s lost the lease", self.namespace, self.name,
                        self.identity)
            self._call(self._on_stopped)
        if resumed:
            log.info("Lease %s/%s: %s renewed late but still holds it; leading again",
                     self.namespace, self.name, self.identity)
            self._call(self._on_resumed)

    def _finish(self) -> None:
        with self._lock:
            was_leading = self._leading
            self._leading = False
            self._leading_event.clear()
        if self._release_on_stop:
            try:
                self._release()
            except KubeError as e:
                log.warning("Lease %s/%s: release failed: %s", self.namespace, self.name, e)
            except Exception:
                log.exception("Lease %s/%s: release failed", self.namespace, self.name)
        if was_leading:
            log.info("Lease %s/%s: %s stopped leading", self.namespace, self.name, self.identity)
            self._call(self._on_stopped)

    def _call(self, callback: Callable[[], None] | None) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            log.exception("Lease %s/%s: leadership callback failed", self.namespace, self.name)

    # --- one round ----------------------------------------------------------------------

    def _try_acquire_or_renew(self) -> bool:
        """One client-go `tryAcquireOrRenew`: whether we hold the Lease after this round."""
        sent = self._clock()
        now = datetime.now(UTC)
        current = self._get()
        if current is None:
            lease: JsonDict = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, acquired=micro_time(now), transitions=0),
            }
            op = Op("create", "leases", self.namespace, self.name)
            try:
                created = request(op, lambda: self._rest.post(
                    self._path(None), lease, timeout=self._timeout))
            except KubeConflict:
                return False  # another candidate created it first; read it next round
            if created is None:
                raise KubeError(f"{op} failed: namespace {self.namespace} not found")
            self._observe(created, sent, renewed=True)
            with self._lock:
                self._takeover = "created the Lease (no leader before)"
            return True

        record = _record(current)
        with self._lock:
            if record != self._observed:
                self._observed = record
                self._observed_at = self._clock()
            holder = record.get("holderIdentity") or ""
            duration = record.get("leaseDurationSeconds")
            valid_for = (float(duration) if isinstance(duration, int | float)
                         else self.lease_duration)
            expired = self._observed_at + valid_for <= self._clock()
        if holder and holder != self.identity and not expired:
            return False

        ours = holder == self.identity
        transitions = record.get("leaseTransitions")
        previous = transitions if isinstance(transitions, int) else 0
        kept = record.get("acquireTime")
        acquired = kept if ours and isinstance(kept, str) and kept else micro_time(now)
        spec = self._spec(now, acquired=acquired, transitions=previous if ours else previous + 1)
        updated = self._replace(current, spec)
        if updated is None:
            return False
        self._observe(updated, sent, renewed=True)
        with self._lock:
            if not ours:
                self._takeover = (
                    f"took over from {holder}, whose Lease was not renewed for {valid_for:g}s"
                    if holder else "the Lease was free (released by its last holder)")
            elif not self._leading:
                self._takeover = "the Lease still named this replica (no one took it meanwhile)"
        return True

    def _spec(self, now: datetime, acquired: str, transitions: int) -> JsonDict:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": acquired,
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        }

    def _observe(self, obj: JsonDict, sent: float, renewed: bool) -> None:
        with self._lock:
            self._observed = _record(obj)
            self._observed_at = sent
            if renewed:
                self._last_renew = sent

    def _get(self) -> JsonDict | None:
        return request(Op("get", "leases", self.namespace, self.name),
                       lambda: self._rest.get(self._path(self.name), timeout=self._timeout))

    def _path(self, name: str | None) -> str:
        return rest.path("coordination.k8s.io/v1", "leases", self.namespace, name)

    def _replace(self, current: JsonDict, spec: JsonDict) -> JsonDict | None:
        """Write `spec` at the resourceVersion of `current`; None when we lost the race."""
        meta = {k: v for k, v in (current.get("metadata") or {}).items() if k != "managedFields"}
        body: JsonDict = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                          "metadata": meta, "spec": {**(current.get("spec") or {}), **spec}}
        op = Op("update", "leases", self.namespace, self.name)
        try:
            return request(op, lambda: self._rest.put(self._path(self.name), body,
                                                      timeout=self._timeout))
        except KubeConflict:
            log.debug("Lease %s/%s: lost a write race", self.namespace, self.name)
            return None

    def _release(self) -> None:
        """Clear the holder of a Lease that still names us (client-go's ReleaseOnCancel)."""
        current = self._get()
        if current is None or _record(current).get("holderIdentity") != self.identity:
            return
        now = micro_time(datetime.now(UTC))
        spec = {**(current.get("spec") or {}), "holderIdentity": None,
                "leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now}
        if self._replace(current, spec) is not None:
            log.info("Lease %s/%s: released by %s", self.namespace, self.name, self.identity)


def active_holder(api: ApiClient, namespace: str, name: str, now: datetime,
                  slack: float = 5.0) -> str | None:
    """Who holds the Lease, if it was renewed within its duration (+ `slack` s) before `now`.

    For commands that ask a running controller to act (`certbotk8s renew NAMESPACE/SECRET`):
    None when there is no Lease, no holder, or a stale one. Compares the holder's renewTime with
    our wall clock, so clock skew beyond `slack` can misjudge it; the caller falls back to acting
    itself when the controller does not answer in time.
    """
    obj = request(Op("get", "leases", namespace, name),
                  lambda: KubeRest(api).get(rest.path("coordination.k8s.io/v1", "leases",
                                                      namespace, name)))
    spec = _record(obj)
    holder, renewed, duration = (spec.get("holderIdentity"), spec.get("renewTime"),
                                 spec.get("leaseDurationSeconds"))
    if not isinstance(holder, str) or not holder or not isinstance(renewed, str):
        return None
    try:
        at = datetime.fromisoformat(renewed.replace("Z", "+00:00"))
    except ValueError:
        return None
    seconds = duration if isinstance(duration, int) else 15
    age = (now - at).total_seconds()
    return holder if age <= seconds + slack else None
