"""DNS-01 ChallengeSolver: one provider (how TXT values are written) + the shared lookup.

For each challenge: the record name (`_acme-challenge.<domain>`, CNAME followed only when the
provider allows it), refused when it lies outside the provider's zones; the zone (the longest
configured zone holding the name, else found by SOA); then the provider adds the value. The
propagation wait is `DnsLookup`'s, the same for every provider. Clean-up removes exactly the
value added, retried with a doubling pause until it succeeds or every authoritative server
shows the value gone, within `cleanup_timeout`; what could not be removed is named in the error.
A value whose add failed is most likely not there: its clean-up is tried once (in case the add
wrote it before failing), never retried for `cleanup_timeout` (a missing zone cost 27 s).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from certbotk8s.adapters.dns.propagation import DnsLookup
from certbotk8s.core.errors import DnsServerUnreachable, DnsSolverError
from certbotk8s.core.model import ChallengeType
from certbotk8s.core.ports import DnsRecordProvider, PendingChallenge, TxtRecord

log = logging.getLogger(__name__)


class DnsSolver:
    """ChallengeSolver for DNS-01 through any `DnsRecordProvider`. Thread-safe."""

    challenge_type = ChallengeType.DNS01

    def __init__(self, provider: DnsRecordProvider, lookup: DnsLookup, *, name: str = "dns",
                 follow_cname: bool = False, zones: Sequence[str] = (),
                 cleanup_timeout: float = 30.0,
                 keep_going: Callable[[], bool] | None = None) -> None:
        self.provider = provider
        self.lookup = lookup
        self.name = name
        self.follow_cname = follow_cname
        self.zones = tuple(z.rstrip(".").lower() for z in zones)
        self.cleanup_timeout = cleanup_timeout
        self._keep_going = keep_going  # False: leadership lost, stop waiting (OrderAbandoned)
        self._records: dict[tuple[str, str, bool], TxtRecord] = {}
        self._add_failed: set[tuple[str, str, bool]] = set()
        self._lock = threading.Lock()

    def record_for(self, domain: str, value: str) -> TxtRecord:
        """Where `value` for `domain` is written: name, zone; refused outside the zones."""
        fqdn = self.lookup.challenge_name(domain, self.follow_cname)
        if self.zones:
            inside = [z for z in self.zones if fqdn == z or fqdn.endswith("." + z)]
            if not inside:
                raise DnsSolverError(
                    f"DNS provider {self.name} may not write {fqdn}: outside its zones "
                    f"({', '.join(self.zones)})")
            zone = max(inside, key=len)
        else:
            zone = self.lookup.zone_of(fqdn)
        return TxtRecord(fqdn=fqdn, zone=zone, value=value)

    def probe(self) -> str | None:
        """None when the provider's server and the resolver answer again, else why not (the
        outage probe after `DnsServerUnreachable`)."""
        return self.provider.probe() or self.lookup.probe()

    @staticmethod
    def _key(ch: PendingChallenge) -> tuple[str, str, bool]:
        return (ch.domain, ch.dns_value, ch.wildcard)

    def present(self, challenge: PendingChallenge) -> None:
        record = self.record_for(challenge.domain, challenge.dns_value)
        with self._lock:
            self._records[self._key(challenge)] = record  # kept before writing: cleanup
        try:
            self.provider.present(record)
        except DnsServerUnreachable as e:
            with self._lock:
                if isinstance(e.__cause__, ConnectionRefusedError):  # surely not written
                    self._records.pop(self._key(challenge), None)
                else:
                    self._add_failed.add(self._key(challenge))
            raise
        except Exception:
            with self._lock:
                self._add_failed.add(self._key(challenge))
            raise
        log.info("dns-01: TXT %s added in zone %s via %s", record.fqdn, record.zone,
                 self.provider.describe())

    def wait_until_ready(self, challenges: Sequence[PendingChallenge]) -> None:
        with self._lock:
            records = [self._records[k] for k in map(self._key, challenges) if k in self._records]
        self.lookup.wait_until_visible(records, keep_going=self._keep_going)

    def clean_up(self, challenge: PendingChallenge) -> None:
        with self._lock:
            record = self._records.pop(self._key(challenge), None)
            add_failed = self._key(challenge) in self._add_failed
            self._add_failed.discard(self._key(challenge))
        if record is None:
            return
        if add_failed:
            self._clean_up_once(record)
            return
        deadline = time.monotonic() + self.cleanup_timeout
        delay = 0.1
        while True:
            try:
                self.provider.cleanup(record)
                log.info("dns-01: TXT %s removed via %s", record.fqdn, self.provider.describe())
                return
            except DnsSolverError as e:
                error = e
            if self.lookup.gone_everywhere(record):
                log.info("dns-01: TXT %s is gone from every authoritative server (%s)",
                         record.fqdn, error)
                return
            if time.monotonic() + delay > deadline:
                raise DnsSolverError(
                    f"TXT {record.fqdn} value {record.value} may be left behind in zone "
                    f"{record.zone}: clean-up kept failing for {self.cleanup_timeout:.0f}s: "
                    f"{error}") from error
            log.warning("dns-01: clean-up of TXT %s failed (%s); retrying in %.1fs",
                        record.fqdn, error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def _clean_up_once(self, record: TxtRecord) -> None:
        """The clean-up of a value whose add failed: one try, a failure only logged (the
        order already fails with the add's error, which says more)."""
        try:
            self.provider.cleanup(record)
        except DnsSolverError as e:
            log.info("dns-01: TXT %s, whose add failed, was not removed either (%s)",
                     record.fqdn, e)
