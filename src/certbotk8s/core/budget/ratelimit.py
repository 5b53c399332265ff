"""The CA's rate limits as a budget we check before ordering, so we never spend an order we
know the CA will refuse.

Numbers are Let's Encrypt's (letsencrypt.org/docs/rate-limits, 2025): 50 new certificates per
registered domain per 7 days, 5 per exact set of identifiers per 7 days, 300 new orders per
account per 3 hours, 5 failed authorizations per identifier per account per hour.

Let's Encrypt refills its buckets gradually (token bucket); here every limit is a sliding window
over what we recorded, which is stricter: a window never holds more than the limit, so an order
this module allows is one the CA allows too (as far as our records are complete). Only orders
that send ARI's `replaces` (a renewal from the same CA sharing at least one name,
core.renewal.replaces) are exempt from the new-order limits (orders per account, certificates
per domain and per identifier set), as at Let's Encrypt, and do not use up those budgets
either. Every other order counts.

On top of the CA's limits, every account-wide limit one tenant could use up for everyone is
shared: one namespace may use at most `namespace_share_percent` of the account's new orders
(default half) and at most `namespace_domain_share_percent` of a registered domain's
certificates (default half: 25 of Let's Encrypt's 50 per 7 days), so one team's certificates
under a domain cannot hold every other team under it for a week.

Each check is linear in the records passed (grouped once, never hosts x records).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache

from publicsuffixlist import PublicSuffixList

LIMIT_CERTS_PER_DOMAIN = "certificates-per-registered-domain"
LIMIT_CERTS_PER_SET = "certificates-per-identifier-set"
LIMIT_ORDERS_PER_ACCOUNT = "new-orders-per-account"
LIMIT_FAILED_AUTHZ = "failed-authorizations-per-identifier"
LIMIT_NAMESPACE_SHARE = "namespace-share-of-new-orders"
LIMIT_NAMESPACE_DOMAIN_SHARE = "namespace-share-of-registered-domain"
ALL_LIMITS = (
    LIMIT_CERTS_PER_DOMAIN,
    LIMIT_CERTS_PER_SET,
    LIMIT_ORDERS_PER_ACCOUNT,
    LIMIT_FAILED_AUTHZ,
    LIMIT_NAMESPACE_SHARE,
    LIMIT_NAMESPACE_DOMAIN_SHARE,
)


@dataclass(frozen=True)
class IssuanceRecord:
    """A certificate issued for `hosts` at `at` for `namespace` (its claimant, the source's
    namespace: core.sources.claimants; "" unknown: it counts towards no namespace's share);
    `renewal_with_ari` when its order sent `replaces` (the CA exempts such a renewal from, and
    counts it towards none of, the per-domain and exact-set limits: neither does the budget)."""

    hosts: tuple[str, ...]
    at: datetime
    renewal_with_ari: bool = False
    namespace: str = ""


@dataclass(frozen=True)
class OrderRecord:
    """A new order created with the account at `at`, for `namespace` (the claimant); `exempt`
    when the CA accepted its `replaces` (a renewal: not counted against new-order limits)."""

    at: datetime
    namespace: str = ""
    exempt: bool = False


@dataclass(frozen=True)
class FailedAuthz:
    """An authorization for `identifier` (as named in the order, `*.` allowed) that failed."""

    identifier: str
    at: datetime


@dataclass(frozen=True)
class Limits:
    """How many records a window may hold. Defaults are Let's Encrypt production's."""

    certs_per_domain: int = 50
    certs_per_domain_window: timedelta = timedelta(days=7)
    certs_per_set: int = 5
    certs_per_set_window: timedelta = timedelta(days=7)
    orders_per_account: int = 300
    orders_per_account_window: timedelta = timedelta(hours=3)
    failed_authz_per_identifier: int = 5
    failed_authz_window: timedelta = timedelta(hours=1)
    namespace_share_percent: int = 50  # of orders_per_account one namespace may use
    namespace_domain_share_percent: int = 50  # of certs_per_domain one namespace may use


@dataclass(frozen=True)
class Hold:
    """Do not order before `until`: `limit` (one of the LIMIT_* names) is used up for `key`."""

    limit: str
    key: str
    until: datetime
    message: str


_PSL_LOCK = threading.Lock()


@cache
def _psl_locked() -> PublicSuffixList:
    return PublicSuffixList()


def _psl() -> PublicSuffixList:
    # Parsing the list takes ~0.5 s: make concurrent first callers wait for one parse.
    with _PSL_LOCK:
        return _psl_locked()


def _base_name(host: str) -> str:
    name = host.strip().lower().rstrip(".")
    return name[2:] if name.startswith("*.") else name


@lru_cache(maxsize=65536)  # called for every recorded issuance on every budget check
def registered_domain(host: str) -> str:
    """The registered domain a host counts against: by the public suffix list for names
    (`*.a.example.co.uk` → `example.co.uk`), the address for IPv4, the /64 for IPv6. A name
    that is itself a public suffix counts as itself."""
    name = _base_name(host)
    try:
        address = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return str(_psl().privatesuffix(name) or name)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def identifier_set(hosts: Iterable[str]) -> tuple[str, ...]:
    """The sorted, lower-cased, de-duplicated set of identifiers, as the CA compares them."""
    return tuple(sorted({h.strip().lower().rstrip(".") for h in hosts if h.strip()}))


@lru_cache(maxsize=65536)
def _domains_of(hosts: tuple[str, ...]) -> frozenset[str]:
    return frozenset(registered_domain(h) for h in hosts)


@lru_cache(maxsize=65536)  # every recorded issuance is compared on every budget check
def _set_of(hosts: tuple[str, ...]) -> tuple[str, ...]:
    return identifier_set(hosts)


def _window_hold(
    times: Sequence[datetime], limit: int, window: timedelta, now: datetime
) -> datetime | None:
    """When enough of `times` have left the window for one more to fit, or None if it fits."""
    counted = sorted(t for t in times if t + window > now)
    if len(counted) < limit:
        return None
    if limit <= 0:
        return now + window  # a limit of 0 never opens; report a window from now
    return counted[len(counted) - limit] + window


def check_budget(
    hosts: Sequence[str],
    now: datetime,
    issued: Sequence[IssuanceRecord],
    orders: Sequence[OrderRecord],
    failures: Sequence[FailedAuthz],
    ari_renewal: bool,
    limits: Limits = Limits(),
    namespace: str | None = None,
) -> Hold | None:
    """None when an order for `hosts` fits every limit at `now`, else the Hold that lasts longest
    (its `until` is when every exhausted limit has room again, provided nothing new is recorded).

    `issued`, `orders` and `failures` are what we know was spent (records outside their window
    are ignored, so callers may pass more). `ari_renewal` says the order will send `replaces`:
    it is then exempt from the new-order limits. `namespace`: the claimant's (the source's
    namespace), for its shares of the account's orders and of each registered domain (None: no
    share check).
    """
    holds: list[Hold] = []
    wanted = identifier_set(hosts)

    if not ari_renewal:
        counted_orders = [o for o in orders if not o.exempt]
        until = _window_hold([o.at for o in counted_orders], limits.orders_per_account,
                             limits.orders_per_account_window, now)
        if until is not None:
            holds.append(Hold(
                LIMIT_ORDERS_PER_ACCOUNT, "account", until,
                f"{limits.orders_per_account} new orders per account per "
                f"{_span(limits.orders_per_account_window)} used up"))
        share = namespace_share(limits)
        if namespace is not None and share < limits.orders_per_account:
            until = _window_hold([o.at for o in counted_orders if o.namespace == namespace],
                                 share, limits.orders_per_account_window, now)
            if until is not None:
                holds.append(Hold(
                    LIMIT_NAMESPACE_SHARE, namespace, until,
                    f"namespace {namespace} used its share ({share}) of the account's "
                    f"{limits.orders_per_account} new orders per "
                    f"{_span(limits.orders_per_account_window)}"))

    wanted_bases = {_base_name(h) for h in wanted}
    failed_at: dict[str, list[datetime]] = {}
    for f in failures:
        base = _base_name(f.identifier)
        if base in wanted_bases:
            failed_at.setdefault(base, []).append(f.at)
    for identifier in sorted(failed_at):
        until = _window_hold(
            failed_at[identifier], limits.failed_authz_per_identifier,
            limits.failed_authz_window, now
        )
        if until is not None:
            holds.append(
                Hold(
                    LIMIT_FAILED_AUTHZ,
                    identifier,
                    until,
                    f"{limits.failed_authz_per_identifier} failed authorizations for "
                    f"{identifier} per {_span(limits.failed_authz_window)}",
                )
            )

    if not ari_renewal:
        same_set = [r.at for r in issued
                    if not r.renewal_with_ari and _set_of(tuple(r.hosts)) == wanted]
        until = _window_hold(same_set, limits.certs_per_set, limits.certs_per_set_window, now)
        if until is not None:
            key = ",".join(wanted)
            holds.append(
                Hold(
                    LIMIT_CERTS_PER_SET,
                    key,
                    until,
                    f"{limits.certs_per_set} certificates for exactly {key} per "
                    f"{_span(limits.certs_per_set_window)} used up",
                )
            )

        wanted_domains = {registered_domain(h) for h in wanted}
        per_domain: dict[str, list[datetime]] = {}
        mine: dict[str, list[datetime]] = {}  # the same, for `namespace`'s issuances only
        for r in issued:
            if r.renewal_with_ari:
                continue
            for domain in _domains_of(tuple(r.hosts)) & wanted_domains:
                per_domain.setdefault(domain, []).append(r.at)
                if namespace is not None and r.namespace == namespace:
                    mine.setdefault(domain, []).append(r.at)
        holds += _domain_share_holds(mine, namespace, limits, now)
        for domain in sorted(per_domain):
            until = _window_hold(
                per_domain[domain], limits.certs_per_domain, limits.certs_per_domain_window, now
            )
            if until is not None:
                holds.append(
                    Hold(
                        LIMIT_CERTS_PER_DOMAIN,
                        domain,
                        until,
                        f"{limits.certs_per_domain} certificates for registered "
                        f"domain {domain} per {_span(limits.certs_per_domain_window)} "
                        "used up",
                    )
                )

    return max(holds, key=lambda h: h.until, default=None)


def _domain_share_holds(mine: dict[str, list[datetime]], namespace: str | None,
                        limits: Limits, now: datetime) -> list[Hold]:
    """Holds for the registered domains of which `namespace` used its share (`mine`)."""
    share = namespace_domain_share(limits)
    if namespace is None or share >= limits.certs_per_domain:
        return []
    holds: list[Hold] = []
    for domain in sorted(mine):
        until = _window_hold(mine[domain], share, limits.certs_per_domain_window, now)
        if until is not None:
            holds.append(Hold(
                LIMIT_NAMESPACE_DOMAIN_SHARE, f"{namespace}/{domain}", until,
                f"namespace {namespace} used its share ({share}) of the "
                f"{limits.certs_per_domain} certificates for registered domain {domain} per "
                f"{_span(limits.certs_per_domain_window)}"))
    return holds


def namespace_domain_share(limits: Limits) -> int:
    """How many of a registered domain's certificates one namespace may hold in the window."""
    return max(1, limits.certs_per_domain * limits.namespace_domain_share_percent // 100)


def namespace_share(limits: Limits) -> int:
    """How many of the account's new orders one namespace may hold in the window (>= 1)."""
    return max(1, limits.orders_per_account * limits.namespace_share_percent // 100)


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} days" if days != 1 else "day"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hours" if hours != 1 else "hour"
    return f"{seconds} s"
