"""The propagation check's zone and nameserver lookups: no answer is an outage, any other DNS
error a plain solver error naming what was not found."""

from __future__ import annotations

import re
from collections.abc import Callable

import dns.exception
import dns.resolver
import pytest

from certbotk8s.adapters.dns.propagation import DnsLookup, PropagationSettings
from certbotk8s.core.errors import DnsServerUnreachable, DnsSolverError

Ask = Callable[[DnsLookup], object]
ZONE: Ask = lambda d: d.zone_of("_acme-challenge.a.example.com")  # noqa: E731
NAMESERVERS: Ask = lambda d: d.nameservers("example.com")  # noqa: E731


class _FailingResolver(dns.resolver.Resolver):
    """A resolver whose every query fails with `error` (no network)."""

    def __init__(self, error: dns.exception.DNSException) -> None:
        super().__init__(configure=False)
        self.nameservers = ["192.0.2.53"]
        self.error = error

    def resolve(self, *args: object, **kwargs: object) -> dns.resolver.Answer:
        raise self.error


def _lookup(error: type[dns.exception.DNSException]) -> DnsLookup:
    lookup = DnsLookup(PropagationSettings(resolver="192.0.2.53:5353"))
    lookup._resolver = _FailingResolver(error())
    return lookup


@pytest.mark.parametrize("ask", [ZONE, NAMESERVERS])
def test_no_answer_is_an_outage_of_the_resolver(ask: Ask) -> None:
    with pytest.raises(DnsServerUnreachable, match=r"at 192\.0\.2\.53:5353 failed: Timeout"):
        ask(_lookup(dns.exception.Timeout))


@pytest.mark.parametrize(("ask", "error", "message"), [
    (ZONE, dns.resolver.NoNameservers,
     "no zone (SOA) found for _acme-challenge.a.example.com at 192.0.2.53:5353: NoNameservers"),
    (NAMESERVERS, dns.resolver.NXDOMAIN,
     "cannot find the nameservers of example.com at 192.0.2.53:5353: NXDOMAIN"),
])
def test_other_errors_say_what_was_not_found(ask: Ask, error: type[dns.exception.DNSException],
                                             message: str) -> None:
    with pytest.raises(DnsSolverError, match=re.escape(message)) as raised:
        ask(_lookup(error))
    assert not isinstance(raised.value, DnsServerUnreachable)
