"""Renewals that send ARI `replaces` are exempt: the issuance history flags each one, only
counted issuances spend the per-domain and exact-set budgets, and one rule
(core/renewal/replaces.py) decides `replaces` for the order and the budget alike."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from certbotk8s.app.budget import RenewalBook
from certbotk8s.app.orders import store
from certbotk8s.core.budget.ratelimit import (
    LIMIT_CERTS_PER_DOMAIN,
    LIMIT_CERTS_PER_SET,
    IssuanceRecord,
    check_budget,
)
from certbotk8s.core.renewal.plan import Action, ActionKind
from certbotk8s.core.renewal.reasons import Reason, ReasonCode
from certbotk8s.core.renewal.replaces import replaced_cert_id, shares_a_name
from certbotk8s.core.state import secret_meta
from tests.unit.factories import cert_info, desired, observed_for
from tests.unit.test_write_race import RacedSecrets, _deps, _issued, _pem, _stored

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
REASON = Reason(ReasonCode.INSIDE_ARI_WINDOW, "test")
HOSTS = "a.example.com"


def _history(*entries: tuple[timedelta, bool]) -> str:
    text = ""
    for ago, replaced in entries:
        text = secret_meta.append_history(text, NOW - ago, NOW, replaced)
    return text


def test_the_history_flags_each_issuance_whose_order_sent_replaces() -> None:
    text = _history((timedelta(days=3), True), (timedelta(days=2), False),
                    (timedelta(days=1), True))
    assert text == ("2025-05-29T12:00:00Z/replaces,2025-05-30T12:00:00Z,"
                    "2025-05-31T12:00:00Z/replaces")
    records = secret_meta.issuance_records(
        {secret_meta.HOSTS: HOSTS, secret_meta.ISSUANCE_HISTORY: text}, NOW)
    assert [r.renewal_with_ari for r in records] == [True, False, True]


def test_an_old_format_history_counts_all_but_a_flagged_latest() -> None:
    text = "2025-05-29T12:00:00Z,2025-05-30T12:00:00Z,2025-05-31T12:00:00Z"
    old = {secret_meta.HOSTS: HOSTS, secret_meta.ISSUANCE_HISTORY: text,
           secret_meta.LAST_ORDER_REPLACED: "true"}
    assert [r.renewal_with_ari for r in secret_meta.issuance_records(old, NOW)] == [
        False, False, True]
    # In the new format the flags decide; LAST_ORDER_REPLACED marks nothing more.
    new = {**old, secret_meta.ISSUANCE_HISTORY: _history(
        (timedelta(days=2), True), (timedelta(days=1), False))}
    assert [r.renewal_with_ari for r in secret_meta.issuance_records(new, NOW)] == [
        True, False]


def test_garbage_around_the_flag_is_dropped() -> None:
    text = "x/replaces,/replaces,2025-05-31T12:00:00Z/replaced,2025-05-31T12:00:00Z/replaces"
    records = secret_meta.issuance_records(
        {secret_meta.HOSTS: HOSTS, secret_meta.ISSUANCE_HISTORY: text}, NOW)
    assert records == [IssuanceRecord((HOSTS,), datetime(2025, 5, 31, 12, tzinfo=UTC)
                                      + secret_meta.WHOLE_SECOND, True)]


def test_exempt_renewals_leave_the_per_domain_budget_to_new_hosts() -> None:
    # 60 six-day certificates on one domain, each renewed with `replaces` twice this week
    # (history of 60 Secrets), and 10 counted first issuances: a new host fits.
    issued = []
    for i in range(60):
        text = _history((timedelta(days=5), True), (timedelta(days=2), True))
        issued += secret_meta.issuance_records(
            {secret_meta.HOSTS: f"h{i}.example.com", secret_meta.ISSUANCE_HISTORY: text}, NOW)
    issued += [IssuanceRecord((f"n{i}.example.com",), NOW - timedelta(hours=1))
               for i in range(10)]
    assert check_budget(["new.example.com"], NOW, issued, [], [], ari_renewal=False) is None
    counted = [dataclasses.replace(r, renewal_with_ari=False) for r in issued]
    hold = check_budget(["new.example.com"], NOW, counted, [], [], ari_renewal=False)
    assert hold is not None and hold.limit == LIMIT_CERTS_PER_DOMAIN


def test_exempt_renewals_do_not_spend_the_exact_set_budget() -> None:
    text = _history(*((timedelta(days=d), True) for d in (1, 2, 3, 4, 5)))
    issued = secret_meta.issuance_records(
        {secret_meta.HOSTS: HOSTS, secret_meta.ISSUANCE_HISTORY: text}, NOW)
    # The names lost their certificate (no `replaces` possible): a new order still fits.
    assert check_budget([HOSTS], NOW, issued, [], [], ari_renewal=False) is None
    counted = [dataclasses.replace(r, renewal_with_ari=False) for r in issued]
    hold = check_budget([HOSTS], NOW, counted, [], [], ari_renewal=False)
    assert hold is not None and hold.limit == LIMIT_CERTS_PER_SET


def test_replaces_is_sent_when_old_and_new_names_share_one() -> None:
    old = desired("a.example.com", "b.example.com")
    seen = observed_for(old)
    assert seen.certificate is not None
    cert_id = seen.certificate.ari_cert_id
    grown = desired("a.example.com", "b.example.com", "c.example.com")
    moved = desired("b.example.com", "z.example.com")
    gone = desired("z.example.com")
    for d in (old, grown, moved):
        assert replaced_cert_id(True, d, seen) == cert_id
        assert RenewalBook.sends_replaces(Action(ActionKind.RENEW, d, REASON), seen)
    assert replaced_cert_id(True, gone, seen) is None
    assert not RenewalBook.sends_replaces(Action(ActionKind.RENEW, gone, REASON), seen)
    assert replaced_cert_id(False, old, seen) is None  # an ISSUE replaces nothing
    other_ca = desired("a.example.com", "b.example.com", issuer="staging")
    assert replaced_cert_id(True, other_ca, seen) is None
    no_id = observed_for(old, dataclasses.replace(cert_info("a.example.com"), ari_cert_id=""))
    assert replaced_cert_id(True, old, no_id) is None


def test_names_are_compared_as_the_ca_does() -> None:
    assert shares_a_name(["A.Example.com."], ["a.example.com"])
    assert not shares_a_name(["a.example.com"], ["*.example.com"])
    assert not shares_a_name([" "], [" "])


def test_store_flags_a_replaces_issuance_in_the_history() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    old_crt, old_key = _pem(0x11, "a.example.com", now - timedelta(days=80))
    earlier = secret_meta.format_time(now - timedelta(days=1))
    secrets = RacedSecrets(_stored(old_crt, old_key, earlier))
    d = desired("a.example.com")
    seen = dataclasses.replace(observed_for(d), resource_version="8")
    deps = _deps(secrets, now, history=earlier)
    issued = dataclasses.replace(_issued(0x22, now), replaced="old-cert-id")
    store(deps, d, issued, seen)
    flagged = f"{earlier},{secret_meta.format_time(now)}/replaces"
    assert deps.records.get(d.secret)[secret_meta.ISSUANCE_HISTORY] == flagged
    assert secrets.writes[-1][1][secret_meta.ISSUANCE_HISTORY] == flagged
