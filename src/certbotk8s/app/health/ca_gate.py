"""The controller's side of CA health: an `OutageGate` keyed by issuer, probing its directory.

While an issuer's CA is down its orders wait (no storm), a `CaUnavailable` Event names the
cause, and `certbotk8s_acme_ca_up` / `_waiting_certificates` show it; see outage_gate.
"""

from __future__ import annotations

from collections.abc import Callable

from certbotk8s.adapters.acme.network import probe_directory
from certbotk8s.app.health.outage_gate import OutageGate, Service
from certbotk8s.app.health.service_probe import ServiceProbe
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.config.settings import Config
from certbotk8s.core.errors import AcmeCaUnavailable
from certbotk8s.core.ports import EventRecorder
from certbotk8s.core.renewal.plan import Action


def issuer_of(action: Action) -> str:
    return action.desired.spec.issuer


CA = Service(label="ACME CA of issuer", reason="CaUnavailable", unreachable="CA unreachable",
             error=AcmeCaUnavailable, key_of=issuer_of)


class CaGate(OutageGate):
    def __init__(self, config: Config, events: EventRecorder, metrics: Metrics,
                 wake: Callable[[], None], *, health: ServiceProbe | None = None) -> None:
        self._config = config
        super().__init__(CA, self._probe_ca, events, metrics.set_ca_up, wake, health=health)

    def _probe_ca(self, issuer: str) -> str | None:
        settings = self._config.issuers.get(issuer)
        if settings is None:
            return None  # issuer gone from the config: nothing to wait for
        return probe_directory(settings.directory, settings.ca_bundle or True)
