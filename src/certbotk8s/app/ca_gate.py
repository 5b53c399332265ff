"""The controller's side of CA health: hold orders while their CA is down, say why, resume.

`admit` is asked before an order is submitted: while the issuer's CA is down the certificate
waits (its current certificate keeps serving), a Warning Event `CaUnavailable` on its source
names the cause once, and the probe is told how soon this certificate needs the CA (a tenth of
its remaining life, so no Retry-After outlasts it). `failed` turns an order that met the CA
down into that state instead of a backoff; when the probe sees the CA again, `wake` runs and
every waiting certificate is submitted at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from certbotk8s.adapters.acme_network import probe_directory
from certbotk8s.app.ca_health import CaHealth
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.config import Config
from certbotk8s.core.errors import AcmeCaUnavailable, CertbotK8sError
from certbotk8s.core.model import SecretRef
from certbotk8s.core.plan import Action
from certbotk8s.core.ports import EventRecorder

log = logging.getLogger(__name__)

URGENCY_FRACTION = 0.1  # probe by a tenth of the remaining life, whatever Retry-After says


class CaGate:
    def __init__(self, config: Config, events: EventRecorder, metrics: Metrics,
                 wake: Callable[[], None], *, health: CaHealth | None = None) -> None:
        self._config = config
        self._events = events
        self._metrics = metrics
        self._wake = wake
        self._lock = threading.Lock()
        self._waiting: dict[str, set[SecretRef]] = {}
        self.health = health or CaHealth(self._probe, self._back, on_state=self._state)

    def _probe(self, issuer: str) -> str | None:
        settings = self._config.issuers.get(issuer)
        if settings is None:
            return None  # issuer gone from the config: nothing to wait for
        return probe_directory(settings.directory, settings.ca_bundle or True)

    def _state(self, issuer: str, up: bool) -> None:
        with self._lock:
            waiting = len(self._waiting.get(issuer, ()))
        self._metrics.set_ca_up(issuer, up, 0 if up else waiting)

    def _back(self, issuer: str) -> None:
        with self._lock:
            self._waiting.pop(issuer, None)
        self._wake()

    def admit(self, action: Action, not_after: datetime | None, now: datetime) -> bool:
        """True when the order may go; False while its CA is down (recorded and reported)."""
        issuer = action.desired.spec.issuer
        reason = self.health.down(issuer)
        if reason is None:
            return True
        remaining = (not_after - now).total_seconds() if not_after is not None else 0.0
        self.health.need_by(issuer, max(0.0, remaining) * URGENCY_FRACTION)
        ref = action.desired.secret
        with self._lock:
            waiting = self._waiting.setdefault(issuer, set())
            fresh = ref not in waiting
            waiting.add(ref)
            count = len(waiting)
        self._metrics.set_ca_up(issuer, False, count)
        if fresh:
            serving = (f"the current certificate keeps serving until "
                       f"{not_after:%Y-%m-%d %H:%M UTC}" if not_after is not None
                       else "no certificate yet")
            self._events.record(action.desired.source, "Warning", "CaUnavailable",
                                f"waiting for the ACME CA of issuer {issuer}: {reason}; "
                                f"{serving}; ordering resumes as soon as it answers")
        return False

    def failed(self, action: Action, error: CertbotK8sError | None) -> bool:
        """Whether the failure was the CA being down (then: no backoff, the gate holds it)."""
        if not isinstance(error, AcmeCaUnavailable):
            return False
        self.health.report(action.desired.spec.issuer, error)
        return True

    def succeeded(self, action: Action) -> None:
        self.health.succeeded(action.desired.spec.issuer)

    def stop(self) -> None:
        self.health.stop()
