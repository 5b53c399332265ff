"""HTTP-01 and the DNS its hosts resolve through: an `OutageGate` with one key, the resolver.

The CA resolves an HTTP-01 host before it connects. A validation it failed while that DNS gives
no answer (the self-check's resolver times out or SERVFAILs on the very host: checked at once,
`http01.lookup_outage`) is a DNS outage, not the certificate's failure: that order is dead (a
new one follows), the failed authorization still counts in the budget, but no backoff holds the
certificate; HTTP-01 orders wait (`DnsUnavailable` Event) until a lookup of that host gets an
answer again. A validation failed while DNS answers is the CA's verdict and counts as usual.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from certbotk8s.adapters.http01.responder import lookup_outage
from certbotk8s.app.health.outage_gate import OutageGate, Service
from certbotk8s.app.metrics import Metrics
from certbotk8s.core.config.settings import Config
from certbotk8s.core.errors import CertbotK8sError, ChallengeFailed, DnsServerUnreachable, Outage
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import EventRecorder
from certbotk8s.core.renewal.plan import Action


def resolver_service(config: Config, seen: Callable[[str], None] = lambda host: None
                     ) -> Service:
    """The DNS that HTTP-01 hosts resolve through, as a service with one key (the self-check's
    resolver); `confirm` looks the failed host up at once (`seen` is told which host failed,
    for the gate's probe)."""
    resolver = config.solver.http01.self_check_resolver
    name = resolver or "the system resolver"

    def key_of(action: Action) -> str | None:
        return name if action.desired.spec.challenge is ChallengeType.HTTP01 else None

    def confirm(key: str, error: CertbotK8sError | None) -> Outage | None:
        if not isinstance(error, ChallengeFailed):
            return None
        host = error.host.removeprefix("*.")
        reason = lookup_outage(host, resolver)
        if reason is None:
            return None  # DNS answers: the CA's verdict stands (counted)
        seen(host)
        return DnsServerUnreachable(f"{reason} (and the CA's validation failed meanwhile: "
                                    f"{error.problem})", key)

    return Service(label="DNS of HTTP-01 hosts at", reason="DnsUnavailable",
                   unreachable="DNS server unreachable", error=DnsServerUnreachable,
                   key_of=key_of, confirm=confirm)


class ResolverGate(OutageGate):
    def __init__(self, config: Config, events: EventRecorder, metrics: Metrics,
                 wake: Callable[[], None]) -> None:
        self._resolver = config.solver.http01.self_check_resolver
        self._lock = threading.Lock()
        self._host = ""  # a host that could not be looked up: what the probe asks for
        # Metrics: as the DNS-01 providers', under the provider name `http-01`.
        super().__init__(resolver_service(config, self._remember), self._probe_host, events,
                         lambda _, up, waiting: metrics.set_dns_up("http-01", up, waiting), wake)

    def _remember(self, host: str) -> None:
        with self._lock:
            self._host = host

    def _probe_host(self, key: str) -> str | None:
        with self._lock:
            host = self._host
        return lookup_outage(host, self._resolver) if host else None
