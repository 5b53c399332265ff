"""A fake-clock simulation of the pure renewal decision, backoff and budget over a fleet.

No servers: a model CA issues certificates, answers ARI (with unavailable, malformed and moved
windows), fails some orders, and enforces Let's Encrypt's production limits on its own records
(independently of the client's budget). The client side is the real core: `renewal_time`,
`after_failure`, `check_budget`. Used by bench/renewal_year.py (10,000 certificates, a year)
and tests/unit/test_renewal_year.py (a smaller fleet, in CI).
"""

from __future__ import annotations

import heapq
import random
import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from certbotk8s.core import ratelimit
from certbotk8s.core.backoff import JITTER, FailureState, after_failure
from certbotk8s.core.model import CertificateInfo, KeyType, RenewalWindow
from certbotk8s.core.renewal import ChosenMoment, renewal_time

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SimConfig:
    certificates: int = 10_000
    days: float = 365
    domains: int = 400  # registered domains; hosts are spread over them
    namespaces: int = 20
    greedy_share: float = 0.3  # one namespace holds this share of all certificates
    shortlived_share: float = 0.2  # 6-day certificates; the rest are 90-day
    renew_before_share: float = 0.05  # sources with a renew-before close to the lifetime
    order_failure: float = 0.02  # an order fails (challenge invalid) with this chance
    ari_unavailable: float = 0.05  # an ARI read gets no answer
    ari_malformed: float = 0.01  # an ARI answer lies outside the validity
    incident_day: float = 200  # the CA moves the windows of some certificates to "now"
    incident_share: float = 0.05
    burst_share: float = 0.1  # sources that appear at once on day 0 (the rest: over `onboard_days`)
    onboard_days: float = 30
    seed: int = 1
    limits: ratelimit.Limits = field(default_factory=ratelimit.Limits)


@dataclass
class Cert:
    index: int
    hosts: tuple[str, ...]
    namespace: str
    lifetime: timedelta
    renew_before: timedelta | None
    info: CertificateInfo | None = None
    window: RenewalWindow | None = None  # what the CA says for `info`
    moment: ChosenMoment | None = None  # persisted on the Secret
    failure: FailureState = field(default_factory=FailureState)
    orders: int = 0
    renewals: int = 0
    version: int = 0  # bumps when a new event is scheduled (older heap entries are stale)


@dataclass
class SimResult:
    certificates: int
    days: float
    orders: int
    orders_per_certificate: dict[str, float]
    renewals: int
    failed_orders: int
    holds: int
    expired: int
    never_issued: int
    limit_breaches: int
    renewal_fraction_earliest: float
    renewal_fraction_latest: float
    renewal_fraction_deciles: list[float]
    renewal_fraction_deciles_by_ari: list[float]  # renewals timed by an ARI moment only
    renewals_by_reason: dict[str, int]
    renewals_in_ari_window_quarters: list[int]
    after_floor: int


class ModelCA:
    """Let's Encrypt's production limits, enforced on the CA's own records."""

    def __init__(self, limits: ratelimit.Limits) -> None:
        self.limits = limits
        self.orders: deque[datetime] = deque()  # non-exempt new orders
        self.per_domain: dict[str, deque[datetime]] = {}
        self.per_set: dict[tuple[str, ...], deque[datetime]] = {}
        self.failed: dict[str, deque[datetime]] = {}
        self.breaches = 0

    @staticmethod
    def _count(times: deque[datetime], window: timedelta, now: datetime) -> int:
        while times and times[0] + window <= now:
            times.popleft()
        return len(times)

    def new_order(self, hosts: tuple[str, ...], now: datetime, exempt: bool) -> bool:
        """False (and a breach counted) when the CA would refuse this order."""
        lim = self.limits
        refused = any(self._count(self.failed.setdefault(h, deque()), lim.failed_authz_window,
                                  now) >= lim.failed_authz_per_identifier for h in hosts)
        if not exempt:
            refused |= self._count(self.orders, lim.orders_per_account_window,
                                   now) >= lim.orders_per_account
            refused |= self._count(self.per_set.setdefault(hosts, deque()),
                                   lim.certs_per_set_window, now) >= lim.certs_per_set
            for domain in {ratelimit.registered_domain(h) for h in hosts}:
                refused |= self._count(self.per_domain.setdefault(domain, deque()),
                                       lim.certs_per_domain_window, now) >= lim.certs_per_domain
        if refused:
            self.breaches += 1
            return False
        if not exempt:
            self.orders.append(now)
        return True

    def issued(self, hosts: tuple[str, ...], now: datetime, exempt: bool) -> None:
        if exempt:
            return
        self.per_set.setdefault(hosts, deque()).append(now)
        for domain in {ratelimit.registered_domain(h) for h in hosts}:
            self.per_domain.setdefault(domain, deque()).append(now)

    def authz_failed(self, host: str, now: datetime) -> None:
        self.failed.setdefault(host, deque()).append(now)


class Client:
    """The client's records, indexed so each budget check passes only what can match."""

    def __init__(self, limits: ratelimit.Limits) -> None:
        self.limits = limits
        self.orders: deque[ratelimit.OrderRecord] = deque()
        self.failures: dict[str, deque[ratelimit.FailedAuthz]] = {}
        self.issued: dict[str, deque[ratelimit.IssuanceRecord]] = {}  # by registered domain

    def check(self, cert: Cert, now: datetime, replaces: bool) -> ratelimit.Hold | None:
        while self.orders and self.orders[0].at + self.limits.orders_per_account_window <= now:
            self.orders.popleft()
        issued: list[ratelimit.IssuanceRecord] = []
        for domain in {ratelimit.registered_domain(h) for h in cert.hosts}:
            records = self.issued.setdefault(domain, deque())
            while records and records[0].at + self.limits.certs_per_domain_window <= now:
                records.popleft()
            issued += records
        failures = [f for h in cert.hosts for f in self.failures.get(h, ())]
        return ratelimit.check_budget(cert.hosts, now, issued, list(self.orders), failures,
                                      replaces, self.limits, namespace=cert.namespace)

    def ordered(self, cert: Cert, now: datetime, exempt: bool) -> None:
        self.orders.append(ratelimit.OrderRecord(now, cert.namespace, exempt))

    def issued_for(self, cert: Cert, now: datetime, exempt: bool) -> None:
        record = ratelimit.IssuanceRecord(cert.hosts, now, renewal_with_ari=exempt)
        for domain in {ratelimit.registered_domain(h) for h in cert.hosts}:
            self.issued.setdefault(domain, deque()).append(record)

    def authz_failed(self, host: str, now: datetime) -> None:
        records = self.failures.setdefault(host, deque())
        while records and records[0].at + self.limits.failed_authz_window <= now:
            records.popleft()
        records.append(ratelimit.FailedAuthz(host, now))


def _fleet(config: SimConfig, rng: random.Random) -> list[Cert]:
    certs: list[Cert] = []
    for i in range(config.certificates):
        domain = f"d{i % config.domains}.example{(i % config.domains) % 7}.com"
        hosts = (f"h{i}.{domain}",) if i % 5 else (f"h{i}.{domain}", f"www{i}.{domain}")
        namespace = ("greedy" if rng.random() < config.greedy_share
                     else f"ns{rng.randrange(config.namespaces - 1)}")
        lifetime = timedelta(days=6) if rng.random() < config.shortlived_share \
            else timedelta(days=90)
        renew_before = lifetime - timedelta(hours=1) \
            if rng.random() < config.renew_before_share else None
        certs.append(Cert(i, tuple(sorted(hosts)), namespace, lifetime, renew_before))
    return certs


def _slot(limits: ratelimit.Limits, limit: str) -> timedelta:
    """How often one more order fits under `limit` once it is exhausted."""
    if limit in (ratelimit.LIMIT_ORDERS_PER_ACCOUNT, ratelimit.LIMIT_NAMESPACE_SHARE):
        return limits.orders_per_account_window / limits.orders_per_account
    if limit == ratelimit.LIMIT_CERTS_PER_DOMAIN:
        return limits.certs_per_domain_window / limits.certs_per_domain
    if limit == ratelimit.LIMIT_CERTS_PER_SET:
        return limits.certs_per_set_window / limits.certs_per_set
    return limits.failed_authz_window / limits.failed_authz_per_identifier


def _ca_window(info: CertificateInfo) -> RenewalWindow:
    """Let's Encrypt-like: centred a third of the lifetime before expiry, 1/15 wide."""
    centre = info.not_after - info.lifetime / 3
    half = info.lifetime / 30
    return RenewalWindow(centre - half, centre + half, info.ari_cert_id)


def simulate(config: SimConfig) -> SimResult:
    rng = random.Random(config.seed)
    certs = _fleet(config, rng)
    ca, client = ModelCA(config.limits), Client(config.limits)
    end = START + timedelta(days=config.days)
    incident = START + timedelta(days=config.incident_day)
    events: list[tuple[datetime, int, int]] = []
    serial = 0
    orders = failed_orders = holds = expired = after_floor = 0
    fractions: list[float] = []
    by_ari: list[float] = []
    reasons: dict[str, int] = {}
    quarters = [0, 0, 0, 0]
    waiting: dict[tuple[str, str, datetime], int] = {}

    def schedule(cert: Cert, at: datetime) -> None:
        cert.version += 1
        heapq.heappush(events, (at, cert.index, cert.version))

    def read_ari(cert: Cert, now: datetime) -> RenewalWindow | None:
        assert cert.info is not None
        if rng.random() < config.ari_unavailable:
            return None  # unreachable: the persisted moment or the fallback decides
        if rng.random() < config.ari_malformed:
            return RenewalWindow(cert.info.not_before - timedelta(days=1),
                                 cert.info.not_after + timedelta(days=1), cert.info.ari_cert_id)
        return cert.window

    def plan_next(cert: Cert, now: datetime) -> None:
        assert cert.info is not None
        decided = renewal_time(cert.info, cert.renew_before, read_ari(cert, now), cert.moment)
        cert.moment = decided.moment or cert.moment  # persisted on the Secret
        at = max(decided.at, now)
        if cert.failure.waiting(now):
            assert cert.failure.next_attempt is not None
            at = max(at, cert.failure.next_attempt)
        schedule(cert, at)

    for cert in certs:  # a burst on day 0 (the budget must spread it), the rest over weeks
        at = START + timedelta(seconds=cert.index) if rng.random() < config.burst_share \
            else START + timedelta(days=config.onboard_days) * rng.random()
        schedule(cert, at)

    incident_done = False
    while events:
        now, index, version = heapq.heappop(events)
        if now >= end:
            break
        if not incident_done and now >= incident:
            incident_done = True
            for cert in certs:  # the CA asks some certificates to renew at once (revocation)
                if cert.info is not None and rng.random() < config.incident_share:
                    cert.window = RenewalWindow(incident - timedelta(hours=1),
                                                incident, cert.info.ari_cert_id)
                    plan_next(cert, incident)
        cert = certs[index]
        if version != cert.version:
            continue  # superseded
        info = cert.info
        why = "issue"
        if info is not None:
            decided = renewal_time(info, cert.renew_before, read_ari(cert, now), cert.moment)
            cert.moment = decided.moment or cert.moment
            why = str(decided.reason.code)
            if now < decided.at:  # the moment moved (window refreshed): wait for it
                schedule(cert, decided.at)
                continue
        if cert.failure.waiting(now):
            assert cert.failure.next_attempt is not None
            schedule(cert, cert.failure.next_attempt)
            continue
        replaces = info is not None
        hold = client.check(cert, now, replaces)
        if hold is not None:
            holds += 1
            # Waiters on one exhausted limit wake one slot apart (the rate the limit refills
            # at), not all at `until` (a herd that is held again, all but one).
            queued = waiting.get((hold.limit, hold.key, hold.until), 0)
            waiting[(hold.limit, hold.key, hold.until)] = queued + 1
            schedule(cert, hold.until + _slot(config.limits, hold.limit) * queued)
            continue
        orders += 1
        cert.orders += 1
        client.ordered(cert, now, replaces)
        if not ca.new_order(cert.hosts, now, replaces):
            cert.failure = after_failure(cert.failure, now, "refused", 1.0,
                                         info.not_after if info else None)
            schedule(cert, cert.failure.next_attempt or now)
            continue
        if rng.random() < config.order_failure:
            failed_orders += 1
            host = cert.hosts[rng.randrange(len(cert.hosts))]
            ca.authz_failed(host, now)
            client.authz_failed(host, now)
            cert.failure = after_failure(cert.failure, now, "challenge failed",
                                         rng.uniform(*JITTER), info.not_after if info else None)
            assert cert.failure.next_attempt is not None
            schedule(cert, cert.failure.next_attempt)
            continue
        if info is not None:
            cert.renewals += 1
            if now >= info.not_after:
                expired += 1
            fraction = (now - info.not_before) / info.lifetime
            fractions.append(fraction)
            reasons[why] = reasons.get(why, 0) + 1
            if why == "InsideAriWindow":
                by_ari.append(fraction)
            if fraction > 0.9 + 1e-9:
                after_floor += 1
            window = cert.window
            if window is not None and window.start <= now <= window.end and window.end > \
                    window.start:
                q = min(3, int(4 * (now - window.start) / (window.end - window.start)))
                quarters[q] += 1
        ca.issued(cert.hosts, now, replaces)
        client.issued_for(cert, now, replaces)
        serial += 1
        cert.info = CertificateInfo(cert.hosts, now, now + cert.lifetime, f"{serial:x}",
                                    KeyType.ECDSA_P256, f"aki.{serial:x}")
        cert.window = _ca_window(cert.info)
        cert.moment = None  # the old window and moment are dropped with the old certificate
        cert.failure = FailureState()
        plan_next(cert, now)

    expired += sum(1 for c in certs if c.info is not None and c.info.not_after <= end)
    never_issued = sum(1 for c in certs if c.info is None)
    per_cert = [c.orders for c in certs]
    deciles = statistics.quantiles(fractions, n=10) if len(fractions) > 1 else []
    return SimResult(
        certificates=config.certificates, days=config.days, orders=orders,
        orders_per_certificate={"mean": round(statistics.fmean(per_cert), 2),
                                "min": min(per_cert), "max": max(per_cert)},
        renewals=sum(c.renewals for c in certs), failed_orders=failed_orders, holds=holds,
        expired=expired, never_issued=never_issued, limit_breaches=ca.breaches,
        renewal_fraction_earliest=round(min(fractions, default=0.0), 4),
        renewal_fraction_latest=round(max(fractions, default=0.0), 4),
        renewal_fraction_deciles=[round(d, 3) for d in deciles],
        renewal_fraction_deciles_by_ari=[round(d, 3) for d in statistics.quantiles(by_ari, n=10)]
        if len(by_ari) > 1 else [],
        renewals_by_reason=reasons,
        renewals_in_ari_window_quarters=quarters, after_floor=after_floor,
    )


def as_json(result: SimResult) -> dict[str, object]:
    return dict(vars(result))


__all__ = ["SimConfig", "SimResult", "as_json", "simulate"]
