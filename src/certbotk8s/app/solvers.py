"""Challenge solvers for one order, built from the configuration."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta

from certbotk8s.adapters.dns_rfc2136 import Rfc2136Settings, Rfc2136Solver
from certbotk8s.adapters.http01 import Http01Solver, SelfCheck
from certbotk8s.adapters.routing import RoutedHttp01Solver
from certbotk8s.core.config import Config, DnsProviderConfig
from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.model import ChallengeType, DesiredCertificate
from certbotk8s.core.ports import ChallengeSolver, RoutingPublisher, SecretStore, TokenStore


class SolverFactory:
    """Builds the solver set an order needs: HTTP-01 with its routing, or DNS-01 by provider."""

    def __init__(self, config: Config, secrets: SecretStore, tokens: TokenStore,
                 routing: RoutingPublisher | None) -> None:
        self._config = config
        self._secrets = secrets
        self._tokens = tokens
        self._routing = routing
        self._dns: dict[str, Rfc2136Solver] = {}
        self._lock = threading.Lock()

    def for_order(self, desired: DesiredCertificate, order_id: str
                  ) -> Mapping[ChallengeType, ChallengeSolver]:
        if desired.spec.challenge is ChallengeType.DNS01:
            provider = desired.spec.dns_provider or self._config.default_dns_provider
            if provider is None:
                raise DnsSolverError("dns-01 requested but no DNS provider is configured")
            return {ChallengeType.DNS01: self.dns_solver(provider)}
        http = self._config.solver.http01
        check = SelfCheck(enabled=http.self_check, port=http.self_check_port,
                          resolver=http.self_check_resolver)
        solver: ChallengeSolver = Http01Solver(self._tokens, check)
        if self._routing is not None and desired.routing is not None:
            solver = RoutedHttp01Solver(solver, self._routing, desired.routing,
                                        desired.spec.hosts, order_id)
        return {ChallengeType.HTTP01: solver}

    def dns_solver(self, name: str) -> Rfc2136Solver:
        with self._lock:
            solver = self._dns.get(name)
            if solver is None:
                provider = self._config.dns_providers.get(name)
                if provider is None:
                    raise DnsSolverError(f"DNS provider {name!r} is not configured")
                solver = Rfc2136Solver(self._settings(provider))
                self._dns[name] = solver
            return solver

    def _settings(self, provider: DnsProviderConfig) -> Rfc2136Settings:
        ref = provider.tsig_secret
        secret = self._secrets.read(ref.namespace, ref.name)
        value = secret.data.get(ref.key) if secret is not None else None
        if not value:
            raise DnsSolverError(
                f"DNS provider {provider.name}: TSIG Secret {ref.namespace}/{ref.name} "
                f"key {ref.key!r} not found"
            )
        dns01 = self._config.solver.dns01
        return Rfc2136Settings(
            server=f"{provider.server_host}:{provider.server_port}",
            tsig_name=provider.tsig_key_name,
            tsig_secret=value.decode().strip(),
            tsig_algorithm=provider.tsig_algorithm,
            resolver=provider.resolver,
            nameserver_port=provider.nameserver_port or 53,
            propagation_timeout=dns01.propagation_timeout.total_seconds(),
            poll_cap=max(dns01.poll_interval, timedelta(milliseconds=50)).total_seconds(),
        )
