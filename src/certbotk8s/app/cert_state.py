"""What the controller remembers per Secret between reconciles, shared by its parts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from certbotk8s.app.metrics import Metrics
from certbotk8s.core import ratelimit
from certbotk8s.core.model import RenewalWindow, SecretRef


@dataclass
class CertState:
    """One Secret's controller-side state (rebuilt at start; backoff and budget are kept on the
    cluster by app.budget, the ARI moment on the Secret)."""

    ari: RenewalWindow | None = None  # for the certificate named by its cert_id
    ari_for: str = ""  # the CertID ARI was last asked for
    ari_fetched: float = 0.0
    ari_next: float = 0.0  # when to read ARI again (the CA's Retry-After, core.ari_timing)
    reported: str = ""  # last refusal reported, to avoid repeating Events
    written: dict[str, str] = field(default_factory=dict)  # annotations last set (moment, repair)
    hold: ratelimit.Hold | None = None
    foreign_until: datetime | None = None  # a foreign Secret: look again only after this


class StateTable:
    """CertState per Secret behind one lock (reconciler, order workers and ARI refresh share it)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._states: dict[SecretRef, CertState] = {}

    def get(self, ref: SecretRef) -> CertState | None:
        with self.lock:
            return self._states.get(ref)

    def of(self, ref: SecretRef) -> CertState:
        """The state of `ref`, created empty when there is none."""
        with self.lock:
            return self._states.setdefault(ref, CertState())

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
        if state.hold is not None and state.hold.until > now:
            holds[state.hold.limit] = holds.get(state.hold.limit, 0) + 1
    for limit in ratelimit.ALL_LIMITS:
        metrics.set_rate_limit_holds(limit, holds.get(limit, 0))
