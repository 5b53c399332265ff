"""Challenge solvers for one order, built from the configuration."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from certbotk8s.adapters.http01.responder import Http01Solver, SelfCheck
from certbotk8s.adapters.http01.routing import RoutedHttp01Solver
from certbotk8s.core.config.settings import Config, SecretKeyRef
from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.model import ChallengeType, DesiredCertificate, SourceKind
from certbotk8s.core.ports import ChallengeSolver, RoutingPublisher, SecretStore, TokenStore
from certbotk8s.core.renewal.waits import CappedWait

if TYPE_CHECKING:  # the DNS adapters (dnspython) load with the first DNS-01 order or probe
    from certbotk8s.adapters.dns.solver import DnsSolver


class SolverFactory:
    """Builds the solver set an order needs: HTTP-01 with its routing, or DNS-01 by provider."""

    def __init__(self, config: Config, secrets: SecretStore, tokens: TokenStore,
                 routing: RoutingPublisher | None) -> None:
        self._config = config
        self._secrets = secrets
        self._tokens = tokens
        self._routing = routing

    def for_order(self, desired: DesiredCertificate, order_id: str,
                  keep_going: Callable[[], bool] | None = None,
                  dns_wait: CappedWait | None = None
                  ) -> Mapping[ChallengeType, ChallengeSolver]:
        if desired.spec.challenge is ChallengeType.DNS01:
            provider = desired.spec.dns_provider or self._config.default_dns_provider
            if provider is None:
                raise DnsSolverError("dns-01 requested but no DNS provider is configured")
            settings = self._config.dns_providers.get(provider)
            namespace = desired.source.namespace
            if (settings is not None and desired.source_kind is not SourceKind.CONFIG_CERTIFICATE
                    and not settings.allows_namespace(namespace)):
                raise DnsSolverError(
                    f"DNS provider {provider!r} may not be used by sources in namespace "
                    f"{namespace!r}")
            return {ChallengeType.DNS01: self.dns_solver(provider, keep_going, dns_wait)}
        http = self._config.solver.http01
        check = SelfCheck(enabled=http.self_check, port=http.self_check_port,
                          resolver=http.self_check_resolver,
                          networks=http.self_check_networks)
        solver: ChallengeSolver = Http01Solver(self._tokens, check, keep_going)
        if self._routing is not None and desired.routing is not None:
            solver = RoutedHttp01Solver(solver, self._routing, desired.routing,
                                        desired.spec.hosts, order_id)
        return {ChallengeType.HTTP01: solver}

    def dns_solver(self, name: str, keep_going: Callable[[], bool] | None = None,
                   wait: CappedWait | None = None) -> DnsSolver:
        """A fresh solver per order: credentials are read from their Secrets each time, so a
        rotated key is used from the next order on (a few GETs; the order costs far more)."""
        provider = self._config.dns_providers.get(name)
        if provider is None:
            raise DnsSolverError(f"DNS provider {name!r} is not configured")
        from certbotk8s.adapters.dns.registry import build_solver

        return build_solver(provider, self._read_secret(provider.name),
                            self._config.solver.dns01, keep_going, wait)

    def _read_secret(self, provider: str) -> Callable[[SecretKeyRef], str]:
        def read(ref: SecretKeyRef) -> str:
            secret = self._secrets.read(ref.namespace, ref.name)
            value = secret.data.get(ref.key) if secret is not None else None
            if not value:
                raise DnsSolverError(
                    f"DNS provider {provider}: Secret {ref.namespace}/{ref.name} "
                    f"key {ref.key!r} not found"
                )
            return value.decode().strip()

        return read
