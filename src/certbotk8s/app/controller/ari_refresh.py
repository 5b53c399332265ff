"""Periodic ARI refresh for the controller: reads each certificate's renewal window.

A certificate is asked at once when it is new (a window read for the certificate it replaced
is never used: its CertID differs), then again after the CA's `Retry-After` clamped to
[1 min, 12 h], or without one every `every` (12 h) or 1/10 of its lifetime, whichever is
shorter (core.renewal.ari_timing), so a moved window is seen well before the floor. An expired
certificate is not asked. A CA that is unreachable
or answers nonsense only loses the window (logged once, counted, the renewal falls back). A
window that asks for a renewal the cap on ARI renewals holds back is reported (log, Warning
Event `AriRenewalCapped`, `certbotk8s_ari_renewals_held_total`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from certbotk8s.app.ari import AriReader, report_ari_held
from certbotk8s.app.controller.cert_state import AriState, StateTable
from certbotk8s.app.controller.watch import Watch
from certbotk8s.app.orders import PassDeps
from certbotk8s.core.model import ObservedSecret, RenewalWindow, SecretRef
from certbotk8s.core.renewal.ari_gate import ari_gate
from certbotk8s.core.renewal.ari_timing import next_read_in, worth_reading
from certbotk8s.core.renewal.moment import renewal_time
from certbotk8s.core.state import secret_meta


class AriRefresher:
    def __init__(self, deps: PassDeps, watch: Watch, states: StateTable,
                 stopping: threading.Event, every: timedelta = timedelta(hours=12),
                 on_error: Callable[[str], None] | None = None,
                 on_held: Callable[[], None] | None = None) -> None:
        self.deps, self.watch, self.states = deps, watch, states
        self._on_held = on_held  # counts an ARI renewal held back (core.renewal.ari_gate)
        self._stopping = stopping
        self._every = every
        self._reader = AriReader(deps.issuers, on_error)
        self._running = threading.Lock()

    def refresh(self, budget: int = 500) -> None:
        if not self._running.acquire(blocking=False):
            return  # the previous run is still reading
        try:
            self._refresh(budget)
        finally:
            self._running.release()

    def _refresh(self, budget: int) -> None:
        done = 0
        down: set[str] = set()  # issuers that gave no answer in this run: asked again next run
        wanted: dict[SecretRef, str] | None = None  # Secret -> issuer its source wants
        for (namespace, name), observed in self.watch.managed():
            if done >= budget or self._stopping.is_set():
                break
            info = observed.certificate
            if info is None or not info.ari_cert_id:
                continue
            ref = SecretRef(namespace, name)
            state = self.states.get(ref)  # a copy: changed only through `set_ari`
            if state is None:
                continue  # not (yet) wanted by a source
            now = time.time()
            if not worth_reading(info, datetime.fromtimestamp(now, UTC)):
                continue
            if state.ari.cert_id == info.ari_cert_id and now < state.ari.next_read:
                continue
            issuer = observed.recorded.get(secret_meta.ISSUER)
            adopting = issuer is None  # not recorded as ours: also learn whether the CA knows it
            if adopting:
                if wanted is None:
                    wanted = {d.secret: d.spec.issuer
                              for d in self.watch.discovery(self.deps.config).desired}
                issuer = wanted.get(ref)
            if not issuer or issuer not in self.deps.config.issuers or issuer in down:
                continue
            answer = self._reader.read(issuer, info.ari_cert_id)
            done += 1
            if answer.unavailable:
                # One failure per issuer and run: a CA or API server that is away must not
                # be asked (and waited for) once per certificate.
                down.add(issuer)
                continue
            window = answer.window
            changed = self.states.set_ari(ref, AriState(
                window, info.ari_cert_id, now,
                now + next_read_in(info, answer.retry_after, self._every).total_seconds()),
                answer.verdict if adopting else None)
            self._report_if_held(ref, observed, window)
            if changed:
                self.watch.wake.set()

    def _report_if_held(self, ref: SecretRef, observed: ObservedSecret,
                        window: RenewalWindow | None) -> None:
        """The CA asks to renew now and core.renewal.ari_gate holds it back: log, Event, metric (the
        plan holds the renewal itself back, in both modes)."""
        info = observed.certificate
        if window is None or info is None:
            return
        decided = renewal_time(info, None, window, secret_meta.parse_moment(observed.recorded),
                               ari_gate(info, observed.recorded))
        if not decided.ari_held(datetime.now(UTC)) or decided.ari_capped is None:
            return
        if self._on_held is not None:
            self._on_held()
        wanted = [d for d in self.watch.discovery(self.deps.config).desired if d.secret == ref]
        if wanted:
            report_ari_held(self.deps.events, wanted[0], decided.ari_capped)
