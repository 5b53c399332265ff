"""The solver factory: DNS-01 solvers built per order from the provider table, credentials read
from Secrets each time (rotation), namespace scope enforced, clear errors when misconfigured."""

from __future__ import annotations

from dataclasses import replace

import pytest

from certbotk8s.adapters.dns.rfc2136 import Rfc2136Provider
from certbotk8s.adapters.dns.solver import DnsSolver
from certbotk8s.adapters.http01.responder import MemoryTokenStore
from certbotk8s.app.solvers import SolverFactory
from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.model import ChallengeType, DesiredCertificate
from certbotk8s.core.ports import StoredSecret

from .factories import desired, make_config


class Secrets:
    """The part of SecretStore the factory uses: `read`."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, bytes]] = {}

    def read(self, namespace: str, name: str) -> StoredSecret | None:
        data = self.data.get((namespace, name))
        if data is None:
            return None
        return StoredSecret(namespace, name, "1", "Opaque", data=data)


def _factory(secrets: Secrets, **config: object) -> SolverFactory:
    return SolverFactory(make_config(**config), secrets,  # type: ignore[arg-type]
                         MemoryTokenStore(), None)


def _dns01(provider: str | None = "bind", namespace: str = "default") -> DesiredCertificate:
    d = desired("a.example.com", challenge=ChallengeType.DNS01)
    return replace(d, spec=replace(d.spec, dns_provider=provider),
                   source=replace(d.source, namespace=namespace))


def test_rotated_tsig_secret_is_used_by_the_next_order() -> None:
    secrets = Secrets()
    factory = _factory(secrets)
    secrets.data[("certbotk8s", "tsig")] = {"secret": b"c2VjcmV0LW9uZQ==\n"}
    first = factory.for_order(_dns01(), "o1")[ChallengeType.DNS01]
    secrets.data[("certbotk8s", "tsig")] = {"secret": b"c2VjcmV0LXR3bw=="}
    second = factory.for_order(_dns01(), "o2")[ChallengeType.DNS01]
    assert isinstance(first, DnsSolver) and isinstance(second, DnsSolver)
    assert isinstance(first.provider, Rfc2136Provider)
    assert isinstance(second.provider, Rfc2136Provider)
    assert first.provider.settings.tsig_secret == "c2VjcmV0LW9uZQ=="
    assert second.provider.settings.tsig_secret == "c2VjcmV0LXR3bw=="
    assert "c2VjcmV0" not in repr(first.provider.settings)


def test_missing_secret_names_the_secret_and_key_only() -> None:
    with pytest.raises(DnsSolverError, match=r"Secret certbotk8s/tsig key 'secret' not found"):
        _factory(Secrets()).for_order(_dns01(), "o")


def test_provider_outside_its_namespaces_is_refused() -> None:
    secrets = Secrets()
    secrets.data[("certbotk8s", "tsig")] = {"secret": b"c2VjcmV0"}
    providers = {"bind": {"type": "rfc2136", "server": "127.0.0.1:5353",
                          "namespaces": ["team-a"],
                          "tsig": {"keyName": "k.", "secretRef": {"name": "tsig",
                                                                  "key": "secret"}}}}
    factory = _factory(secrets, dnsProviders=providers)
    assert factory.for_order(_dns01(namespace="team-a"), "o")
    with pytest.raises(DnsSolverError, match="may not be used by sources in namespace 'team-b'"):
        factory.for_order(_dns01(namespace="team-b"), "o")


def test_unknown_or_absent_provider_is_a_clear_error() -> None:
    factory = _factory(Secrets())
    with pytest.raises(DnsSolverError, match="'nope' is not configured"):
        factory.for_order(_dns01("nope"), "o")
    with pytest.raises(DnsSolverError, match="no DNS provider is configured"):
        factory.for_order(_dns01(None), "o")
