"""The renewal check chain (each check, its order) and its agreement with core.renewal.moment."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from certbotk8s.core.model import KeyType, ObservedSecret, RenewalWindow
from certbotk8s.core.renewal.policy import (
    CHECKS,
    Reason,
    ReasonCode,
    evaluate,
    renewal_time_of,
)
from certbotk8s.core.state import secret_meta
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
        "foreign_certificate",
        "key_type_changed",
        "issuer_changed",
        "profile_changed",
        "renewal_requested",
        "expired",
        "renewal_due",
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
    assert written.recorded[secret_meta.KEY_TYPE] == "rsa-4096"
    assert evaluate(d, written, FRESH, None) is None
    other = observed_for(
        d, info, annotations={**written.recorded, secret_meta.KEY_TYPE: "rsa-2048"}
    )
    assert code(evaluate(d, other, FRESH, None)) == "KeyTypeChanged"


def test_issuer_changed() -> None:
    observed = observed_for(desired(issuer="staging"))
    reason = evaluate(desired(issuer="le"), observed, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.ISSUER_CHANGED
    assert "staging" in reason.message


def test_lost_issuer_and_profile_annotations_are_no_reason_to_order() -> None:
    d = desired(profile="classic")
    # plan repairs them (MetadataRepair) instead
    assert evaluate(d, observed_for(d, annotations={}), FRESH, None) is None


def test_renewal_requested_after_issuance_renews_once() -> None:
    d = desired()
    written = observed_for(d)
    issued = secret_meta.parse_time(written.recorded[secret_meta.ISSUED_AT])
    assert issued is not None
    later = secret_meta.format_time(issued + timedelta(minutes=5))
    asked = replace(written, renew_requested=later)
    reason = evaluate(d, asked, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.RENEWAL_REQUESTED
    assert later in reason.message
    # A request older than the certificate was answered already; garbage is ignored.
    earlier = secret_meta.format_time(issued - timedelta(minutes=5))
    for value in (earlier, "yesterday"):
        answered = replace(written, renew_requested=value)
        assert evaluate(d, answered, FRESH, None) is None


def test_a_request_in_the_very_second_of_the_issuance_still_renews() -> None:
    """Both times are whole seconds: the certificate may have been issued just before the
    request (a `renew` right after a pass), so the same second does not answer it."""
    d = desired()
    written = observed_for(d)
    same = replace(written, renew_requested=written.recorded[secret_meta.ISSUED_AT])
    reason = evaluate(d, same, FRESH, None)
    assert reason is not None and reason.code is ReasonCode.RENEWAL_REQUESTED


def test_a_renewal_request_from_the_future_is_no_request() -> None:
    """A tenant's far-future request would make every new certificate look older than it."""
    d = desired()
    written = observed_for(d)
    future = secret_meta.format_time(FRESH + timedelta(days=30))
    assert evaluate(d, replace(written, renew_requested=future), FRESH, None) is None




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


ID = "aki.serial"  # the factories' certificate


def test_expired_wins_over_ari() -> None:
    d = desired()
    ari = RenewalWindow(T0 + 10 * DAY, T0 + 11 * DAY, ID)
    assert code(evaluate(d, observed_for(d), T0 + 91 * DAY, ari)) == "Expired"


def test_inside_ari_window_due_at_the_chosen_moment_not_the_window_start() -> None:
    d = desired()
    ari = RenewalWindow(T0 + 10 * DAY, T0 + 12 * DAY, ID)
    moment = renewal_time_of(d, cert_info(), ari, {}).at
    assert ari.start < moment < ari.end
    assert evaluate(d, observed_for(d), ari.start, ari) is None
    assert evaluate(d, observed_for(d), moment - timedelta(seconds=1), ari) is None
    reason = evaluate(d, observed_for(d), moment, ari)
    assert reason is not None and reason.code is ReasonCode.INSIDE_ARI_WINDOW


def test_ari_window_replaces_the_lifetime_fraction() -> None:
    d = desired()
    late_window = RenewalWindow(T0 + 80 * DAY, T0 + 81 * DAY, ID)
    assert evaluate(d, observed_for(d), T0 + 70 * DAY, late_window) is None
    assert code(evaluate(d, observed_for(d), T0 + 70 * DAY, None)) == "ExpiringLifetimeFraction"


def test_malformed_or_foreign_ari_window_is_ignored() -> None:
    d = desired()
    for window in (RenewalWindow(T0 + 10 * DAY, T0 + 5 * DAY, ID),  # backwards
                   RenewalWindow(T0 + 10 * DAY, T0 + 11 * DAY, "other.cert")):
        assert evaluate(d, observed_for(d), T0 + 20 * DAY, window) is None
        assert code(evaluate(d, observed_for(d), T0 + 61 * DAY, window)) == (
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


@given(
    lifetime_hours=st.integers(min_value=1, max_value=24 * 400),
    elapsed_hours=st.integers(min_value=0, max_value=24 * 400),
    renew_before_hours=st.none() | st.integers(min_value=1, max_value=24 * 400),
    ari_offsets=st.none() | st.tuples(st.integers(0, 24 * 400), st.integers(1, 48)),
)
def test_checks_agree_with_the_renewal_decision(
    lifetime_hours: int,
    elapsed_hours: int,
    renew_before_hours: int | None,
    ari_offsets: tuple[int, int] | None,
) -> None:
    """Due exactly when now >= renewal_time_of(...).at (for a certificate not yet expired)."""
    lifetime = timedelta(hours=lifetime_hours)
    renew_before = None if renew_before_hours is None else timedelta(hours=renew_before_hours)
    d = desired(renew_before=renew_before)
    info = cert_info(lifetime=lifetime)
    ari = None
    if ari_offsets is not None:
        start = T0 + timedelta(hours=ari_offsets[0])
        ari = RenewalWindow(start, start + timedelta(hours=ari_offsets[1]), ID)
    now: datetime = T0 + timedelta(hours=elapsed_hours)
    observed = observed_for(d, info)
    reason = evaluate(d, observed, now, ari)
    at = renewal_time_of(d, info, ari, observed.recorded).at
    if now >= info.not_after:
        assert reason is not None and reason.code is ReasonCode.EXPIRED
    else:
        assert (reason is not None) == (now >= at)
        assert at <= info.not_after - lifetime / 10  # never past the floor


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
