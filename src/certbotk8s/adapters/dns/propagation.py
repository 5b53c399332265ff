"""The one DNS-01 propagation check every provider shares.

`DnsLookup` follows the CNAME at `_acme-challenge.<domain>` (when the provider allows it), finds
the zone by SOA, and waits until every server it asks answers each TXT value, polling all
pending (record, server) pairs together with a doubling interval: no fixed sleep. Whom it asks:

- authoritative mode (the default): every authoritative nameserver of the zone (its NS records,
  on `nameserver_port`), without recursion. A server that says it is not authoritative
  (REFUSED, NOTAUTH, or an answer without the AA flag) can never show the value, so the check
  fails at once, naming the server.
- recursive mode (`recursive_nameservers`, for networks where port 53 to the world is closed,
  like cert-manager's `--dns01-recursive-nameservers-only`): only those resolvers, with the RD
  bit. A resolver that refuses us, or answers without recursion (no RA flag) and without
  authority, can never show the value: the check fails at once. A resolver's cache may hold
  an older answer (no TXT yet) until its negative TTL runs out: that is waited for like a
  lagging secondary.

A server that answers without the value yet is waited for until the deadline, and the error
then names it with what it last said. A resolver or server that gives no answer at all is
`DnsServerUnreachable` (an outage, watched by `probe`), not a failed attempt.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

from certbotk8s.core.errors import DnsServerUnreachable, DnsSolverError, OrderAbandoned
from certbotk8s.core.ports import TxtRecord

_MAX_CNAME_HOPS = 8
_QUERY_TIMEOUT = 2.0


@dataclass(frozen=True)
class PropagationSettings:
    """`resolver` (`host:port`) answers CNAME/SOA/NS lookups (None: the system resolver);
    `nameserver_port` is where the zone's authoritative servers answer (53 in the world).
    `recursive_nameservers` (`host:port`) set: recursive mode, only they are asked."""

    resolver: str | None = None
    nameserver_port: int = 53
    recursive_nameservers: tuple[str, ...] = ()
    timeout: float = 120.0
    timeout_note: str = ""  # why `timeout` is shorter than configured, for the error
    poll_first: float = 0.02
    poll_cap: float = 2.0


def split_hostport(value: str, default_port: int) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    return host.strip("[]"), int(port)


def system_nameservers() -> tuple[str, ...]:
    """`host:port` of the system resolver's nameservers (/etc/resolv.conf): whom recursive
    mode asks when none are configured (as cert-manager does)."""
    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.exception.DNSException as e:
        raise DnsSolverError(f"cannot read the system resolver's nameservers: "
                             f"{type(e).__name__}") from e
    found = tuple(_where((str(address), resolver.port)) for address in resolver.nameservers)
    if not found:
        raise DnsSolverError("the system resolver has no nameservers to ask (recursive mode)")
    return found


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


_SILENT = ("timeout", "ConnectionRefusedError", "ConnectionResetError", "OSError")


def _lookup_failed(what: str, where: str, e: dns.exception.DNSException) -> DnsSolverError:
    """A lookup error: an outage when the resolver never answered, else a plain error."""
    message = f"{what} at {where} failed: {type(e).__name__}"
    if isinstance(e, dns.exception.Timeout):
        return DnsServerUnreachable(f"{message} (no answer)", where)
    return DnsSolverError(message)


class DnsLookup:
    """CNAME following, zone by SOA, and the propagation wait, for one resolver setting."""

    def __init__(self, settings: PropagationSettings) -> None:
        self.settings = settings
        self._resolver = dns.resolver.Resolver(configure=settings.resolver is None)
        if settings.resolver is not None:
            host, port = split_hostport(settings.resolver, 53)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        self._resolver.lifetime = 5.0

    @property
    def where(self) -> str:
        return self.settings.resolver or "the system resolver"

    def challenge_name(self, domain: str, follow_cname: bool) -> str:
        """`_acme-challenge.<domain>`, followed through CNAMEs when `follow_cname`."""
        name = dns.name.from_text(f"_acme-challenge.{domain}")
        if not follow_cname:
            return _text(name)
        for _ in range(_MAX_CNAME_HOPS):
            try:
                answer = self._resolver.resolve(name, "CNAME", raise_on_no_answer=False)
            except dns.resolver.NXDOMAIN:
                return _text(name)
            except dns.exception.DNSException as e:
                raise _lookup_failed(f"CNAME lookup of {_text(name)}", self.where, e) from e
            if answer.rrset is None:
                return _text(name)
            name = answer.rrset[0].target
        raise DnsSolverError(f"more than {_MAX_CNAME_HOPS} CNAMEs from _acme-challenge.{domain}")

    def zone_of(self, fqdn: str) -> str:
        with self._asking(f"zone (SOA) lookup for {fqdn}", f"no zone (SOA) found for {fqdn}"):
            return _text(dns.resolver.zone_for_name(fqdn, resolver=self._resolver))

    def nameservers(self, zone: str) -> list[str]:
        """IPv4 addresses of the zone's NS records."""
        addresses: list[str] = []
        with self._asking(f"nameserver lookup of {zone}", f"cannot find the nameservers of {zone}"):
            for rr in self._resolver.resolve(zone, "NS"):
                addresses.extend(str(x) for x in self._resolver.resolve(rr.target, "A"))
        return sorted(set(addresses))

    @contextlib.contextmanager
    def _asking(self, lookup: str, not_found: str) -> Iterator[None]:
        """A lookup's DNS errors as this check's: no answer is an outage (`_lookup_failed`),
        any other error says `not_found`."""
        try:
            yield
        except dns.exception.Timeout as e:
            raise _lookup_failed(lookup, self.where, e) from e
        except dns.exception.DNSException as e:
            raise DnsSolverError(f"{not_found} at {self.where}: {type(e).__name__}") from e

    def probe(self) -> str | None:
        """None when the resolver, and in recursive mode each resolver the check asks, answers
        a query (whatever it says), else why not."""
        watched = [self.settings.resolver] if self.settings.resolver is not None else []
        watched += self.settings.recursive_nameservers  # the system resolver: not ours to watch
        for server in watched:
            host, port = split_hostport(server, 53)
            try:
                dns.query.udp(dns.message.make_query(".", dns.rdatatype.SOA), host, port=port,
                              timeout=_QUERY_TIMEOUT)
            except dns.exception.Timeout:
                return f"resolver {server}: no answer (timeout)"
            except OSError as e:
                return f"resolver {server}: {type(e).__name__}: {e}"
            except dns.exception.DNSException:
                continue  # an answer we cannot read is still an answer
        return None

    # -- asking the servers of the check -----------------------------------------------------

    @property
    def recursive(self) -> bool:
        return bool(self.settings.recursive_nameservers)

    @property
    def asked(self) -> str:
        """Who the check asks, for messages."""
        return ("configured recursive resolver" if self.recursive
                else "authoritative server")

    def targets(self, zone: str) -> list[tuple[str, int]]:
        """(address, port) of every server the check asks about a record in `zone`."""
        if self.recursive:
            return [split_hostport(r, 53) for r in self.settings.recursive_nameservers]
        return [(a, self.settings.nameserver_port) for a in self.nameservers(zone)]

    def ask(self, target: tuple[str, int], fqdn: str) -> tuple[frozenset[str] | None, str]:
        """TXT values `target` answers at `fqdn` as the mode wants them (with authority, or
        by recursion), and a word on what it said.

        Values None: the server cannot become right (refused, not authoritative, no
        recursion); the word says why. An empty set with "timeout" or "NXDOMAIN" etc.: not
        (yet) there.
        """
        address, port = target
        query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
        if not self.recursive:
            query.flags &= ~dns.flags.RD
        try:
            response = dns.query.udp(query, address, port=port, timeout=_QUERY_TIMEOUT)
        except dns.exception.Timeout:
            return frozenset(), "timeout"
        except (dns.exception.DNSException, OSError) as e:
            return frozenset(), type(e).__name__
        rcode = response.rcode()
        if rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH):
            return None, dns.rcode.to_text(rcode)
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return frozenset(), dns.rcode.to_text(rcode)  # SERVFAIL: maybe still loading
        if self.recursive:
            if not response.flags & (dns.flags.RA | dns.flags.AA):
                return None, "answer without recursion (not a recursive resolver)"
        elif not response.flags & dns.flags.AA:
            return None, "answer without authority (not authoritative for the zone)"
        values = {
            b"".join(rdata.strings).decode(errors="replace")
            for rrset in response.answer if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        }
        return frozenset(values), dns.rcode.to_text(rcode)

    def wait_until_visible(self, records: Sequence[TxtRecord], timeout: float | None = None,
                           keep_going: Callable[[], bool] | None = None) -> None:
        """Return once every server the check asks answers every value.

        `keep_going` is asked before each pause; False (leadership lost) raises OrderAbandoned.
        """
        servers = {r.zone: self.targets(r.zone) for r in records}
        pending = {(r, t) for r in records for t in servers[r.zone]}
        last: dict[tuple[TxtRecord, tuple[str, int]], str] = {}
        limit = self.settings.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        delay = self.settings.poll_first
        while pending:
            still: set[tuple[TxtRecord, tuple[str, int]]] = set()
            for record, target in pending:
                values, said = self.ask(target, record.fqdn)
                if values is None:
                    of_zone = "" if self.recursive else f" of zone {record.zone}"
                    raise DnsSolverError(
                        f"{self.asked} {_where(target)}{of_zone} cannot serve TXT "
                        f"{record.fqdn}: {said}")
                if record.value not in values:
                    still.add((record, target))
                    last[(record, target)] = ("other values only" if values else
                                              "no TXT yet" if said == "NOERROR" else said)
            pending = still
            if not pending:
                return
            if time.monotonic() + delay > deadline:
                missing = ", ".join(sorted(
                    f"{r.fqdn}@{_where(t)} ({last[(r, t)]})" for r, t in pending))
                note = (f" ({self.settings.timeout_note})"
                        if self.settings.timeout_note and timeout is None else "")
                message = (f"TXT records not visible on every {self.asked} within "
                           f"{limit:.0f}s{note}: {missing}")
                if all(last[p] in _SILENT for p in pending):  # not one of them answered
                    raise DnsServerUnreachable(message, ", ".join(sorted(
                        {_where(t) for _, t in pending})))
                raise DnsSolverError(message)
            if keep_going is not None and not keep_going():
                raise OrderAbandoned("no longer the leader: DNS propagation wait stopped")
            time.sleep(delay)
            delay = min(delay * 2, self.settings.poll_cap)

    def gone_everywhere(self, record: TxtRecord) -> bool:
        """True when every server the check asks answers (with authority, or by recursion)
        without the value. A resolver's cache may still hold it: then False, as when unsure."""
        try:
            targets = self.targets(record.zone)
        except DnsSolverError:
            return False
        for target in targets:
            values, said = self.ask(target, record.fqdn)
            if values is None or record.value in values or said not in ("NOERROR", "NXDOMAIN"):
                return False
        return bool(targets)


def _where(target: tuple[str, int]) -> str:
    address, port = target
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
