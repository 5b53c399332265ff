"""What the controller remembers per Secret between reconciles, shared by its parts."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from certbotk8s.app.metrics import Metrics
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.model import RenewalWindow, SecretRef


@dataclass
class CertState:
    """One Secret's controller-side state (rebuilt at start; backoff and budget are kept on the
    cluster by app.budget, the ARI moment on the Secret)."""

    ari: RenewalWindow | None = None  # for the certificate named by its cert_id
    ari_for: str = ""  # the CertID ARI was last asked for
    ari_fetched: float = 0.0
    ari_next: float = 0.0  # when to read ARI again (the CA's Retry-After, core.renewal.ari_timing)
    reported: str = ""  # last refusal reported, to avoid repeating Events
    written: dict[str, str] = field(default_factory=dict)  # annotations last set (moment, repair)
    hold: ratelimit.Hold | None = None
    foreign_until: datetime | None = None  # a foreign Secret: look again only after this


class StateTable:
    """CertState per Secret behind one lock (reconciler, order workers and ARI refresh share it).
    Read a state with `view` (a copy) and change it through the methods here, under the lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._states: dict[SecretRef, CertState] = {}

    def get(self, ref: SecretRef) -> CertState | None:
        with self.lock:
            return self._states.get(ref)

    def track(self, ref: SecretRef) -> None:
        """`ref` is wanted by a source: it has a state from now on (the ARI refresher asks the
        CA about the Secrets that have one; a Secret dropped by `drop` is asked no more)."""
        with self.lock:
            self._states.setdefault(ref, CertState())

    def view(self, ref: SecretRef) -> CertState:
        """A copy of `ref`'s state as it is now (read without racing the writers)."""
        with self.lock:
            state = self._states.get(ref)
            return replace(state, written=dict(state.written)) if state else CertState()

    def set_hold(self, ref: SecretRef, hold: ratelimit.Hold | None) -> None:
        with self.lock:
            self._states.setdefault(ref, CertState()).hold = hold

    def refuse_foreign(self, ref: SecretRef, until: datetime) -> None:
        """A Secret found not managed: `ref` is looked at again only after `until`."""
        with self.lock:
            self._states.setdefault(ref, CertState()).foreign_until = until

    def note_reported(self, ref: SecretRef, message: str) -> bool:
        """Remember `message` as the refusal reported for `ref`: False when it already was (no
        second Event)."""
        with self.lock:
            state = self._states.setdefault(ref, CertState())
            if state.reported == message:
                return False
            state.reported = message
            return True

    def note_written(self, ref: SecretRef, annotations: Mapping[str, str]) -> bool:
        """Remember `annotations` as last set on `ref`: False when they already were (written
        once, until the cache shows them)."""
        with self.lock:
            state = self._states.setdefault(ref, CertState())
            if state.written == dict(annotations):
                return False
            state.written = dict(annotations)
            return True

    def drop(self, ref: SecretRef) -> None:
        with self.lock:
            self._states.pop(ref, None)

    def refs(self) -> set[SecretRef]:
        with self.lock:
            return set(self._states)

    def items(self) -> Iterator[tuple[SecretRef, CertState]]:
        with self.lock:
            return iter(list(self._states.items()))


def update_hold_gauges(states: StateTable, metrics: Metrics, now: datetime) -> None:
    """`certbotk8s_rate_limit_holds{limit}`: Secrets whose order is held back right now."""
    holds: dict[str, int] = {}
    for _, state in states.items():
        hold = state.hold
        if hold is not None and hold.until > now:
            holds[hold.limit] = holds.get(hold.limit, 0) + 1
    for limit in ratelimit.ALL_LIMITS:
        metrics.set_rate_limit_holds(limit, holds.get(limit, 0))
