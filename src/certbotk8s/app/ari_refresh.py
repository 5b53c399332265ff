"""Periodic ARI refresh for the controller: re-reads each certificate's renewal window."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from certbotk8s.app.cert_state import StateTable
from certbotk8s.app.renewal_pass import PassDeps
from certbotk8s.app.watch import Watch
from certbotk8s.core import secret_meta
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.model import SecretRef

log = logging.getLogger(__name__)


class AriRefresher:
    """Asks the CA for the window of certificates not asked for `every` (twice a day)."""

    def __init__(self, deps: PassDeps, watch: Watch, states: StateTable,
                 stopping: threading.Event, every: timedelta = timedelta(hours=12)) -> None:
        self.deps, self.watch, self.states = deps, watch, states
        self._stopping = stopping
        self._every = every

    def refresh(self, budget: int = 500) -> None:
        now = time.time()
        done = 0
        for (namespace, name), observed in self.watch.managed():
            if done >= budget or self._stopping.is_set():
                break
            if observed.certificate is None or not observed.certificate.ari_cert_id:
                continue
            ref = SecretRef(namespace, name)
            state = self.states.get(ref)
            if state is None or now - state.ari_fetched < self._every.total_seconds():
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
            self.watch.wake.set()
