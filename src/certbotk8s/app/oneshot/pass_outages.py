"""`renew --once` and outages: one directory probe per issuer before any order, and a service
that is found down during the run (CA, DNS-01 provider, the DNS HTTP-01 hosts resolve through)
holds the rest of its certificates.

Whether a failed order met a service down is the controller's own decision
(`Service.outage`, with the same services as its gates): an HTTP-01 or DNS-01 validation the
CA failed while that DNS gives no answer counts as the DNS outage. A certificate held so gets
a line and an Event naming the service and the error ("CA unreachable: ..."), fails the run
(exit non-zero), and gets no counted backoff: the outage is not its fault, and the next run (or
the controller) tries again at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from certbotk8s.adapters.acme.network import probe_directory
from certbotk8s.app.health.ca_gate import CA
from certbotk8s.app.health.dns_gate import dns_service
from certbotk8s.app.health.outage_gate import Service
from certbotk8s.app.health.resolver_gate import resolver_service
from certbotk8s.app.solvers import SolverFactory
from certbotk8s.core.config.settings import Config
from certbotk8s.core.errors import CertbotK8sError
from certbotk8s.core.renewal.plan import Action

DirectoryProbe = Callable[[str, bool | str], str | None]  # url, verify -> why not, or None


class PassOutages:
    def __init__(self, config: Config, solvers: SolverFactory,
                 probe: DirectoryProbe = probe_directory) -> None:
        self._config = config
        self._probe = probe
        self._services = (CA, dns_service(config, solvers), resolver_service(config))
        self._down: dict[tuple[str, str], str] = {}  # (service label, key) -> why

    def probe_cas(self, actions: Iterable[Action]) -> None:
        """GET the directory of every issuer these orders need, once each."""
        for issuer in sorted({key for a in actions if (key := CA.key_of(a)) is not None}):
            settings = self._config.issuers.get(issuer)
            if settings is None:
                continue
            reason = self._probe(settings.directory, settings.ca_bundle or True)
            if reason is not None:
                self._down[(CA.label, issuer)] = reason

    def blocked(self, action: Action) -> tuple[Service, str] | None:
        """The service `action` needs that is down, and the per-certificate message."""
        for service in self._services:
            key = service.key_of(action)
            reason = self._down.get((service.label, key)) if key is not None else None
            if key is not None and reason is not None:
                return service, (f"{service.describe(key, reason)}; no order placed, no backoff "
                                 f"counted")
        return None

    def note(self, action: Action, error: CertbotK8sError | None) -> tuple[Service, str] | None:
        """Whether `error` is an outage of a service (then: the service and the line for this
        certificate, and the rest of the run skips the service's certificates)."""
        for service in self._services:
            found = service.outage(action, error)
            if found is not None:
                key, outage = found
                self._down[(service.label, key)] = str(outage)
                return service, (f"{service.describe(key, str(outage))}; the order failed, no "
                                 f"backoff counted")
        return None
