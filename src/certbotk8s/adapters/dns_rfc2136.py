"""DNS-01 over RFC 2136 dynamic update with TSIG.

For each challenge: follow a CNAME on `_acme-challenge.<domain>` (delegation), find the zone
of the final name by SOA, add our TXT value (never replacing others), then wait until every
authoritative nameserver of that zone answers it, polling all pending records together (no
fixed sleep). Clean-up deletes exactly our value; another order's value at the same name stays.
The TSIG secret is never put into a message or log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.tsig
import dns.tsigkeyring
import dns.update

from certbotk8s.core.errors import DnsSolverError
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import PendingChallenge

log = logging.getLogger(__name__)

_MAX_CNAME_HOPS = 8


@dataclass(frozen=True)
class Rfc2136Settings:
    """Where to send updates and how to check propagation.

    `server` is `host:port` of the primary accepting updates. `resolver` (`host:port`) answers
    the CNAME/SOA/NS lookups; None uses the system resolver. `nameserver_port` is the port the
    zone's authoritative servers answer on (53 in the world; the lab's BIND port there).
    """

    server: str
    tsig_name: str
    tsig_secret: str = field(repr=False)
    tsig_algorithm: str = "hmac-sha256"
    resolver: str | None = None
    nameserver_port: int = 53
    ttl: int = 60
    propagation_timeout: float = 120.0
    poll_first: float = 0.02
    poll_cap: float = 2.0


@dataclass(frozen=True)
class _Record:
    name: dns.name.Name  # absolute, after CNAME delegation
    zone: dns.name.Name
    value: str


def _split_hostport(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host.strip("[]"), int(port)


class Rfc2136Solver:
    """ChallengeSolver for DNS-01 over RFC 2136."""

    challenge_type = ChallengeType.DNS01

    def __init__(self, settings: Rfc2136Settings) -> None:
        self.settings = settings
        self._server, self._server_port = _split_hostport(settings.server, 53)
        self._keyname = dns.name.from_text(settings.tsig_name)
        self._keyring = {self._keyname: dns.tsig.Key(self._keyname, settings.tsig_secret,
                                                      settings.tsig_algorithm)}
        self._resolver = dns.resolver.Resolver(configure=settings.resolver is None)
        if settings.resolver is not None:
            host, port = _split_hostport(settings.resolver, 53)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        self._records: dict[tuple[str, str, bool], _Record] = {}

    # -- lookups -------------------------------------------------------------------------------

    def challenge_name(self, domain: str) -> dns.name.Name:
        """`_acme-challenge.<domain>`, followed through CNAMEs to the name really updated."""
        name = dns.name.from_text(f"_acme-challenge.{domain}")
        for _ in range(_MAX_CNAME_HOPS):
            try:
                answer = self._resolver.resolve(name, "CNAME", raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return name
            except dns.exception.DNSException as e:
                raise DnsSolverError(f"CNAME lookup of {name} failed: {type(e).__name__}") from e
            if answer.rrset is None:
                return name
            name = answer.rrset[0].target
        raise DnsSolverError(f"more than {_MAX_CNAME_HOPS} CNAMEs from _acme-challenge.{domain}")

    def zone_of(self, name: dns.name.Name) -> dns.name.Name:
        try:
            return dns.resolver.zone_for_name(name, resolver=self._resolver)
        except dns.exception.DNSException as e:
            raise DnsSolverError(f"no zone (SOA) found for {name}: {type(e).__name__}") from e

    def _nameserver_addresses(self, zone: dns.name.Name) -> list[str]:
        try:
            ns = self._resolver.resolve(zone, "NS")
            addresses: list[str] = []
            for rr in ns:
                a = self._resolver.resolve(rr.target, "A")
                addresses.extend(str(x) for x in a)
        except dns.exception.DNSException as e:
            raise DnsSolverError(f"cannot find nameservers of {zone}: {type(e).__name__}") from e
        return sorted(set(addresses))

    # -- updates -------------------------------------------------------------------------------

    def _update(self, record: _Record, add: bool) -> None:
        update = dns.update.UpdateMessage(
            record.zone, keyring=self._keyring, keyname=self._keyname
        )
        relative = record.name.relativize(record.zone)
        if add:
            update.add(relative, self.settings.ttl, "TXT", f'"{record.value}"')
        else:
            update.delete(relative, "TXT", f'"{record.value}"')
        action = "add" if add else "delete"
        try:
            response = dns.query.tcp(update, self._server, port=self._server_port, timeout=10)
        except (dns.exception.DNSException, OSError) as e:
            raise DnsSolverError(
                f"RFC 2136 {action} of TXT {record.name} at {self.settings.server} failed: "
                f"{type(e).__name__}"
            ) from e
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise DnsSolverError(
                f"RFC 2136 {action} of TXT {record.name} in zone {record.zone} refused: "
                f"{dns.rcode.to_text(rcode)}"
            )

    def _key(self, ch: PendingChallenge) -> tuple[str, str, bool]:
        return (ch.domain, ch.dns_value, ch.wildcard)

    def present(self, challenge: PendingChallenge) -> None:
        name = self.challenge_name(challenge.domain)
        record = _Record(name=name, zone=self.zone_of(name), value=challenge.dns_value)
        self._update(record, add=True)
        self._records[self._key(challenge)] = record
        log.info("dns-01: TXT %s added in zone %s", name, record.zone)

    def clean_up(self, challenge: PendingChallenge) -> None:
        record = self._records.pop(self._key(challenge), None)
        if record is None:
            return
        self._update(record, add=False)
        log.info("dns-01: TXT %s removed", record.name)

    # -- propagation ---------------------------------------------------------------------------

    def _answers(self, address: str, record: _Record) -> bool:
        query = dns.message.make_query(record.name, dns.rdatatype.TXT)
        query.flags &= ~dns.flags.RD
        try:
            response = dns.query.udp(query, address, port=self.settings.nameserver_port,
                                     timeout=2.0)
        except (dns.exception.DNSException, OSError):
            return False
        for rrset in response.answer:
            if rrset.rdtype != dns.rdatatype.TXT:
                continue
            for rdata in rrset:
                if b"".join(rdata.strings).decode() == record.value:
                    return True
        return False

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        """Return once every authoritative server of every zone answers every value."""
        records = [self._records[self._key(c)] for c in challenges if self._key(c) in self._records]
        servers = {r.zone: self._nameserver_addresses(r.zone) for r in records}
        pending = {(r, a) for r in records for a in servers[r.zone]}
        deadline = time.monotonic() + self.settings.propagation_timeout
        delay = self.settings.poll_first
        while pending:
            pending = {(r, a) for (r, a) in pending if not self._answers(a, r)}
            if not pending:
                return
            if time.monotonic() + delay > deadline:
                missing = ", ".join(sorted(f"{r.name}@{a}" for r, a in pending))
                raise DnsSolverError(
                    f"TXT records not visible on every authoritative server within "
                    f"{self.settings.propagation_timeout:.0f}s: {missing}"
                )
            time.sleep(delay)
            delay = min(delay * 2, self.settings.poll_cap)
