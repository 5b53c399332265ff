"""The controller's side of DNS server health: an `OutageGate` keyed by DNS-01 provider name.

A DNS-01 order whose provider's server (or the resolver of the propagation check) gives no
answer at all (`DnsServerUnreachable`: refused connection, timeout) marks the provider down:
its orders wait, a `DnsUnavailable` Event names the server and the error, and
`certbotk8s_dns_provider_up` / `_waiting_certificates` show it. The probe is the provider's own
(`DnsSolver.probe`: for RFC 2136 a query to the update server and the resolver), so nothing
here knows a provider family. REFUSED, NOTAUTH or a bad TSIG key are answers, not outages: they
stay counted failures with their backoff.

A DNS-01 challenge the CA failed while the provider's server does not answer our probe either
(the server went down between our propagation check and the CA's lookup) is the outage too: the
order is dead (a new one follows), but no backoff is counted.
"""

from __future__ import annotations

from collections.abc import Callable

from certbotk8s.app.health.outage_gate import OutageGate, Service
from certbotk8s.app.health.service_probe import ServiceProbe
from certbotk8s.app.metrics import Metrics
from certbotk8s.app.solvers import SolverFactory
from certbotk8s.core.config.settings import Config
from certbotk8s.core.errors import CertbotK8sError, ChallengeFailed, DnsServerUnreachable, Outage
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import EventRecorder
from certbotk8s.core.renewal.plan import Action


def provider_of(config: Config) -> Callable[[Action], str | None]:
    """The DNS provider an action's order writes through (None: not DNS-01)."""
    def key(action: Action) -> str | None:
        spec = action.desired.spec
        if spec.challenge is not ChallengeType.DNS01:
            return None
        return spec.dns_provider or config.default_dns_provider
    return key


def dns_service(config: Config, solvers: SolverFactory) -> Service:
    """DNS-01 providers as a service; `confirm` asks the provider's own probe whether a
    challenge the CA failed is explained by its server giving no answer."""
    def confirm(provider: str, error: CertbotK8sError | None) -> Outage | None:
        if not isinstance(error, ChallengeFailed):
            return None
        reason = probe_provider(config, solvers, provider)
        if reason is None:
            return None  # the server answers: the CA's verdict stands (counted)
        return DnsServerUnreachable(f"{reason} (and the CA's validation failed meanwhile: "
                                    f"{error})", provider)

    return Service(label="DNS provider", reason="DnsUnavailable",
                   unreachable="DNS server unreachable", error=DnsServerUnreachable,
                   key_of=provider_of(config), confirm=confirm)


def probe_provider(config: Config, solvers: SolverFactory, provider: str) -> str | None:
    """Why `provider`'s server gives no answer now, or None (it answers, or it is gone)."""
    if provider not in config.dns_providers:
        return None  # provider gone from the config: nothing to wait for
    try:  # a fresh solver: a rotated credential or changed config is seen too
        return solvers.dns_solver(provider).probe()
    except CertbotK8sError as e:
        return str(e)


class DnsGate(OutageGate):
    def __init__(self, config: Config, solvers: SolverFactory, events: EventRecorder,
                 metrics: Metrics, wake: Callable[[], None], *,
                 health: ServiceProbe | None = None) -> None:
        super().__init__(dns_service(config, solvers),
                         lambda provider: probe_provider(config, solvers, provider), events,
                         metrics.set_dns_up, wake, health=health)
