"""Rate-limit budget (core/budget/ratelimit.py) and the issuance history kept on Secrets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certbotk8s.core.budget.ratelimit import (
    LIMIT_CERTS_PER_DOMAIN,
    LIMIT_CERTS_PER_SET,
    LIMIT_FAILED_AUTHZ,
    LIMIT_NAMESPACE_DOMAIN_SHARE,
    LIMIT_NAMESPACE_SHARE,
    LIMIT_ORDERS_PER_ACCOUNT,
    FailedAuthz,
    Hold,
    IssuanceRecord,
    Limits,
    OrderRecord,
    check_budget,
    identifier_set,
    registered_domain,
)
from certbotk8s.core.state import secret_meta

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def issued(*hosts: str, ago: timedelta = timedelta(hours=1), ari: bool = False
           ) -> IssuanceRecord:
    return IssuanceRecord(hosts=hosts, at=NOW - ago, renewal_with_ari=ari)


def check(hosts: Sequence[str], issued: Sequence[IssuanceRecord] = (),
          orders: Sequence[OrderRecord] = (), failures: Sequence[FailedAuthz] = (),
          ari: bool = False) -> Hold | None:
    return check_budget(hosts, NOW, issued, orders, failures, ari)


def distinct(n: int, domain: str = "example.com", start: timedelta = timedelta(hours=1)
             ) -> list[IssuanceRecord]:
    """n certificates for different hosts of `domain`, the oldest `start + n-1 minutes` ago."""
    return [issued(f"h{i}.{domain}", ago=start + timedelta(minutes=i)) for i in range(n)]


# --- certificates per registered domain ---------------------------------------------------


def test_per_domain_limit_triggers_at_fifty_not_below() -> None:
    assert check(["new.example.com"], issued=distinct(49)) is None
    hold = check(["new.example.com"], issued=distinct(50))
    assert hold is not None
    assert (hold.limit, hold.key) == (LIMIT_CERTS_PER_DOMAIN, "example.com")
    # when the oldest counted record (index 49: 1 h 49 min ago) leaves the window
    assert hold.until == NOW - timedelta(hours=1, minutes=49) + WEEK
    assert "example.com" in hold.message


def test_per_domain_until_when_more_than_the_limit_are_counted() -> None:
    # 52 in the window: three must leave before one more fits.
    records = distinct(52)
    hold = check(["new.example.com"], issued=records)
    assert hold is not None
    oldest_first = sorted(r.at for r in records)
    assert hold.until == oldest_first[2] + WEEK


def test_per_domain_ignores_records_outside_the_window_and_other_domains() -> None:
    old = distinct(50, start=WEEK)  # exactly 7 days old and older: out of the window
    others = distinct(50, domain="example.org")
    assert check(["new.example.com"], issued=old + others) is None
    assert check(["new.example.com"], issued=distinct(49) + old) is None


def test_per_domain_counts_a_certificate_once_per_registered_domain() -> None:
    # 50 certificates each naming two hosts of example.com: 50, not 100.
    records = [issued(f"a{i}.example.com", f"b{i}.example.com") for i in range(49)]
    assert check(["new.example.com"], issued=records) is None


def test_registered_domain_groups_by_public_suffix_and_wildcards() -> None:
    assert registered_domain("a.example.co.uk") == "example.co.uk"
    assert registered_domain("b.example.co.uk") == "example.co.uk"
    assert registered_domain("*.Example.COM.") == "example.com"
    assert registered_domain("deep.a.b.example.com") == "example.com"
    assert registered_domain("co.uk") == "co.uk"  # a public suffix counts as itself
    assert registered_domain("192.0.2.7") == "192.0.2.7"
    assert registered_domain("2001:db8::1") == "2001:db8::/64"

    records = [issued(f"a{i}.example.co.uk") for i in range(25)]
    records += [issued(f"b{i}.example.co.uk") for i in range(24)]
    records += [issued("*.example.co.uk")]
    hold = check(["c.example.co.uk"], issued=records)
    assert hold is not None and hold.key == "example.co.uk"
    assert check(["c.other.co.uk"], issued=records) is None
    hold = check(["*.example.co.uk"], issued=records)
    assert hold is not None and hold.limit == LIMIT_CERTS_PER_DOMAIN


def test_per_domain_reports_each_registered_domain_of_the_order() -> None:
    hold = check(["www.example.org", "www.example.com"], issued=distinct(50))
    assert hold is not None and hold.key == "example.com"


# --- certificates per exact set of identifiers --------------------------------------------


def test_identical_set_limit_triggers_at_five_not_below() -> None:
    four = [issued("b.example.com", "A.example.com", ago=timedelta(days=d)) for d in (1, 2, 3, 4)]
    assert check(["a.example.com", "b.example.com"], issued=four) is None
    five = [*four, issued("a.example.com", "b.example.com", ago=timedelta(days=6))]
    hold = check(["b.example.com", "a.example.com"], issued=five)
    assert hold is not None
    assert (hold.limit, hold.key) == (LIMIT_CERTS_PER_SET, "a.example.com,b.example.com")
    assert hold.until == NOW - timedelta(days=6) + WEEK


def test_identical_set_is_exact() -> None:
    five = [issued("a.example.com", "b.example.com") for _ in range(5)]
    assert check(["a.example.com"], issued=five) is None
    assert check(["a.example.com", "b.example.com", "c.example.com"], issued=five) is None
    assert check(["*.example.com"], issued=[issued("example.com") for _ in range(5)]) is None
    assert identifier_set(["B.example.com", "a.example.com.", "a.example.com"]) == (
        "a.example.com", "b.example.com")


# --- ARI exemption ------------------------------------------------------------------------


def test_ari_renewal_is_exempt_from_both_certificate_limits() -> None:
    records = distinct(50) + [issued("www.example.com") for _ in range(5)]
    assert check(["www.example.com"], issued=records) is not None
    assert check(["www.example.com"], issued=records, ari=True) is None


def test_ari_renewals_do_not_use_up_the_domain_budget() -> None:
    records = [*distinct(49), issued("x.example.com", ari=True)]
    assert check(["new.example.com"], issued=records) is None


def test_ari_renewal_is_exempt_from_new_orders_but_not_failed_authorizations() -> None:
    orders = [OrderRecord(NOW - timedelta(seconds=30 * i)) for i in range(300)]
    assert check(["www.example.com"], orders=orders, ari=True) is None
    hold = check(["www.example.com"], orders=orders)
    assert hold is not None and hold.limit == LIMIT_ORDERS_PER_ACCOUNT
    failures = [FailedAuthz("www.example.com", NOW - timedelta(minutes=i)) for i in range(5)]
    hold = check(["www.example.com"], failures=failures, ari=True)
    assert hold is not None and hold.limit == LIMIT_FAILED_AUTHZ


# --- new orders per account ---------------------------------------------------------------


def test_orders_limit_triggers_at_three_hundred_not_below() -> None:
    orders = [OrderRecord(NOW - timedelta(seconds=30 * i)) for i in range(300)]
    assert check(["a.example.com"], orders=orders[:299]) is None
    hold = check(["a.example.com"], orders=orders)
    assert hold is not None
    assert (hold.limit, hold.key) == (LIMIT_ORDERS_PER_ACCOUNT, "account")
    assert hold.until == NOW - timedelta(seconds=30 * 299) + timedelta(hours=3)


# --- failed authorizations per identifier -------------------------------------------------


def test_failed_authz_limit_triggers_at_five_not_below_per_identifier() -> None:
    fails = [FailedAuthz("a.example.com", NOW - timedelta(minutes=10 * i)) for i in range(5)]
    assert check(["a.example.com"], failures=fails[:4]) is None
    assert check(["b.example.com"], failures=fails) is None
    hold = check(["b.example.com", "A.example.com"], failures=fails)
    assert hold is not None
    assert (hold.limit, hold.key) == (LIMIT_FAILED_AUTHZ, "a.example.com")
    assert hold.until == NOW - timedelta(minutes=40) + timedelta(hours=1)


def test_failed_authz_for_a_wildcard_counts_for_its_base_name() -> None:
    fails = [FailedAuthz("example.com", NOW - timedelta(minutes=i)) for i in range(5)]
    hold = check(["*.example.com"], failures=fails)
    assert hold is not None and hold.key == "example.com"


def test_the_longest_hold_wins() -> None:
    orders = [OrderRecord(NOW - timedelta(minutes=1)) for _ in range(300)]
    hold = check(["new.example.com"], issued=distinct(50), orders=orders)
    assert hold is not None and hold.limit == LIMIT_CERTS_PER_DOMAIN


def test_custom_limits() -> None:
    limits = Limits(orders_per_account=2, orders_per_account_window=timedelta(minutes=5))
    orders = [OrderRecord(NOW - timedelta(minutes=1)), OrderRecord(NOW - timedelta(minutes=4))]
    hold = check_budget(["a.example.com"], NOW, [], orders, [], False, limits)
    assert hold is not None and hold.until == NOW + timedelta(minutes=1)
    assert hold.message == "2 new orders per account per 300 s used up"


@given(ages=st.lists(st.integers(min_value=0, max_value=4 * 3600), max_size=12),
       limit=st.integers(min_value=1, max_value=6))
def test_a_hold_is_exactly_when_the_window_is_full_and_ends_when_it_has_room(
        ages: list[int], limit: int) -> None:
    limits = Limits(orders_per_account=limit)
    orders = [OrderRecord(NOW - timedelta(seconds=a)) for a in ages]
    window = limits.orders_per_account_window

    def count(at: datetime) -> int:
        return sum(1 for o in orders if at - window < o.at <= at)

    hold = check_budget(["a.example.com"], NOW, [], orders, [], False, limits)
    assert (hold is not None) == (count(NOW) >= limit)
    if hold is not None:
        assert hold.until > NOW
        assert count(hold.until) < limit  # room at `until`
        assert count(hold.until - timedelta(seconds=1)) >= limit  # and not a second earlier
        assert check_budget(["a.example.com"], hold.until, [], orders, [], False, limits) is None


# --- issuance history on Secrets ----------------------------------------------------------


def test_append_history_starts_appends_and_prunes() -> None:
    first = secret_meta.append_history(None, NOW - timedelta(days=8), NOW - timedelta(days=8))
    assert first == "2025-05-24T12:00:00Z"
    second = secret_meta.append_history(first, NOW - timedelta(days=3), NOW - timedelta(days=3))
    assert second == "2025-05-24T12:00:00Z,2025-05-29T12:00:00Z"
    third = secret_meta.append_history(second, NOW, NOW)
    assert third == "2025-05-29T12:00:00Z,2025-06-01T12:00:00Z"  # 8 days old: pruned


def test_append_history_drops_garbage_and_sorts() -> None:
    text = secret_meta.append_history("junk,2025-05-31T00:00:00Z,,", NOW - timedelta(days=2), NOW)
    assert text == "2025-05-30T12:00:00Z,2025-05-31T00:00:00Z"


def test_two_issuances_in_one_second_are_two_entries() -> None:
    once = secret_meta.append_history(None, NOW, NOW)
    twice = secret_meta.append_history(once, NOW.replace(microsecond=500_000), NOW)
    assert twice == "2025-06-01T12:00:00Z,2025-06-01T12:00:00Z"
    records = secret_meta.issuance_records(
        {secret_meta.HOSTS: "a.example.com", secret_meta.ISSUANCE_HISTORY: twice}, NOW)
    assert len(records) == 2


def test_append_history_caps_at_sixty_newest() -> None:
    text: str | None = None
    for i in range(75):
        text = secret_meta.append_history(text, NOW + timedelta(minutes=i), NOW)
    assert text is not None
    times = text.split(",")
    assert len(times) == secret_meta.HISTORY_MAX_ENTRIES == 60
    assert times[0] == secret_meta.format_time(NOW + timedelta(minutes=15))
    assert times[-1] == secret_meta.format_time(NOW + timedelta(minutes=74))


@given(st.lists(st.integers(min_value=0, max_value=20 * 86400), max_size=80))
def test_history_stays_bounded_and_recent(offsets: list[int]) -> None:
    text: str | None = None
    for offset in sorted(offsets):
        at = NOW + timedelta(seconds=offset)
        text = secret_meta.append_history(text, at, at)
    if text is None:
        return
    times = [secret_meta.parse_time(t) for t in text.split(",")]
    latest = NOW + timedelta(seconds=max(offsets))
    assert 1 <= len(times) <= 60
    assert all(t is not None and latest - WEEK < t <= latest for t in times)
    assert times == sorted(times)  # type: ignore[type-var]


def test_issuance_records_from_annotations() -> None:
    annotations = {
        secret_meta.HOSTS: "b.example.com,a.example.com",
        secret_meta.ISSUANCE_HISTORY: "2025-05-20T00:00:00Z,2025-05-30T00:00:00Z,"
                                      "2025-06-01T00:00:00Z",
        secret_meta.LAST_ORDER_REPLACED: "true",
    }
    records = secret_meta.issuance_records(annotations, NOW)
    assert records == [
        IssuanceRecord(("a.example.com", "b.example.com"),
                       datetime(2025, 5, 30, tzinfo=UTC) + SECOND, renewal_with_ari=False),
        IssuanceRecord(("a.example.com", "b.example.com"),
                       datetime(2025, 6, 1, tzinfo=UTC) + SECOND, renewal_with_ari=True),
    ]
    annotations[secret_meta.LAST_ORDER_REPLACED] = "false"
    assert not any(r.renewal_with_ari for r in secret_meta.issuance_records(annotations, NOW))


def test_issuance_records_fall_back_to_issued_at_and_need_hosts() -> None:
    annotations = {secret_meta.HOSTS: "a.example.com",
                   secret_meta.ISSUED_AT: "2025-05-31T00:00:00Z"}
    assert secret_meta.issuance_records(annotations, NOW) == [
        IssuanceRecord(("a.example.com",), datetime(2025, 5, 31, tzinfo=UTC) + SECOND, False)]
    annotations[secret_meta.ISSUED_AT] = "2025-05-01T00:00:00Z"
    assert secret_meta.issuance_records(annotations, NOW) == []
    assert secret_meta.issuance_records({secret_meta.ISSUED_AT: "2025-05-31T00:00:00Z"},
                                        NOW) == []


@pytest.mark.parametrize("count, held", [(4, False), (5, True)])
def test_secret_history_feeds_the_identical_set_limit(count: int, held: bool) -> None:
    text: str | None = None
    for i in range(count):
        text = secret_meta.append_history(text, NOW - timedelta(days=i), NOW)
    assert text is not None
    records = secret_meta.issuance_records(
        {secret_meta.HOSTS: "www.example.com", secret_meta.ISSUANCE_HISTORY: text}, NOW)
    hold = check(["www.example.com"], issued=records)
    assert (hold is not None) == held


def test_exempt_orders_do_not_count_and_others_do() -> None:
    exempt = [OrderRecord(NOW - timedelta(seconds=i), "a", exempt=True) for i in range(300)]
    assert check(["x.example.com"], orders=exempt) is None
    counted = [OrderRecord(NOW - timedelta(seconds=i), "a") for i in range(300)]
    assert check(["x.example.com"], orders=exempt + counted) is not None


def test_one_namespace_gets_at_most_its_share_of_the_account_orders() -> None:
    mine = [OrderRecord(NOW - timedelta(minutes=1, seconds=i), "tenant-a") for i in range(150)]
    hold = check_budget(["x.example.com"], NOW, [], mine, [], False, namespace="tenant-a")
    assert hold is not None and (hold.limit, hold.key) == (LIMIT_NAMESPACE_SHARE, "tenant-a")
    assert hold.until == NOW - timedelta(minutes=1, seconds=149) + timedelta(hours=3)
    # another namespace still has room; a smaller configured share holds earlier
    assert check_budget(["y.example.com"], NOW, [], mine, [], False, namespace="b") is None
    limits = Limits(namespace_share_percent=10)
    assert check_budget(["y.example.com"], NOW, [], mine[:30], [], False, limits,
                        namespace="tenant-a") is not None
    assert check_budget(["y.example.com"], NOW, [], mine[:29], [], False, limits,
                        namespace="tenant-a") is None


def test_failed_authorizations_are_counted_per_identifier_only() -> None:
    failures = [FailedAuthz("bad.example.com", NOW - timedelta(minutes=i)) for i in range(5)]
    assert check(["good.example.com", "other.example.com"], failures=failures) is None
    hold = check(["good.example.com", "bad.example.com"], failures=failures)
    assert hold is not None and (hold.limit, hold.key) == (LIMIT_FAILED_AUTHZ, "bad.example.com")


def test_one_namespace_gets_at_most_its_share_of_a_registered_domains_certificates() -> None:
    """Finding 3: 50 certificates per registered domain per week are shared by every namespace
    under it; one namespace may use at most its share (default half), so another team under
    the same domain still gets certificates."""
    mine = [IssuanceRecord((f"h{i}.example.com",), NOW - timedelta(days=1, minutes=i),
                           namespace="tenant-a") for i in range(25)]
    hold = check_budget(["x.example.com"], NOW, mine, [], [], False, namespace="tenant-a")
    assert hold is not None and hold.limit == LIMIT_NAMESPACE_DOMAIN_SHARE
    assert hold.key == "tenant-a/example.com"
    assert hold.until == NOW - timedelta(days=1, minutes=24) + timedelta(days=7)
    assert "25" in hold.message and "example.com" in hold.message
    # another namespace under the same domain, another domain, fewer records: room
    assert check_budget(["y.example.com"], NOW, mine, [], [], False, namespace="b") is None
    assert check_budget(["x.example.org"], NOW, mine, [], [], False,
                        namespace="tenant-a") is None
    assert check_budget(["x.example.com"], NOW, mine[:24], [], [], False,
                        namespace="tenant-a") is None
    # ARI renewals are exempt, as from the domain limit itself; 100 turns the share off
    assert check_budget(["x.example.com"], NOW, mine, [], [], True, namespace="tenant-a") is None
    assert check_budget(["x.example.com"], NOW, mine, [], [], False,
                        Limits(namespace_domain_share_percent=100),
                        namespace="tenant-a") is None
    # the domain limit itself still counts every namespace
    theirs = [IssuanceRecord((f"t{i}.example.com",), NOW - timedelta(hours=i), namespace="b")
              for i in range(25)]
    full = check_budget(["z.example.com"], NOW, mine + theirs, [], [], False, namespace="c")
    assert full is not None and full.limit == LIMIT_CERTS_PER_DOMAIN


SECOND = timedelta(seconds=1)


def test_a_recorded_whole_second_counts_until_that_second_ends() -> None:
    """Records keep whole seconds; the CA may have issued anywhere in that second. Waiters woken
    when the per-domain window frees must not meet the CA still counting the certificate (the
    year simulation saw 1,307 refusals in a month on one busy domain without this)."""
    issued_at = datetime(2025, 5, 25, 12, 0, 0, tzinfo=UTC)
    records = [r for i in range(50) for r in secret_meta.issuance_records(
        {secret_meta.HOSTS: f"h{i}.example.com",
         secret_meta.ISSUED_AT: secret_meta.format_time(issued_at)}, issued_at)]
    week = timedelta(days=7)
    hold = check_budget(["new.example.com"], issued_at + week, records, [], [],
                        ari_renewal=False)
    assert hold is not None and hold.until == issued_at + week + SECOND
    assert check_budget(["new.example.com"], issued_at + week + SECOND, records, [], [],
                        ari_renewal=False) is None

