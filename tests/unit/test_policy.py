"""The renewal check chain (each check, its order) and next_renewal timing rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certbotk8s.core import secret_meta
from certbotk8s.core.model import KeyType, ObservedSecret, RenewalWindow
from certbotk8s.core.policy import (
    CHECKS,
    Reason,
    ReasonCode,
    evaluate,
    next_renewal,
)
from tests.unit.factories import T0, cert_info, desired, observed_for

DAY = timedelta(days=1)
FRESH = T0 + DAY  # one day into a 90-day certificate


def code(reason: Reason | None) -> str | None:
    return None if reason is None else str(reason.code)


def test_chain_order_is_fixed() -> None:
    assert [c.__name__ for c in CHECKS] == [
        "secret_missing",
        "not_managed",
        "certificate_unparsable",
        "key_mismatch",
        "hosts_changed",
        "key_type_changed",
        "issuer_changed",
        "profile_changed",
        "expired",
        "inside_ari_window",
        "inside_renew_before",
        "expiring_lifetime_fraction",
    ]


def test_fresh_matching_secret_needs_nothing() -> None:
    d = desired("a.example.com")
    assert evaluate(d, observed_for(d), FRESH, None) is None


def test_secret_missing() -> None:
    reason = evaluate(desired(), None, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.SECRET_MISSING
    assert "default/web-tls" in reason.message


def test_not_managed_wins_over_everything_after_it() -> None:
    d = desired()
    observed = ObservedSecret(ref=d.secret, managed=False, resource_version="1")
    assert code(evaluate(d, observed, FRESH, None)) == "NotManaged"


def test_certificate_unparsable() -> None:
    d = desired()
    observed = ObservedSecret(
        ref=d.secret, managed=True, resource_version="1", parse_error="tls.crt: no PEM block"
    )
    reason = evaluate(d, observed, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.CERTIFICATE_UNPARSABLE
    assert reason.message == "tls.crt: no PEM block"


def test_key_mismatch() -> None:
    d = desired()
    assert code(evaluate(d, observed_for(d, key_matches=False), FRESH, None)) == "KeyMismatch"


def test_hosts_changed_names_the_difference() -> None:
    d = desired("a.example.com", "c.example.com")
    observed = observed_for(d, cert_info("a.example.com", "b.example.com"))
    reason = evaluate(d, observed, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.HOSTS_CHANGED
    assert "c.example.com" in reason.message and "b.example.com" in reason.message


def test_hosts_compare_case_insensitively_and_as_sets() -> None:
    d = desired("a.example.com", "b.example.com")
    observed = observed_for(d, cert_info("B.example.com", "a.example.com", "a.example.com"))
    assert evaluate(d, observed, FRESH, None) is None


def test_key_type_changed_from_the_certificate() -> None:
    d = desired(key_type=KeyType.RSA_2048)
    observed = observed_for(desired(), cert_info(key_type=KeyType.ECDSA_P256))
    reason = evaluate(d, observed, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.KEY_TYPE_CHANGED
    assert "ecdsa-p256" in reason.message and "rsa-2048" in reason.message


def test_key_type_falls_back_to_the_annotation() -> None:
    d = desired(key_type=KeyType.RSA_4096)
    info = cert_info(key_type=None)
    written = observed_for(d, info)
    assert written.annotations[secret_meta.KEY_TYPE] == "rsa-4096"
    assert evaluate(d, written, FRESH, None) is None
    other = observed_for(
        d, info, annotations={**written.annotations, secret_meta.KEY_TYPE: "rsa-2048"}
    )
    assert code(evaluate(d, other, FRESH, None)) == "KeyTypeChanged"


def test_issuer_changed() -> None:
    observed = observed_for(desired(issuer="staging"))
    reason = evaluate(desired(issuer="le"), observed, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.ISSUER_CHANGED
    assert "staging" in reason.message


def test_issuer_unrecorded_counts_as_changed() -> None:
    d = desired()
    assert code(evaluate(d, observed_for(d, annotations={}), FRESH, None)) == "IssuerChanged"


def test_profile_changed_both_ways() -> None:
    assert (
        code(evaluate(desired(profile="shortlived"), observed_for(desired()), FRESH, None))
        == "ProfileChanged"
    )
    assert (
        code(evaluate(desired(), observed_for(desired(profile="classic")), FRESH, None))
        == "ProfileChanged"
    )
    d = desired(profile="classic")
    assert evaluate(d, observed_for(d), FRESH, None) is None


def test_expired() -> None:
    d = desired()
    observed = observed_for(d)
    assert code(evaluate(d, observed, T0 + 90 * DAY, None)) == "Expired"


def test_expired_wins_over_ari() -> None:
    d = desired()
    ari = RenewalWindow(T0 + 10 * DAY, T0 + 11 * DAY)
    assert code(evaluate(d, observed_for(d), T0 + 91 * DAY, ari)) == "Expired"


def test_inside_ari_window_even_early_in_the_lifetime() -> None:
    d = desired()
    ari = RenewalWindow(T0 + 10 * DAY, T0 + 12 * DAY)
    assert evaluate(d, observed_for(d), T0 + 9 * DAY, ari) is None
    reason = evaluate(d, observed_for(d), T0 + 10 * DAY, ari)
    assert reason is not None and reason.code is ReasonCode.INSIDE_ARI_WINDOW


def test_ari_window_replaces_the_lifetime_fraction() -> None:
    d = desired()
    late_window = RenewalWindow(T0 + 80 * DAY, T0 + 82 * DAY)
    assert evaluate(d, observed_for(d), T0 + 70 * DAY, late_window) is None
    assert code(evaluate(d, observed_for(d), T0 + 70 * DAY, None)) == "ExpiringLifetimeFraction"


def test_malformed_ari_window_is_ignored() -> None:
    d = desired()
    backwards = RenewalWindow(T0 + 10 * DAY, T0 + 5 * DAY)
    assert evaluate(d, observed_for(d), T0 + 20 * DAY, backwards) is None
    assert code(evaluate(d, observed_for(d), T0 + 61 * DAY, backwards)) == (
        "ExpiringLifetimeFraction"
    )


@pytest.mark.parametrize(
    ("lifetime", "due_after"),
    [
        (timedelta(days=90), timedelta(days=60)),
        (timedelta(days=6), timedelta(days=3)),
        (timedelta(days=10), timedelta(days=10) * 2 / 3),
        (timedelta(hours=160), timedelta(hours=80)),
    ],
)
def test_lifetime_fraction(lifetime: timedelta, due_after: timedelta) -> None:
    d = desired()
    observed = observed_for(d, cert_info(lifetime=lifetime))
    assert evaluate(d, observed, T0 + due_after - timedelta(seconds=1), None) is None
    assert code(evaluate(d, observed, T0 + due_after, None)) == "ExpiringLifetimeFraction"


def test_renew_before_when_earlier_than_the_fraction() -> None:
    d = desired(renew_before=timedelta(days=45))
    observed = observed_for(d)
    assert evaluate(d, observed, T0 + 44 * DAY, None) is None
    reason = evaluate(d, observed, T0 + 45 * DAY, None)
    assert reason is not None and reason.code is ReasonCode.INSIDE_RENEW_BEFORE
    assert "45d" in reason.message


def test_renew_before_later_than_the_fraction_does_not_delay() -> None:
    d = desired(renew_before=timedelta(days=5))
    assert code(evaluate(d, observed_for(d), T0 + 60 * DAY, None)) == "ExpiringLifetimeFraction"


def test_renew_before_not_shorter_than_lifetime_is_ignored() -> None:
    d = desired(renew_before=timedelta(days=100))
    assert evaluate(d, observed_for(d), FRESH, None) is None


def test_next_renewal_rules() -> None:
    info = cert_info()
    at, reason = next_renewal(info, None, None, T0)
    assert (at, reason.code) == (T0 + 60 * DAY, ReasonCode.EXPIRING_LIFETIME_FRACTION)
    short = cert_info(lifetime=6 * DAY)
    assert next_renewal(short, None, None, T0)[0] == T0 + 3 * DAY
    ari = RenewalWindow(T0 + 70 * DAY, T0 + 72 * DAY)
    at, reason = next_renewal(info, None, ari, T0)
    assert (at, reason.code) == (T0 + 70 * DAY, ReasonCode.INSIDE_ARI_WINDOW)
    at, reason = next_renewal(info, timedelta(days=30), ari, T0)
    assert (at, reason.code) == (T0 + 60 * DAY, ReasonCode.INSIDE_RENEW_BEFORE)
    at, reason = next_renewal(info, timedelta(days=45), None, T0)
    assert (at, reason.code) == (T0 + 45 * DAY, ReasonCode.INSIDE_RENEW_BEFORE)


def test_next_renewal_is_never_in_the_past() -> None:
    late = T0 + 80 * DAY
    assert next_renewal(cert_info(), None, None, late)[0] == late


@given(
    lifetime_hours=st.integers(min_value=1, max_value=24 * 400),
    elapsed_hours=st.integers(min_value=0, max_value=24 * 400),
    renew_before_hours=st.none() | st.integers(min_value=1, max_value=24 * 400),
    ari_offsets=st.none() | st.tuples(st.integers(0, 24 * 400), st.integers(1, 48)),
)
def test_checks_agree_with_next_renewal(
    lifetime_hours: int,
    elapsed_hours: int,
    renew_before_hours: int | None,
    ari_offsets: tuple[int, int] | None,
) -> None:
    """Due exactly when now >= next_renewal (for a certificate not yet expired)."""
    lifetime = timedelta(hours=lifetime_hours)
    renew_before = None if renew_before_hours is None else timedelta(hours=renew_before_hours)
    d = desired(renew_before=renew_before)
    info = cert_info(lifetime=lifetime)
    ari = None
    if ari_offsets is not None:
        start = T0 + timedelta(hours=ari_offsets[0])
        ari = RenewalWindow(start, start + timedelta(hours=ari_offsets[1]))
    now: datetime = T0 + timedelta(hours=elapsed_hours)
    reason = evaluate(d, observed_for(d, info), now, ari)
    at, _ = next_renewal(info, renew_before, ari, T0)
    if now >= info.not_after:
        assert reason is not None and reason.code is ReasonCode.EXPIRED
    else:
        assert (reason is not None) == (now >= at)


def test_checks_skip_unrelated_inputs() -> None:
    """Every check but secret_missing passes on a missing Secret; no check fires on a fresh one."""
    d = desired()
    fired_on_missing = [c.__name__ for c in CHECKS if c(d, None, FRESH, None) is not None]
    assert fired_on_missing == ["secret_missing"]
    fresh = observed_for(d)
    assert [c.__name__ for c in CHECKS if c(d, fresh, FRESH, None) is not None] == []
    unparsable = replace(fresh, certificate=None)
    fired = [c.__name__ for c in CHECKS if c(d, unparsable, FRESH, None) is not None]
    assert fired == ["certificate_unparsable"]
