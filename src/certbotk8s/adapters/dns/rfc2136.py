"""DNS-01 provider: RFC 2136 dynamic update signed with TSIG (BIND, Knot, PowerDNS, ...).

Adds our TXT value without replacing others; clean-up deletes exactly that value (deleting a
value that is gone is NOERROR). Errors name the server, the zone and what the server said
(REFUSED, NOTAUTH, a TSIG error, a timeout). A server that gives no answer at all (refused or
reset connection, timeout) raises `DnsServerUnreachable`: an outage, which `probe` watches end
(any DNS answer to a query over the update transport). The TSIG secret is never put into a
message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.tsig
import dns.update

from certbotk8s.adapters.dns.propagation import split_hostport
from certbotk8s.core.errors import DnsServerUnreachable, DnsSolverError
from certbotk8s.core.ports import TxtRecord


@dataclass(frozen=True)
class Rfc2136Settings:
    """`server` is `host:port` of the primary accepting updates."""

    server: str
    tsig_name: str
    tsig_secret: str = field(repr=False)
    tsig_algorithm: str = "hmac-sha256"
    ttl: int = 60
    timeout: float = 10.0


class Rfc2136Provider:
    """DnsRecordProvider over RFC 2136 + TSIG."""

    def __init__(self, settings: Rfc2136Settings) -> None:
        self.settings = settings
        self._server, self._port = split_hostport(settings.server, 53)
        self._keyname = dns.name.from_text(settings.tsig_name)
        self._keyring = {self._keyname: dns.tsig.Key(self._keyname, settings.tsig_secret,
                                                      settings.tsig_algorithm)}

    def describe(self) -> str:
        return f"rfc2136 {self.settings.server}"

    def probe(self) -> str | None:
        """None when the update server answers DNS over TCP (whatever it says), else why not."""
        query = dns.message.make_query(".", "SOA")
        try:
            dns.query.tcp(query, self._server, port=self._port,
                          timeout=min(self.settings.timeout, 5.0))
        except dns.exception.Timeout:
            return f"{self.settings.server}: no answer (timeout)"
        except (OSError, EOFError) as e:
            return f"{self.settings.server}: {type(e).__name__}: {e}"
        except dns.exception.DNSException:
            return None  # an answer we cannot read is still an answer
        return None

    def present(self, record: TxtRecord) -> None:
        self._update(record, add=True)

    def cleanup(self, record: TxtRecord) -> None:
        self._update(record, add=False)

    def _update(self, record: TxtRecord, add: bool) -> None:
        zone = dns.name.from_text(record.zone)
        update = dns.update.UpdateMessage(zone, keyring=self._keyring, keyname=self._keyname)
        relative = dns.name.from_text(record.fqdn).relativize(zone)
        if add:
            update.add(relative, self.settings.ttl, "TXT", f'"{record.value}"')
        else:
            update.delete(relative, "TXT", f'"{record.value}"')
        action = "add" if add else "delete"
        where = f"RFC 2136 {action} of TXT {record.fqdn} in zone {record.zone} at " \
                f"{self.settings.server}"
        try:
            response = dns.query.tcp(update, self._server, port=self._port,
                                     timeout=self.settings.timeout)
        except dns.tsig.PeerError as e:
            raise DnsSolverError(
                f"{where}: TSIG key {self.settings.tsig_name} rejected by the server "
                f"({type(e).__name__}: bad key name, secret or algorithm)") from e
        except dns.exception.Timeout as e:
            raise DnsServerUnreachable(
                f"{where}: no answer within {self.settings.timeout:g}s (timeout)",
                self.settings.server) from e
        except (OSError, EOFError) as e:  # refused, reset, or closed on us: no answer at all
            raise DnsServerUnreachable(f"{where} failed: {type(e).__name__}: {e}",
                                       self.settings.server) from e
        except dns.exception.DNSException as e:
            raise DnsSolverError(f"{where} failed: {type(e).__name__}: {e}") from e
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            hint = {dns.rcode.REFUSED: " (the key may not update this name or zone)",
                    dns.rcode.NOTAUTH: " (the server is not authoritative for the zone, or "
                                       "rejects the key)",
                    dns.rcode.NOTZONE: " (the name is outside the zone)"}.get(rcode, "")
            raise DnsSolverError(f"{where} refused: {dns.rcode.to_text(rcode)}{hint}")
