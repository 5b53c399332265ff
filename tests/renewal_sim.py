"""A year of a certificate fleet in a fake clock, driven through the code both modes run.

No servers. A model CA issues certificates, answers ARI, fails some challenges, goes down twice
for hours, revokes thousands of certificates at once (its ARI says "renew now"), and enforces
Let's Encrypt's production limits on its own books: `replaces` naming a certificate that shares
a name and is not replaced already makes an order exempt, everything else counts.

The client side is the real code, not a copy of it: `core.renewal.plan.plan` decides (the
chain of checks, the renewal time, the ARI gate), the certificate records are
`app.records.Records` over an in-memory store (the map `ObservedSecret.recorded` holds, joined
by `core.state.observe.with_record`), each issuance is written into them the way
`app.orders.store` writes it (the `issued-7d` history of `core.state.secret_meta`, entries
flagged `/replaces`), `app.budget.RenewalBook` keeps backoff and the budget (ledger in memory),
`core.renewal.lifecycle` says whether an order may go, `core.renewal.after_order` what follows
it, `core.renewal.replaces` whether it sends `replaces`, and the CronJob takes its due work in
`core.renewal.urgency` order.

What the simulation stands in for (the adapters and threads): the informer (each certificate is
planned at its own wake-up, as the WakeSchedule wakes the reconciler), the ARI refresher (one
sequential reader: every certificate at once after a start, a new certificate at once, then
after the CA's Retry-After; a moved window is noticed at that next read), the order runner (a
pool of `workers`; an order is decided again when a worker takes it; running orders finish
across a restart, queued ones are dropped), the CA gate (an order that meets the CA down holds
the rest until the outage ends), and `renew --once` as `run_pass` does it: ARI read only where
the record's Retry-After has passed, `cron_workers` reads and orders at a time, one budget
snapshot per run, the most urgent first, no new order after `--stop-after`.

One shortcut, equivalent by construction: the budget's view of issuances is built (with the
real `RenewalBook.set_issued`) from the records of the certificates on the same registered
domains only, and only for orders that count (an order sending `replaces` never looks at
issuances); `check_budget` looks at nothing else. A CronJob run plans only certificates whose
inputs changed or whose planned renewal has come (plan is pure per Secret).

Used by bench/renewal_year.py (10,000 certificates, a year, JSON) and
tests/unit/test_renewal_year.py (a smaller fleet, in CI).
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.oneshot.run import RENEW_ONCE_WORKERS
from certbotk8s.app.records import Records
from certbotk8s.core.budget import ratelimit
from certbotk8s.core.config.settings import Config, parse_config
from certbotk8s.core.errors import AcmeCaUnavailable, AcmeRateLimited, ChallengeFailed, Problem
from certbotk8s.core.model import (
    CertificateInfo,
    CertificateSpec,
    DesiredCertificate,
    KeyType,
    ObjectRef,
    ObservedSecret,
    RenewalWindow,
    SecretRef,
    SourceKind,
)
from certbotk8s.core.renewal import lifecycle
from certbotk8s.core.renewal.after_order import Backoff, OrderResult, after_order
from certbotk8s.core.renewal.ari_timing import next_read_in
from certbotk8s.core.renewal.plan import Action, ActionKind, plan
from certbotk8s.core.renewal.reasons import ReasonCode
from certbotk8s.core.renewal.replaces import replaced_cert_id
from certbotk8s.core.renewal.urgency import by_urgency
from certbotk8s.core.sources.claimants import claimant
from certbotk8s.core.state import records as rec
from certbotk8s.core.state import secret_meta
from certbotk8s.core.state.observe import with_record
from tests.unit.fakes import FakeLedger, FakeRecordStore

START = datetime(2026, 1, 1, tzinfo=UTC)
ISSUER = "le"
LIFETIMES: tuple[tuple[float, timedelta, str | None], ...] = (
    (0.4, timedelta(days=90), None), (0.4, timedelta(days=45), "tlsserver"),
    (0.2, timedelta(days=6), "shortlived"))
# Renewal reasons that may come before 1/3 of the lifetime: the CA asked, or the spec changed.
EARLY_OK = {ReasonCode.INSIDE_ARI_WINDOW, ReasonCode.HOSTS_CHANGED, ReasonCode.KEY_TYPE_CHANGED,
            ReasonCode.ISSUER_CHANGED, ReasonCode.PROFILE_CHANGED}
CONTROLLER, CRONJOB = "controller", "cronjob"


@dataclass(frozen=True)
class SimConfig:
    certificates: int = 10_000
    days: float = 365
    mode: str = CONTROLLER
    shared_domains: int = 20  # registered domains shared by `shared_share` of the certificates
    shared_share: float = 0.6
    namespaces: int = 40
    host_changes_per_day: float = 5.0  # half add a name, half replace every name
    restart_every: timedelta = timedelta(days=7)  # controller restarts (records kept)
    outages: tuple[tuple[float, float], ...] = ((75.0, 6.0), (260.0, 6.0))  # (day, hours)
    revocation_day: float = 150.0
    revoked: int = 3000  # certificates whose ARI says "renew now" at once
    order_seconds: tuple[float, float] = (15.0, 75.0)
    order_failure: float = 0.02  # a challenge fails
    workers: int = 16  # the controller's --workers default
    retry_after: timedelta = timedelta(hours=6)  # the CA's ARI Retry-After (± 20 %)
    ari_read_seconds: float = 0.15
    cron_every: timedelta = timedelta(hours=12)
    cron_deadline: timedelta = timedelta(seconds=3600)  # activeDeadlineSeconds
    cron_stop_after: timedelta = timedelta(seconds=3000)  # renew --once --stop-after
    cron_workers: int = RENEW_ONCE_WORKERS  # renew --once --workers
    probe_after: timedelta = timedelta(seconds=30)  # the CA gate sees the CA back this late
    seed: int = 1


@dataclass
class Cert:
    index: int
    desired: DesiredCertificate
    lifetime: timedelta
    info: CertificateInfo
    window: RenewalWindow  # what the CA's ARI says for `info` now
    known: RenewalWindow | None = None  # the controller's last ARI answer (in memory)
    hold: ratelimit.Hold | None = None  # the order runner's last hold (in memory)
    busy: bool = False  # queued or running in the controller's pool
    version: int = 0  # wake-ups: only the newest counts
    changed_at: datetime | None = None  # hosts changed then, not yet served
    revoked_at: datetime | None = None  # revoked then, not yet replaced
    quiet_until: datetime | None = None  # CronJob: planned NOTHING until then, inputs unchanged
    ari_next: datetime | None = None  # CronJob: the record's next ARI read (core.state.ari_memory)
    known_for: str = ""  # CronJob: the certificate `known` was read for
    expired: bool = False


@dataclass
class SimResult:
    mode: str
    certificates: int
    days: float
    orders: int = 0
    counted_orders: int = 0
    renewals: int = 0
    failed_orders: int = 0
    outage_failures: int = 0
    expired: int = 0
    early_renewals: int = 0  # before 1/3 of the life, not asked by ARI nor a spec change
    renewals_by_reason: dict[str, int] = field(default_factory=dict)
    peak_counted_orders_per_3h: int = 0
    orders_per_3h_limit: int = 0
    max_domain_counted_per_7d: int = 0
    domain_limit: int = 0
    ca_refusals: int = 0  # limit breaches: orders the CA refused
    holds: int = 0
    holds_ca_would_accept: int = 0
    host_changes: int = 0
    host_changes_never_served: int = 0
    host_changes_served_within_a_day: int = 0
    host_change_hours_max: float = 0.0
    expired_while_host_change_waited: int = 0  # the certificate held ran out meanwhile
    interim_renewals: int = 0  # the names held renewed while a host change waited (budget)
    revoked: int = 0
    revocation_not_replaced: int = 0
    revocation_hours_median: float = 0.0
    revocation_hours_max: float = 0.0
    cron_runs: int = 0
    cron_runs_with_due_work_left: int = 0
    cron_run_seconds_max: float = 0.0
    restarts: int = 0
    seconds: float = 0.0


class ModelCA:
    """Let's Encrypt's production limits on the CA's own books (independent of the client)."""

    def __init__(self, limits: ratelimit.Limits) -> None:
        self.limits = limits
        self.counted_orders: list[datetime] = []
        self.per_domain: dict[str, list[datetime]] = {}
        self.per_set: dict[tuple[str, ...], list[datetime]] = {}
        self.failed: dict[str, list[datetime]] = {}
        self.replaced: set[str] = set()  # CertIDs named in a `replaces` that was issued
        # Counted orders placed and not finalized: each takes one of the certificates a limit
        # has left (the CA finalizes an order only while the domain has room, see `refuses`).
        self.pending: list[tuple[tuple[str, ...], datetime]] = []

    @staticmethod
    def _in(times: list[datetime], window: timedelta, now: datetime) -> int:
        return sum(1 for t in reversed(times) if t + window > now)

    def exempt(self, replaces: CertificateInfo | None, hosts: tuple[str, ...]) -> bool:
        return (replaces is not None and replaces.ari_cert_id not in self.replaced
                and bool(set(replaces.sans) & set(hosts)))

    def refuses(self, hosts: tuple[str, ...], now: datetime, exempt: bool,
                with_pending: bool = False) -> bool:
        """Whether an order placed at `now` is refused. The CA decides when it finalizes the
        order, so orders finalized meanwhile count too (the caller asks at the order's end).
        `with_pending`: asked before the order, counting the orders still running."""
        lim = self.limits
        running = self.pending if with_pending else []
        if any(self._in(self.failed.get(h, []), lim.failed_authz_window, now)
               >= lim.failed_authz_per_identifier for h in hosts):
            return True
        if exempt:
            return False
        if self._in(self.counted_orders, lim.orders_per_account_window, now) \
                >= lim.orders_per_account:
            return True
        same_set = [at for h, at in running if h == hosts]
        if self._in(self.per_set.get(hosts, []) + same_set, lim.certs_per_set_window, now) \
                >= lim.certs_per_set:
            return True
        return any(self._in(self.per_domain.get(d, []) + [at for h, at in running
                                                           if d in _domains(h)],
                            lim.certs_per_domain_window, now)
                   >= lim.certs_per_domain for d in _domains(hosts))

    def issued(self, hosts: tuple[str, ...], now: datetime, exempt: bool,
               replaces: CertificateInfo | None) -> None:
        if exempt:
            assert replaces is not None
            self.replaced.add(replaces.ari_cert_id)
            return
        self.per_set.setdefault(hosts, []).append(now)
        for domain in _domains(hosts):
            self.per_domain.setdefault(domain, []).append(now)


def _domains(hosts: Iterable[str]) -> set[str]:
    return {ratelimit.registered_domain(h) for h in hosts}


def _ca_window(info: CertificateInfo) -> RenewalWindow:
    """Let's Encrypt-like: around 2/3 of the life (1/2 under 10 days), 1/15 of it wide."""
    short = info.lifetime < timedelta(days=10)
    centre = info.not_before + (info.lifetime / 2 if short else info.lifetime * 2 / 3)
    half = info.lifetime / 30
    return RenewalWindow(centre - half, centre + half, info.ari_cert_id)


def _peak(times: list[datetime], window: timedelta) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] + window <= t:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class Simulation:
    def __init__(self, config: SimConfig) -> None:
        self.c = config
        self.rng = random.Random(config.seed)
        self.config: Config = parse_config({"defaultIssuer": ISSUER, "issuers": {
            ISSUER: {"directory": "https://acme.example/dir"}}})
        self.limits = self.config.issuers[ISSUER].rate_limits
        self.ca = ModelCA(self.limits)
        self.store = FakeRecordStore()
        self.ledger = FakeLedger()
        self.records = Records(self.store, save_every=0.0)
        self.book = self._book()
        self.serial = 0
        self.now = START
        self.end = START + timedelta(days=config.days)
        self.result = SimResult(config.mode, config.certificates, config.days,
                                orders_per_3h_limit=self.limits.orders_per_account,
                                domain_limit=self.limits.certs_per_domain)
        self.certs: list[Cert] = []
        self.by_domain: dict[str, set[int]] = {}
        self.by_ref: dict[SecretRef, int] = {}
        self.counted_orders: list[datetime] = []
        self.host_hours: list[float] = []
        self.revocation_hours: list[float] = []
        self.plans: dict[int, dict[object, Action]] = {}
        self._fleet()

    def _book(self) -> RenewalBook:
        book = RenewalBook(self.config, self.records, self.ledger, save_every=0.0,
                           jitter=lambda: self.rng.uniform(0.9, 1.1))
        book.load()
        return book

    # -- the fleet ------------------------------------------------------------------------------

    def _issue_info(self, hosts: tuple[str, ...], lifetime: timedelta,
                    at: datetime) -> CertificateInfo:
        self.serial += 1
        return CertificateInfo(hosts, at, at + lifetime, f"{self.serial:x}", KeyType.ECDSA_P256,
                               f"aki.{self.serial:x}")

    def _fleet(self) -> None:
        c, rng = self.c, self.rng
        for i in range(c.certificates):
            if rng.random() < c.shared_share:
                domain = f"shared{rng.randrange(c.shared_domains)}.com"
            else:
                domain = f"own{i}.org"
            hosts = (f"h{i}.{domain}",) if i % 3 else (f"h{i}.{domain}", f"w{i}.{domain}")
            draw = rng.random()
            lifetime, profile = LIFETIMES[-1][1], LIFETIMES[-1][2]
            for share, life, prof in LIFETIMES:
                if draw < share:
                    lifetime, profile = life, prof
                    break
                draw -= share
            ref = SecretRef(f"ns{i % c.namespaces}", f"c{i}-tls")
            desired = DesiredCertificate(
                ref, CertificateSpec(tuple(sorted(hosts)), ISSUER, profile=profile),
                ObjectRef("networking.k8s.io/v1", "Ingress", ref.namespace, f"c{i}"),
                SourceKind.INGRESS)
            # A fleet in its steady state: each certificate issued some time before the start,
            # as an ARI renewal of its predecessor (flagged in its history, as the CA saw it).
            short = lifetime < timedelta(days=10)
            age = lifetime * rng.uniform(0, 0.5 if short else 2 / 3)
            info = self._issue_info(desired.spec.hosts, lifetime, START - age)
            cert = Cert(i, desired, lifetime, info, _ca_window(info))
            self.certs.append(cert)
            self.by_ref[ref] = i
            for d in _domains(hosts):
                self.by_domain.setdefault(d, set()).add(i)
            self._write_record(cert, desired, info, info.not_before, replaced=True)

    def _write_record(self, cert: Cert, d: DesiredCertificate, info: CertificateInfo,
                      now: datetime, replaced: bool) -> None:
        """What app.orders.store records for a certificate written for `d`."""
        record = self.records.get(d.secret)
        meta = secret_meta.build_secret_metadata(d, info, now)
        values = dict(meta.annotations)
        values[secret_meta.ISSUANCE_HISTORY] = secret_meta.append_history(
            record.get(secret_meta.ISSUANCE_HISTORY), now, now, replaced)
        if replaced:
            values[secret_meta.LAST_ORDER_REPLACED] = "true"
        self.records.replace(d.secret, {
            **values, rec.CLAIMED_SINCE: rec.claim_start(record, d.spec.hosts, now)})

    def plan_one(self, cert: Cert, observed: ObservedSecret | None,
                 window: RenewalWindow | None) -> Action:
        """`core.renewal.plan.plan` for one Secret. Memoised: plan is pure, and a NOTHING whose next
        renewal has not come is what the same inputs give at any earlier-than-that time."""
        assert observed is not None
        key = (cert.desired, observed.certificate, window,
               frozenset(observed.recorded.items()))
        known = self.plans.setdefault(cert.index, {})
        cached = known.get(key)
        if cached is not None and cached.next_renewal is not None \
                and self.now < cached.next_renewal:
            return cached
        ref = cert.desired.secret
        action = plan([cert.desired], {ref: observed}, self.now,
                      {ref: window} if window is not None else {})[0]
        if action.kind is ActionKind.NOTHING:
            if len(known) >= 4:
                known.clear()
            known[key] = action
        return action

    def observed(self, cert: Cert) -> ObservedSecret | None:
        seen = ObservedSecret(cert.desired.secret, True, str(cert.version), cert.info, True)
        return with_record(seen, self.records.get(cert.desired.secret))

    def ca_down(self, at: datetime) -> datetime | None:
        """The end of the CA outage `at` falls in, or None when the CA is up."""
        for day, hours in self.c.outages:
            start = START + timedelta(days=day)
            if start <= at < start + timedelta(hours=hours):
                return start + timedelta(hours=hours)
        return None

    # -- the budget (app.budget, as both modes ask it) -----------------------------------------

    def admit(self, action: Action, observed: ObservedSecret | None, now: datetime,
              window: RenewalWindow | None) -> tuple[Action, ratelimit.Hold | None]:
        """RenewalBook.admit as the controller's order runner asks it: the order to place (a
        held host change may renew the names held instead) and the budget's hold."""
        if not RenewalBook.sends_replaces(action, observed):
            # check_budget only looks at issuances on the same registered domains
            near = set().union(*(self.by_domain.get(d, set())
                                 for d in _domains(action.desired.spec.hosts)))
            snapshot = self.records.snapshot()
            refs = (self.certs[i].desired.secret for i in near)
            self.book.set_issued({ref: snapshot[ref] for ref in refs if ref in snapshot}, now)
        return self.book.admit(action, observed, now, window)

    def count_hold(self, cert: Cert, action: Action, observed: ObservedSecret | None,
                   now: datetime) -> None:
        self.result.holds += 1
        replaces = observed.certificate if (
            observed is not None and RenewalBook.sends_replaces(action, observed)) else None
        hosts = action.desired.spec.hosts
        if not self.ca.refuses(hosts, now, self.ca.exempt(replaces, hosts), with_pending=True):
            self.result.holds_ca_would_accept += 1

    # -- one order (the CA side and what both modes record) ------------------------------------

    def place(self, cert: Cert, action: Action, observed: ObservedSecret | None,
              now: datetime) -> tuple[datetime, bool]:
        """Place the order: (when it ends, whether it sends `replaces`)."""
        d = action.desired
        sends = replaced_cert_id(action.kind is ActionKind.RENEW, d, observed) is not None
        self.book.order_placed(claimant(d), now, sends, d.spec.hosts)
        if not sends:
            self.ca.pending.append((d.spec.hosts, now))
        self.result.orders += 1
        duration = timedelta(seconds=self.rng.uniform(*self.c.order_seconds))
        return now + duration, sends

    def finish(self, cert: Cert, action: Action, observed: ObservedSecret | None,
               placed_at: datetime, now: datetime, sends: bool) -> OrderResult:
        """The CA's side of an order placed at `placed_at` that ends at `now`, and the records
        written (app.orders.store); returns the outcome for core.renewal.after_order."""
        hosts = action.desired.spec.hosts
        replaces = observed.certificate if sends and observed is not None else None
        exempt = self.ca.exempt(replaces, hosts)
        if not sends:
            self.ca.pending.remove((hosts, placed_at))
        if sends and not exempt:  # alreadyReplaced: the code would order again without it
            raise AssertionError(f"{cert.desired.secret}: replaces names a replaced certificate")
        if self.ca_down(placed_at) or self.ca_down(now):
            self.result.outage_failures += 1
            return OrderResult(False, AcmeCaUnavailable("CA unavailable"), outage=True)
        if self.ca.refuses(hosts, placed_at, exempt):
            self.result.ca_refusals += 1
            return OrderResult(False, AcmeRateLimited("rateLimited", None))
        if not exempt:
            self.ca.counted_orders.append(placed_at)
            self.counted_orders.append(placed_at)
            self.result.counted_orders += 1
        if self.rng.random() < self.c.order_failure:
            self.result.failed_orders += 1
            host = hosts[self.rng.randrange(len(hosts))]
            self.ca.failed.setdefault(host, []).append(now)
            return OrderResult(False, ChallengeFailed(host, "http-01", Problem(
                "urn:ietf:params:acme:error:unauthorized")))
        old = cert.info
        info = self._issue_info(hosts, cert.lifetime, now)
        self.ca.issued(hosts, now, exempt, replaces)
        self._write_record(cert, action.desired, info, now, sends)
        self.result.renewals += 1
        code = action.reason.code
        self.result.renewals_by_reason[str(code)] = \
            self.result.renewals_by_reason.get(str(code), 0) + 1
        if now >= old.not_after and not cert.expired:
            cert.expired = True
            self.result.expired += 1
            if cert.changed_at is not None:
                self.result.expired_while_host_change_waited += 1
        if tuple(info.sans) != cert.desired.spec.hosts:
            self.result.interim_renewals += 1
        if (now - old.not_before) < old.lifetime / 3 and code not in EARLY_OK:
            self.result.early_renewals += 1
        if cert.changed_at is not None and tuple(info.sans) == cert.desired.spec.hosts:
            self.host_hours.append((now - cert.changed_at) / timedelta(hours=1))
            cert.changed_at = None
        if cert.revoked_at is not None:
            self.revocation_hours.append((now - cert.revoked_at) / timedelta(hours=1))
            cert.revoked_at = None
        cert.info, cert.window, cert.known, cert.hold = info, _ca_window(info), None, None
        return OrderResult(True)

    def follow_up(self, cert: Cert, action: Action, observed: ObservedSecret | None,
                  result: OrderResult, now: datetime, can_keep: bool = False) -> None:
        """core.renewal.after_order's decision carried out as app.orders.record_follow_up does."""
        follow = after_order(replace(result, placed=True, can_keep=can_keep))
        ref = cert.desired.secret
        hosts = action.desired.spec.hosts
        if result.ok:  # app.orders.record_follow_up: the issuance spends the budget at once
            sends = RenewalBook.sends_replaces(action, observed)
            self.book.issued(claimant(action.desired), hosts, now, exempt=sends)
        else:
            self.book.order_ended(claimant(action.desired), hosts)
        if follow.failed_authz:
            self.book.authz_failed(follow.failed_authz, now)
        if follow.backoff is Backoff.CLEAR:
            self.book.succeeded(ref)
        elif follow.backoff is Backoff.COUNT:
            self.book.failed(ref, observed, now, str(result.error), cert.desired.spec)
        cert.quiet_until = None

    # -- events of the world --------------------------------------------------------------------

    def change_hosts(self, cert: Cert, now: datetime) -> None:
        spec = cert.desired.spec
        domain = ratelimit.registered_domain(spec.hosts[0])
        fresh = f"n{self.rng.randrange(10**9)}.{domain}"
        hosts = (*spec.hosts, fresh) if self.rng.random() < 0.5 else (fresh,)
        cert.desired = replace(cert.desired, spec=replace(spec, hosts=tuple(sorted(hosts))))
        if cert.changed_at is None:
            cert.changed_at = now
        cert.quiet_until = None
        self.result.host_changes += 1

    def revoke(self, now: datetime) -> list[Cert]:
        chosen = self.rng.sample(self.certs, min(self.c.revoked, len(self.certs)))
        for cert in chosen:
            cert.window = RenewalWindow(now - timedelta(hours=1), now, cert.info.ari_cert_id)
            cert.revoked_at = now
            cert.quiet_until = None
        self.result.revoked = len(chosen)
        return chosen

    def world_events(self) -> list[tuple[datetime, str]]:
        c, rng = self.c, self.rng
        events: list[tuple[datetime, str]] = []
        t = START
        while c.host_changes_per_day > 0:
            t += timedelta(days=rng.expovariate(c.host_changes_per_day))
            if t >= self.end:
                break
            events.append((t, "hosts"))
        if c.revocation_day < c.days:
            events.append((START + timedelta(days=c.revocation_day), "revoke"))
        return events

    # -- the report -----------------------------------------------------------------------------

    def report(self) -> SimResult:
        r = self.result
        for cert in self.certs:
            if cert.info.not_after <= self.end and not cert.expired:
                cert.expired = True
                r.expired += 1
                if cert.changed_at is not None:
                    r.expired_while_host_change_waited += 1
        r.peak_counted_orders_per_3h = _peak(self.counted_orders,
                                             self.limits.orders_per_account_window)
        r.max_domain_counted_per_7d = max(
            (_peak(times, self.limits.certs_per_domain_window)
             for times in self.ca.per_domain.values()), default=0)
        pending = [c for c in self.certs if c.changed_at is not None]
        r.host_changes_never_served = len(pending)
        r.host_changes_served_within_a_day = sum(1 for h in self.host_hours if h <= 24)
        r.host_change_hours_max = round(max(
            [*self.host_hours, *((self.end - c.changed_at) / timedelta(hours=1)
                                 for c in pending if c.changed_at is not None)], default=0.0), 2)
        r.revocation_not_replaced = sum(1 for c in self.certs if c.revoked_at is not None)
        hours = self.revocation_hours
        r.revocation_hours_median = round(statistics.median(hours), 2) if hours else 0.0
        r.revocation_hours_max = round(max(hours, default=0.0), 2)
        return r


class ControllerSim(Simulation):
    """`certbotk8s controller`: wake-ups, the ARI refresher, a bounded order pool."""

    def __init__(self, config: SimConfig) -> None:
        super().__init__(config)
        self.heap: list[tuple[datetime, int, str, int, int]] = []
        self.seq = 0
        self.queue: deque[int] = deque()
        self.free = config.workers
        self.reader_free = START  # the ARI refresher reads one certificate after another
        self.gate_until: datetime | None = None  # the CA gate: orders held until then
        self.gate_waiters: set[int] = set()
        self.running: dict[int, tuple[Action, ObservedSecret | None, datetime, bool]] = {}

    def push(self, at: datetime, kind: str, index: int = -1, version: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (at, self.seq, kind, index, version))

    def wake(self, cert: Cert, at: datetime) -> None:
        cert.version += 1
        self.push(at, "wake", cert.index, cert.version)

    def ari_read(self, cert: Cert, at: datetime) -> None:
        """Ask for `cert`'s window at `at`: the refresher reads one after another."""
        if at > self.now:
            self.push(at, "ari-later", cert.index)
            return
        slot = max(self.now, self.reader_free)
        self.reader_free = slot + timedelta(seconds=self.c.ari_read_seconds)
        self.push(slot, "ari", cert.index)

    def start(self) -> None:
        """Start or restart: memory gone, records and ledger read back, everything planned and
        every ARI window asked again."""
        self.records = Records(self.store, save_every=0.0)
        self.records.load()
        self.book = self._book()
        self.queue.clear()
        self.gate_until, self.gate_waiters = None, set()
        for cert in self.certs:
            cert.known, cert.hold = None, None
            if cert.index not in self.running:
                cert.busy = False
            self.wake(cert, self.now)
            self.ari_read(cert, self.now)

    def run(self) -> SimResult:
        c = self.c
        for at, what in self.world_events():
            self.push(at, what)
        restart = START + c.restart_every
        while restart < self.end:
            self.push(restart, "restart")
            restart += c.restart_every
        for day, hours in c.outages:
            self.push(START + timedelta(days=day, hours=hours) + c.probe_after, "ca-back")
        self.start()
        while self.heap:
            at, _, kind, index, version = heapq.heappop(self.heap)
            if at >= self.end:
                break
            self.now = at
            if kind == "wake":
                cert = self.certs[index]
                if version == cert.version:
                    self.reconcile(cert)
            elif kind == "ari":
                self.read_window(self.certs[index])
            elif kind == "ari-later":
                self.ari_read(self.certs[index], at)
            elif kind == "done":
                self.order_done(index)
            elif kind == "hosts":
                cert = self.rng.choice(self.certs)
                self.change_hosts(cert, at)
                self.wake(cert, at)  # the informer's event
            elif kind == "revoke":
                for cert in self.revoke(at):  # seen at each one's next read of its window
                    self.ari_read(cert, at + self.c.retry_after * self.rng.uniform(0, 1.2))
            elif kind == "restart":
                self.result.restarts += 1
                self.start()
            elif kind == "ca-back":
                self.gate_until = None
                for i in sorted(self.gate_waiters):
                    self.wake(self.certs[i], at)
                self.gate_waiters = set()
        return self.report()

    def read_window(self, cert: Cert) -> None:
        """The ARI refresher reads this certificate's window; during an outage it gets no
        answer and asks again when the CA is back."""
        if self.now >= cert.info.not_after:
            return  # core.renewal.ari_timing.worth_reading
        back = self.ca_down(self.now)
        if back is not None:
            self.ari_read(cert, back)
            return
        # Reads in between change nothing (a window stays until the CA moves it, which the
        # refresher sees at the next read: within one Retry-After, see `run`).
        changed = cert.known != cert.window
        cert.known = cert.window
        if changed:
            self.wake(cert, self.now)

    def reconcile(self, cert: Cert) -> None:
        """app.controller.reconciler.Reconciler._handle for one certificate."""
        if cert.busy:
            return
        ref = cert.desired.secret
        observed = self.observed(cert)
        action = self.plan_one(cert, observed, cert.known)
        if action.kind in (ActionKind.NOTHING, ActionKind.REPAIR):
            assert action.next_renewal is not None
            if action.annotations:
                self.records.update(ref, dict(action.annotations))
            self.wake(cert, action.next_renewal)
            return
        down = (lifecycle.ServiceDown("CaUnavailable", "the CA does not answer"),) \
            if self.gate_until is not None else ()
        found = lifecycle.waits(lifecycle.OrderFacts(
            ref, failure=self.book.failure_state(ref, observed, self.now, spec=cert.desired.spec),
            hold=cert.hold,
            down=down), self.now)
        wake = lifecycle.wake_at(found)
        if wake is not None:
            self.wake(cert, wake)
        if not found:
            self.submit(cert)
        elif found[0].kind is lifecycle.WaitKind.CA_DOWN:
            self.gate_waiters.add(cert.index)

    def submit(self, cert: Cert) -> None:
        cert.busy = True
        if self.free > 0:
            self.free -= 1
            self.take(cert)
        else:
            self.queue.append(cert.index)

    def take(self, cert: Cert) -> None:
        """app.controller.order_runner.OrderRunner._order: decided again on the Secret as it
        is now."""
        ref = cert.desired.secret
        observed = self.observed(cert)
        fresh = self.plan_one(cert, observed, cert.known)
        due = fresh.kind in (ActionKind.ISSUE, ActionKind.RENEW)
        hold = None
        if due:
            fresh, hold = self.admit(fresh, observed, self.now, cert.known)
        down = (lifecycle.ServiceDown("CaUnavailable", "the CA does not answer"),) \
            if self.gate_until is not None else ()
        wait = lifecycle.why_wait(lifecycle.OrderFacts(
            ref, failure=self.book.failure_state(ref, observed, self.now,
                                                 spec=fresh.desired.spec),
            hold=hold,
            down=down, due=due), self.now)
        if wait is None:
            cert.hold = None
            ends, sends = self.place(cert, fresh, observed, self.now)
            self.running[cert.index] = (fresh, observed, self.now, sends)
            self.push(ends, "done", cert.index)
            return
        if wait.kind is lifecycle.WaitKind.RATE_LIMIT:
            assert hold is not None
            cert.hold = hold
            self.count_hold(cert, fresh, observed, self.now)
        self.release(cert)
        self.wake(cert, self.now)  # the job's end wakes the loop

    def release(self, cert: Cert) -> None:
        cert.busy = False
        while self.queue:
            nxt = self.certs[self.queue.popleft()]
            if nxt.busy:
                self.take(nxt)
                return
        self.free += 1

    def order_done(self, index: int) -> None:
        cert = self.certs[index]
        action, observed, placed_at, sends = self.running.pop(index)
        result = self.finish(cert, action, observed, placed_at, self.now, sends)
        if result.outage and self.gate_until is None:
            self.gate_until = self.ca_down(self.now) or self.ca_down(placed_at)
        if result.outage:
            self.gate_waiters.add(index)
        self.follow_up(cert, action, observed, result, self.now, can_keep=True)
        if result.ok:
            self.ari_read(cert, self.now)  # a new certificate: its window is asked at once
        self.release(cert)
        self.wake(cert, self.now)


class CronJobSim(Simulation):
    """`certbotk8s renew --once` as a CronJob: app.oneshot.run.run_pass every `cron_every`."""

    def run(self) -> SimResult:
        c = self.c
        world = sorted(self.world_events())
        at = START + timedelta(minutes=23)
        while at < self.end:
            while world and world[0][0] <= at:
                when, what = world.pop(0)
                if what == "hosts":
                    self.change_hosts(self.rng.choice(self.certs), when)
                else:
                    self.revoke(when)
            self.one_run(at)
            at += c.cron_every
        return self.report()

    def one_run(self, started: datetime) -> None:
        """One `renew --once` run as app.oneshot.run.run_pass does it: the survey reads the ARI
        windows whose record says the CA's Retry-After has passed (core.state.ari_memory),
        `cron_workers` at a time; then the due work most urgent first, `cron_workers` orders at
        a time, no new order after `cron_stop_after` (the rest is deferred to the next run)."""
        c, r = self.c, self.result
        r.cron_runs += 1
        stop_at = started + c.cron_stop_after
        self.records = Records(self.store, save_every=0.0)
        self.records.load()
        self.book = self._book()
        now = started
        down = self.ca_down(now) is not None
        ari: dict[SecretRef, RenewalWindow] = {}
        reads = 0
        for cert in self.certs:
            if now >= cert.info.not_after:
                continue  # expired: due anyway, not asked
            ref = cert.desired.secret
            if (cert.known is not None and cert.known_for == cert.info.ari_cert_id
                    and cert.ari_next is not None and now < cert.ari_next):
                ari[ref] = cert.known
                continue
            reads += 1
            if not down:
                retry_after = c.retry_after.total_seconds() * self.rng.uniform(0.8, 1.2)
                if cert.known != cert.window:
                    cert.quiet_until = None  # a moved window is a changed input: planned again
                cert.known, cert.known_for = cert.window, cert.info.ari_cert_id
                cert.ari_next = now + next_read_in(cert.info, retry_after)
                ari[ref] = cert.window
        now += timedelta(seconds=c.ari_read_seconds * math.ceil(reads / c.cron_workers))
        planned = [cert for cert in self.certs
                   if cert.quiet_until is None or cert.quiet_until <= now]
        observed = {cert.desired.secret: self.observed(cert) for cert in planned}
        actions = plan([cert.desired for cert in planned], observed, now,
                       {ref: ari[ref] for ref in observed if ref in ari})
        self.book.set_issued(self.records.snapshot(), now)  # once per run, as run_pass does
        free = [now] * c.cron_workers  # when each worker can take the next certificate
        running: list[tuple[datetime, int, Cert, Action, ObservedSecret | None, datetime,
                            bool]] = []
        left = False
        last = now

        def finish_until(t: datetime) -> None:
            nonlocal down, last
            while running and running[0][0] <= t:
                ends, _, cert, action, seen, placed_at, sends = heapq.heappop(running)
                result = self.finish(cert, action, seen, placed_at, ends, sends)
                if result.outage:
                    down = True  # app.oneshot.pass_outages: held for the rest of the run
                self.follow_up(cert, action, seen, result, ends)
                last = max(last, ends)

        for action in by_urgency(actions, observed, now, ari):
            cert = self.certs[self.by_ref[action.desired.secret]]
            seen = observed[action.desired.secret]
            if action.kind is ActionKind.NOTHING:
                assert action.next_renewal is not None
                if action.annotations:
                    self.records.update(action.desired.secret, dict(action.annotations))
                cert.quiet_until = action.next_renewal
                continue
            if action.kind not in (ActionKind.ISSUE, ActionKind.RENEW):
                continue
            at = heapq.heappop(free)
            finish_until(at)
            if at >= stop_at:  # --stop-after: deferred to the next run
                left = True
                heapq.heappush(free, at)
                break
            ref = action.desired.secret
            action, hold = self.book.admit(action, seen, at, ari.get(ref))
            wait = lifecycle.why_wait(lifecycle.OrderFacts(
                ref, failure=self.book.failure_state(ref, seen, at, spec=action.desired.spec),
                hold=hold,
                down=(lifecycle.ServiceDown("CaUnavailable", "the CA does not answer"),)
                if down else ()), at)
            if wait is not None:
                if wait.kind is lifecycle.WaitKind.RATE_LIMIT:
                    self.count_hold(cert, action, seen, at)
                heapq.heappush(free, at)  # no time spent
                continue
            ends, sends = self.place(cert, action, seen, at)
            assert ends <= started + c.cron_deadline, "an order outlived the Job's deadline"
            heapq.heappush(running, (ends, cert.index, cert, action, seen, at, sends))
            heapq.heappush(free, ends)
        finish_until(datetime.max.replace(tzinfo=UTC))
        if left:
            r.cron_runs_with_due_work_left += 1
        r.cron_run_seconds_max = max(r.cron_run_seconds_max, (last - started).total_seconds())


def simulate(config: SimConfig) -> SimResult:
    sim: Simulation = CronJobSim(config) if config.mode == CRONJOB else ControllerSim(config)
    assert isinstance(sim, (ControllerSim, CronJobSim))
    return sim.run()


def as_json(result: SimResult) -> dict[str, object]:
    return dict(vars(result))


__all__ = ["CONTROLLER", "CRONJOB", "SimConfig", "SimResult", "as_json", "simulate"]
