"""Hold orders while a service they need is down, say why, resume when a probe sees it back.

One gate per kind of service (the issuer's ACME CA: `CaGate`; the DNS-01 provider's server:
`DnsGate`). `admit` is asked before an order is submitted: while the certificate's service is
down the certificate waits (its current certificate keeps serving), a Warning Event on its
source names the service and the error once, and the probe is told how soon this certificate
needs the service (a tenth of its remaining life, so no Retry-After or probe pause outlasts it).
`failed` turns an order that met the service down (`Outage` of this gate's kind) into that
state instead of a counted backoff; when the probe sees the service again, `wake` runs and
every waiting certificate is submitted at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from certbotk8s.app.health.service_probe import Probe, ServiceProbe
from certbotk8s.core.errors import CertbotK8sError, Outage
from certbotk8s.core.model import SecretRef
from certbotk8s.core.ports import EventRecorder
from certbotk8s.core.renewal.lifecycle import ServiceDown
from certbotk8s.core.renewal.plan import Action

log = logging.getLogger(__name__)

URGENCY_FRACTION = 0.1  # probe by a tenth of the remaining life, whatever Retry-After says

Publish = Callable[[str, bool, int], None]  # key, up, waiting certificates (metrics)
# An error of another kind that the service `key` being down explains (the CA failed a
# validation while this DNS gives no answer): the outage it stands for, else None.
Confirm = Callable[[str, CertbotK8sError | None], Outage | None]


@dataclass(frozen=True)
class Service:
    """What a gate watches: `label` names a key in messages ("DNS provider"), `reason` is the
    Event reason, `unreachable` the short cause (`renew --once` lines: "CA unreachable"),
    `error` the outage class of this service, `key_of` the key an action needs (None: it does
    not need this kind of service), `confirm` what else its being down explains."""

    label: str
    reason: str
    unreachable: str
    error: type[Outage]
    key_of: Callable[[Action], str | None]
    confirm: Confirm | None = None

    def describe(self, key: str, why: str) -> str:
        """One line naming the service down and the error ("CA unreachable: ... (ACME CA of
        issuer x)"): `renew --once` lines, `certbotk8s` wait reasons."""
        return f"{self.unreachable}: {why} ({self.label} {key})"

    def outage(self, action: Action, error: CertbotK8sError | None) -> tuple[str, Outage] | None:
        """Whether the failed order of `action` met this service down: its key and the outage.
        The one decision for both modes (the controller's gates, `renew --once`'s record)."""
        key = self.key_of(action)
        if key is None:
            return None
        if isinstance(error, self.error):
            return key, error
        found = self.confirm(key, error) if self.confirm is not None else None
        return (key, found) if found is not None else None


class OutageGate:
    def __init__(self, service: Service, probe: Probe, events: EventRecorder,
                 publish: Publish, wake: Callable[[], None], *,
                 health: ServiceProbe | None = None, first_delay: float = 0.5,
                 max_delay: float = 5.0) -> None:
        self.service = service
        self._probe = probe
        self._events = events
        self._publish = publish
        self._wake = wake
        self._lock = threading.Lock()
        self._waiting: dict[str, set[SecretRef]] = {}
        self.health = health or ServiceProbe(probe, self._back, on_state=self._state,
                                         first_delay=first_delay, max_delay=max_delay,
                                         label=service.label)

    def _state(self, key: str, up: bool) -> None:
        with self._lock:
            waiting = len(self._waiting.get(key, ()))
        self._publish(key, up, 0 if up else waiting)

    def _back(self, key: str) -> None:
        with self._lock:
            self._waiting.pop(key, None)
        self._wake()

    def down_for(self, action: Action) -> str | None:
        """Why the service `action` needs is down, or None (up, or not needed)."""
        key = self.service.key_of(action)
        return self.health.down(key) if key is not None else None

    def down(self, action: Action) -> ServiceDown | None:
        """The service `action` needs, as a fact for core.renewal.lifecycle, when it is down."""
        key = self.service.key_of(action)
        why = self.health.down(key) if key is not None else None
        if key is None or why is None:
            return None
        return ServiceDown(self.service.reason, self.service.describe(key, why))

    def admit(self, action: Action, not_after: datetime | None, now: datetime) -> bool:
        """True when the order may go; False while its service is down (recorded, reported)."""
        key = self.service.key_of(action)
        reason = self.health.down(key) if key is not None else None
        if key is None or reason is None:
            return True
        remaining = (not_after - now).total_seconds() if not_after is not None else 0.0
        self.health.need_by(key, max(0.0, remaining) * URGENCY_FRACTION)
        ref = action.desired.secret
        with self._lock:
            waiting = self._waiting.setdefault(key, set())
            fresh = ref not in waiting
            waiting.add(ref)
            count = len(waiting)
        self._publish(key, False, count)
        if fresh:
            serving = (f"the current certificate keeps serving until "
                       f"{not_after:%Y-%m-%d %H:%M UTC}" if not_after is not None
                       else "no certificate yet")
            self._events.record(action.desired.source, "Warning", self.service.reason,
                                f"waiting for the {self.service.label} {key}: {reason}; "
                                f"{serving}; ordering resumes as soon as it answers")
        return False

    def failed(self, action: Action, error: CertbotK8sError | None) -> bool:
        """Whether the failure was this service being down (then: no backoff, the gate holds
        the certificate until the probe sees the service back)."""
        found = self.service.outage(action, error)
        if found is None:
            return False
        self.health.report(*found)
        return True

    def succeeded(self, action: Action) -> None:
        key = self.service.key_of(action)
        if key is not None:
            self.health.succeeded(key)

    def stop(self) -> None:
        self.health.stop()
