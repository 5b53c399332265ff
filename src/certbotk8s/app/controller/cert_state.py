"""What the controller remembers per certificate (its Secret) between passes: one record per key
of the work queue, in one table behind one lock.

Who changes what: the work queue hands a key to one worker at a time, and that worker makes the
decisions about its certificate (order, hold, refuse, resume, write an unwritten certificate).
Other threads only set facts for the worker to read: the pass (what the sources want), the ARI
refresher (the CA's window), a new leader (orders to resume). Every read and change goes
through the methods here, under the table's lock; `view` gives a copy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from certbotk8s.adapters.kube.inflight import InflightOrder
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.model import (
    CaVerdict,
    CertificateSpec,
    DesiredCertificate,
    IssuedCertificate,
    RenewalWindow,
    SecretRef,
)
from certbotk8s.core.renewal.plan import Action


@dataclass(frozen=True)
class AriState:
    """The CA's renewal window as last read for one certificate (app.controller.ari_refresh)."""

    window: RenewalWindow | None = None  # for the certificate named by `cert_id`
    cert_id: str = ""  # the CertID ARI was last asked for
    fetched: float = 0.0
    next_read: float = 0.0  # when to read ARI again (the CA's Retry-After, core.renewal.ari_timing)


@dataclass
class CertState:
    """One Secret's controller-side state (rebuilt at start; backoff, budget, claims and the
    chosen moment are kept in the certificate records, app.records)."""

    desired: DesiredCertificate | None = None  # what the sources want, as of the last pass
    planned: Action | None = None  # the last pass's plan for it (a key is queued on a change)
    ari: AriState = field(default_factory=AriState)
    reported: str = ""  # last refusal reported, to avoid repeating Events
    written: dict[str, str] = field(default_factory=dict)  # annotations last set (moment, repair)
    hold: ratelimit.Hold | None = None
    foreign_until: datetime | None = None  # a foreign Secret: look again only after this
    # For a certificate with no recorded issuer: does the wanted issuer's CA know it (ARI)?
    ca_verdict: CaVerdict = CaVerdict.UNCHECKED
    resumable: InflightOrder | None = None  # an order a previous leader (or this one) left
    # Issued by the CA, not written (API server unreachable, or the lead lost before the write):
    # written without a new order when this replica leads and reaches the API server again.
    unwritten: tuple[IssuedCertificate, CertificateSpec] | None = None
    # This worker wrote the Secret over this version ("": it did not exist): while the informer
    # cache still shows that version, the key waits for its watch event (no fresh read to find
    # out again that the certificate is there). Not after `stale_until` (monotonic).
    stale_version: str | None = None
    stale_until: float = 0.0


class StateTable:
    """CertState per Secret behind one lock (the pass, the workers, the ARI refresher and the
    leadership take-up share it). Read a state with `view` (a copy), change it here."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._states: dict[SecretRef, CertState] = {}

    def _state(self, ref: SecretRef) -> CertState:
        return self._states.setdefault(ref, CertState())

    # -- reading --------------------------------------------------------------------------------

    def get(self, ref: SecretRef) -> CertState | None:
        """A copy of `ref`'s state, None when it has none."""
        with self.lock:
            state = self._states.get(ref)
            return _copy(state) if state is not None else None

    def view(self, ref: SecretRef) -> CertState:
        """A copy of `ref`'s state as it is now (a blank one when it has none)."""
        return self.get(ref) or CertState()

    def refs(self) -> set[SecretRef]:
        with self.lock:
            return set(self._states)

    def items(self) -> list[tuple[SecretRef, CertState]]:
        """Copies of every state."""
        with self.lock:
            return [(ref, _copy(state)) for ref, state in self._states.items()]

    def windows(self) -> dict[SecretRef, RenewalWindow]:
        with self.lock:
            return {ref: s.ari.window for ref, s in self._states.items()
                    if s.ari.window is not None}

    # -- what the sources want (the pass) -------------------------------------------------------

    def want(self, ref: SecretRef, action: Action) -> bool:
        """The pass planned `action` for `ref` (a source wants it). True when that changed
        anything the worker acts on (the key needs processing)."""
        with self.lock:
            state = self._state(ref)
            changed = (state.planned != action
                       or state.planned.annotations != action.annotations)
            state.desired, state.planned = action.desired, action
            return changed

    def unwant(self, ref: SecretRef) -> None:
        """No source wants `ref` any more; its worker drops the state."""
        with self.lock:
            state = self._states.get(ref)
            if state is not None:
                state.desired = state.planned = None

    def track(self, ref: SecretRef) -> None:
        """`ref` has a state from now on (the ARI refresher asks the CA about the Secrets
        that have one; a Secret dropped by `drop` is asked no more)."""
        with self.lock:
            self._state(ref)

    def drop(self, ref: SecretRef) -> None:
        """Forget `ref` if still no source wants it (its worker, after unwant)."""
        with self.lock:
            state = self._states.get(ref)
            if state is not None and state.desired is None and state.unwritten is None:
                del self._states[ref]

    # -- facts other threads learn --------------------------------------------------------------

    def set_ari(self, ref: SecretRef, ari: AriState, verdict: CaVerdict | None = None) -> bool:
        """The ARI refresher read `ref`'s window (and, adopting, whether the CA knows the
        certificate). True when the window or verdict changed. No-op for an untracked ref."""
        with self.lock:
            state = self._states.get(ref)
            if state is None:
                return False
            changed = ari.window != state.ari.window
            if verdict is not None and verdict is not state.ca_verdict:
                state.ca_verdict, changed = verdict, True
            state.ari = ari
            return changed

    def set_resumable(self, orders: Mapping[SecretRef, InflightOrder]) -> None:
        """Orders a previous leader left (read on taking up leadership): a recorded one wins
        over one this process remembers (it may be newer)."""
        with self.lock:
            for ref, order in orders.items():
                self._state(ref).resumable = order

    def resumable_count(self) -> int:
        with self.lock:
            return sum(1 for s in self._states.values() if s.resumable is not None)

    def forget_resumable(self, refs: Iterable[SecretRef], busy: set[SecretRef]) -> None:
        """In-flight entries the sweep removed: not resumed from memory either (except for
        Secrets with an order running: theirs is current)."""
        with self.lock:
            for ref in refs:
                state = self._states.get(ref)
                if state is not None and ref not in busy:
                    state.resumable = None

    # -- the worker's own decisions -------------------------------------------------------------

    def set_hold(self, ref: SecretRef, hold: ratelimit.Hold | None) -> None:
        with self.lock:
            self._state(ref).hold = hold

    def refuse_foreign(self, ref: SecretRef, until: datetime) -> None:
        """A Secret found not managed: `ref` is looked at again only after `until`."""
        with self.lock:
            self._state(ref).foreign_until = until

    def note_reported(self, ref: SecretRef, message: str) -> bool:
        """Remember `message` as the refusal reported for `ref`: False when it already was (no
        second Event)."""
        with self.lock:
            state = self._state(ref)
            if state.reported == message:
                return False
            state.reported = message
            return True

    def note_written(self, ref: SecretRef, annotations: Mapping[str, str]) -> bool:
        """Remember `annotations` as last set on `ref`: False when they already were (written
        once, until the cache shows them)."""
        with self.lock:
            state = self._state(ref)
            if state.written == dict(annotations):
                return False
            state.written = dict(annotations)
            return True

    def wrote_over(self, ref: SecretRef, version: str, until: float) -> None:
        """This worker replaced `version` of `ref` (see CertState.stale_version)."""
        with self.lock:
            state = self._state(ref)
            state.stale_version, state.stale_until = version, until

    def cache_behind(self, ref: SecretRef, cached: str, now: float) -> float | None:
        """While the cache still shows the version this worker wrote over (`cached`: the
        version it shows, "" none): the seconds left to wait for it. Else None, and the mark
        goes."""
        with self.lock:
            state = self._states.get(ref)
            if state is None or state.stale_version is None:
                return None
            if cached == state.stale_version and now < state.stale_until:
                return state.stale_until - now
            state.stale_version = None
            return None

    def take_resumable(self, ref: SecretRef) -> InflightOrder | None:
        with self.lock:
            state = self._states.get(ref)
            if state is None:
                return None
            order, state.resumable = state.resumable, None
            return order

    def keep_resumable(self, order: InflightOrder) -> None:
        with self.lock:
            self._state(order.secret).resumable = order

    def keep_unwritten(self, ref: SecretRef, issued: IssuedCertificate,
                       spec: CertificateSpec) -> int:
        """Returns how many certificates are kept unwritten now (for the gauge)."""
        with self.lock:
            self._state(ref).unwritten = (issued, spec)
            return self._unwritten_count()

    def unwritten(self, ref: SecretRef) -> tuple[IssuedCertificate, CertificateSpec] | None:
        with self.lock:
            state = self._states.get(ref)
            return state.unwritten if state is not None else None

    def pop_unwritten(self, ref: SecretRef,
                      ) -> tuple[tuple[IssuedCertificate, CertificateSpec] | None, int]:
        """`ref`'s unwritten certificate (removed), and how many are left."""
        with self.lock:
            state = self._states.get(ref)
            held = state.unwritten if state is not None else None
            if state is not None:
                state.unwritten = None
            return held, self._unwritten_count()

    def _unwritten_count(self) -> int:
        return sum(1 for s in self._states.values() if s.unwritten is not None)


def _copy(state: CertState) -> CertState:
    return replace(state, written=dict(state.written))


def update_hold_gauges(states: StateTable, metrics: Metrics, now: datetime) -> None:
    """`certbotk8s_rate_limit_holds{limit}`: Secrets whose order is held back right now."""
    holds: dict[str, int] = {}
    for _, state in states.items():
        hold = state.hold
        if hold is not None and hold.until > now:
            holds[hold.limit] = holds.get(hold.limit, 0) + 1
    for limit in ratelimit.ALL_LIMITS:
        metrics.set_rate_limit_holds(limit, holds.get(limit, 0))
